"""Fitting what a table's layer timings do not say to whole-model measurements: the
model's latency is `base_ms + layer_scale * (its layers' costs) + scaled_ms * (its kept
fraction of activation elements)`.

- `fit_rest` (`rest="fit"`, the default): all three, by non-negative least squares on
  relative errors, from the full model and uniformly pruned ones (every prunable group
  cut by each of `FIT_RATIOS`), timed taking turns. A layer timed alone can cost far
  more than inside the model: at batch 1 the isolated calls of MobileNetV2's layers
  (96 px) summed to 22.6 ms for a model that takes 9.2 ms, and its latency followed its
  activation elements more than its layers' MACs.
- `split_rest` (`rest="split"`): `layer_scale` 1, the rest split into a constant and a
  part that shrinks with the activations, from the full model and a narrow one.
"""

import itertools

import numpy as np

from tfcompress.latency.predict import Predictor

NARROW_RATIO = 0.75
FIT_RATIOS = (0.25, 0.5, 0.75)


def pruned_points(model, table, ratios, graph=None):
    """`[(compact model, its layers' predicted ms at layer_scale 1, its kept activation
    fraction)]` for `model` with every prunable group cut by each of `ratios` (L1)."""
    import tfcompress as tfc  # local: surgery and pruners import the model machinery
    from tfcompress.pruners.scores import alive_channels
    from tfcompress.surgery.masks import mask_sites

    exclude = () if graph is None else graph.exclude
    layers_only = type(table)(table.layers, multiple=table.multiple)
    points = []
    for ratio in ratios:
        masked = tfc.wrap(model, "l1_filter", exclude=exclude)
        tfc.prune(masked, ratio=ratio, min_channels=1)
        masked_graph = tfc.methods.graph_of(masked)
        alive = alive_channels(masked_graph, mask_sites(masked_graph))
        orders = {g: np.argsort(~flags, kind="stable") for g, flags in alive.items()}
        predictor = Predictor(masked_graph, layers_only, orders)
        k = {g: int(flags.sum()) for g, flags in alive.items()}
        points.append((tfc.strip(masked), predictor.total_ms(k), predictor.activation_fraction(k)))
    return points


def nonnegative_fit(X, y):
    """The coefficients `c >= 0` minimising `sum(((X c - y) / y) ** 2)` (relative errors),
    by least squares over every subset of `X`'s columns (few columns)."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    Xw, yw = X / y[:, None], np.ones_like(y)
    best, best_err = np.zeros(X.shape[1]), np.sum(yw**2)
    for n in range(1, X.shape[1] + 1):
        for cols in itertools.combinations(range(X.shape[1]), n):
            c, *_ = np.linalg.lstsq(Xw[:, cols], yw, rcond=None)
            if (c < 0).any():
                continue
            err = np.sum((Xw[:, cols] @ c - yw) ** 2)
            if err < best_err - 1e-12:
                best, best_err = np.zeros(X.shape[1]), err
                best[list(cols)] = c
    return best


def fit_rest(model, table, measure_models, graph=None, ratios=FIT_RATIOS):
    """`(base_ms, layer_scale, scaled_ms)` fitted to `model` and its uniformly pruned
    versions (`ratios`), timed by `measure_models` (`[models] -> [ms]`, taking turns:
    `tfcompress.latency.measure.paired_ms`)."""
    points = pruned_points(model, table, ratios, graph)
    layers_only = type(table)(table.layers, multiple=table.multiple)
    ms = measure_models([model, *(p[0] for p in points)])
    X = [[1.0, layers_only.full_ms(), 1.0], *([1.0, L, a] for _, L, a in points)]
    base, scale, scaled = nonnegative_fit(X, ms)
    return float(base), float(scale), float(scaled)


def split_rest(model, table, measure_pair, graph=None):
    """`(base_ms, scaled_ms)` with base + scaled = the full model's rest, and the narrow
    model's rest = base + scaled * its kept activation fraction.

    Args:
        model: the unpruned model the table is of.
        table: its `CostTable` (layers only; its base and scaled parts are ignored).
        measure_pair: `(model, narrow compact model) -> (ms, ms)`, measured taking turns
            (`tfcompress.latency.measure.paired_ms`), so a change of load hits both.
        graph: `model`'s dependency graph with its `exclude`, if any.
    """
    [(narrow, narrow_layers, fraction)] = pruned_points(model, table, (NARROW_RATIO,), graph)
    full_ms, narrow_ms = measure_pair(model, narrow)
    layers_only = type(table)(table.layers, multiple=table.multiple)
    rest_full = max(0.0, full_ms - layers_only.full_ms())
    rest_narrow = max(0.0, narrow_ms - narrow_layers)
    if fraction >= 1:
        return rest_full, 0.0
    scaled = min(rest_full, max(0.0, (rest_full - rest_narrow) / (1 - fraction)))
    return rest_full - scaled, scaled
