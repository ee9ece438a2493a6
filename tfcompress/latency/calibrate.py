"""Splitting a table's rest (the latency its layers do not cover) into a constant part and
a part that shrinks with the kept activation elements, from two whole-model measurements:
the full model and a narrow one (every prunable group cut to a quarter)."""

import numpy as np

from tfcompress.latency.predict import Predictor

NARROW_RATIO = 0.75


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
    import tfcompress as tfc  # local: surgery and pruners import the model machinery
    from tfcompress.pruners.scores import alive_channels
    from tfcompress.surgery.masks import mask_sites

    exclude = () if graph is None else graph.exclude
    masked = tfc.wrap(model, "l1_filter", exclude=exclude)
    tfc.prune(masked, ratio=NARROW_RATIO, min_channels=1)
    full_ms, narrow_ms = measure_pair(model, tfc.strip(masked))
    masked_graph = tfc.methods.graph_of(masked)
    alive = alive_channels(masked_graph, mask_sites(masked_graph))
    orders = {g: np.argsort(~flags, kind="stable") for g, flags in alive.items()}
    layers_only = type(table)(table.layers, multiple=table.multiple)
    predictor = Predictor(masked_graph, layers_only, orders)
    narrow_k = {g: int(flags.sum()) for g, flags in alive.items()}
    rest_full = max(0.0, full_ms - predictor.total_ms(predictor.full_counts()))
    rest_narrow = max(0.0, narrow_ms - predictor.total_ms(narrow_k))
    fraction = predictor.activation_fraction(narrow_k)
    if fraction >= 1:
        return rest_full, 0.0
    scaled = min(rest_full, max(0.0, (rest_full - rest_narrow) / (1 - fraction)))
    return rest_full - scaled, scaled
