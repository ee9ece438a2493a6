"""Measuring a cost table on this machine: each conv / dense layer alone (a one-layer
Keras model of that layer's class and config, the given input / output channels and the
layer's spatial size, called as the runtime serves it: a TF SavedModel's concrete
function, or the LiteRT interpreter with XNNPACK, `tfcompress.latency.runtimes`) on a grid
of kept channel counts, minus the cost of an empty call; the rest of the network is the
whole model's latency minus its layers'. By default (`rest="fit"`) a constant, a scale
of the layers' costs and a part that shrinks with the kept activations are fitted to the
full model and three uniformly pruned ones (`tfcompress.latency.calibrate`); `rest="split"`
keeps the layers' costs as timed and splits the rest into a constant and the shrinking
part; `rest="constant"` takes it as a constant.

A point's time is, by default, the fastest of repeated calls: on a shared machine the
least disturbed call is the best estimate of what the kernel itself costs (a median
follows the load; `statistic="median"` takes it). The table is then bounded by padding:
k channels never cost more than any wider count measured (the kernel could run k as that
wider count with zero channels), which also irons out most of the noise left. Tables are
cached per machine key (which names the runtime) and model signature
(`tfcompress.latency.cache`), so a model is measured once per runtime.
"""

import sys
import time

import keras
import numpy as np
from absl import logging

from tfcompress.export.fold import fold_batchnorm as fold
from tfcompress.graph.dependency import DependencyGraph, check_graph_of
from tfcompress.latency.cache import default_cache_dir, digest, load_table, save_table
from tfcompress.latency.calibrate import fit_rest, split_rest
from tfcompress.latency.layers import architecture, check_unique_names, layer_sites
from tfcompress.latency.machine import machine_key
from tfcompress.latency.runtimes import check_runtime, serving_call
from tfcompress.latency.table import CostTable, LayerCost
from tfcompress.numbers import check_count, check_flag, is_number

DEFAULT_FRACTIONS = (0.125, 0.25, 0.5, 0.75, 1.0)

# Part of every model signature: how a table is measured (bumped when that changes, so
# tables measured the old way are misses).
MEASUREMENT = "fastest-call,padding-bound,v1"
RESTS = ("fit", "split", "constant")
# Turns and seconds (at least) of timing the models a "fit" rest is fitted to: at batch 1
# under load (7 on 2 cores) 20 turns of MobileNetV2 gave minima 9.6-27 ms for the same model.
FIT_TURNS, FIT_SECONDS = 20, 10.0  # (measure_cost_table's fit_seconds)
REPEATS = 10  # timed calls per grid point (measure_cost_table's repeats)
STATISTICS = {"min": np.min, "median": np.median}


def grid_counts(full, fractions, multiple):
    """Channel counts to measure along an axis of `full` channels: each fraction of it
    rounded to `multiple` (at least one multiple), and `full` itself."""
    counts = {full}
    for f in fractions:
        counts.add(min(full, max(multiple, multiple * round(f * full / multiple))))
    return tuple(sorted(counts))


def time_call(fn, x, repeats=10, warmup=2, min_seconds=0.02, statistic=np.min):
    """Milliseconds of `fn(x)`: `statistic` (default the fastest) of at least `repeats`
    calls (and `min_seconds`)."""
    for _ in range(warmup):
        fn(x)
    times, start = [], time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        out = fn(x)
        np.asarray(out)  # wait for the result
        times.append(time.perf_counter() - t0)
    return 1e3 * float(statistic(times))


def call_overhead_ms(repeats=10, statistic=np.min, runtime="tf"):
    """Milliseconds of a call on `runtime` that does (almost) nothing (one multiply)."""
    inputs = keras.Input((1,), batch_size=1)
    empty = keras.Model(inputs, keras.layers.Rescaling(1.0)(inputs))
    fn, x = serving_call(empty, (1, 1), runtime)
    return time_call(fn, x, repeats=repeats, statistic=statistic)


def model_ms(model, batch_size, repeats=10, statistic=np.min, runtime="tf"):
    """Milliseconds of one call of `model` (one input) on a random batch on `runtime`
    (`statistic` of `repeats` calls, default the fastest)."""
    check_count("batch_size", batch_size)
    check_count("repeats", repeats)
    shape = (batch_size, *model.inputs[0].shape[1:])
    fn, x = serving_call(model, shape, runtime)
    return time_call(fn, x, repeats=repeats, statistic=statistic)


def paired_ms(models, batch_size, repeats=10, runtime="tf", min_seconds=0.0):
    """The fastest call of each of `models` (one input each) on `runtime`, calls taking
    turns so that a change of load hits all of them alike: at least `repeats` turns and
    `min_seconds` (on a loaded machine a few turns may hold no undisturbed call)."""
    check_count("batch_size", batch_size)
    check_count("repeats", repeats)
    calls = [serving_call(m, (batch_size, *m.inputs[0].shape[1:]), runtime) for m in models]
    for fn, x in calls:
        fn(x)
    best, turns, start = [np.inf] * len(calls), 0, time.perf_counter()
    while turns < repeats or time.perf_counter() - start < min_seconds:
        turns += 1
        for i, (fn, x) in enumerate(calls):
            t0 = time.perf_counter()
            np.asarray(fn(x))
            best[i] = min(best[i], time.perf_counter() - t0)
    return [1e3 * b for b in best]


def padding_bound(ms):
    """`ms` (a grid of latencies, counts ascending along each axis) with each point no
    slower than any wider point: the running minimum from the widest count down."""
    ms = np.asarray(ms, np.float64)
    for axis in range(ms.ndim):
        ms = np.flip(np.minimum.accumulate(np.flip(ms, axis), axis=axis), axis)
    return ms


def layer_ms(site, batch_size, counts, repeats=10, statistic=np.min, runtime="tf"):
    """Milliseconds (`statistic` of the calls, default the fastest) of `site`'s layer
    alone on `runtime`, reading `counts["in"]` channels and making `counts["out"]` (absent: the
    layer's own)."""
    layer = site.layer
    config = dict(layer.get_config(), name=f"probe_{layer.name}")
    width_key = "units" if "units" in config else "filters"
    if "out" in counts and width_key in config:
        config[width_key] = int(counts["out"])
    c_in = int(counts.get("in", site.in_shape[-1]))
    inputs = keras.Input(site.in_shape[1:-1] + (c_in,), batch_size=batch_size)
    probe = keras.Model(inputs, type(layer).from_config(config)(inputs))
    fn, x = serving_call(probe, (batch_size, *site.in_shape[1:-1], c_in), runtime)
    return time_call(fn, x, repeats=repeats, statistic=statistic)


def model_signature(model, batch_size, fractions, multiple, graph=None, rest="fit",
                    statistic="min", fold_batchnorm=False):
    """The digest of what a table of `model` measures: its modelled layers (class, config,
    shapes, pruned axes), the whole architecture (every call's layer class and config,
    names left out, inputs and shapes: the rest of the table is fitted to the whole
    model), the batch, the grid, the multiple, how the rest is modelled and whether the
    whole models are timed with their BatchNorms folded."""
    graph = graph or DependencyGraph(model)
    specs = [s.spec(batch_size) for s in layer_sites(graph)]
    fields = {"layers": specs, "architecture": architecture(graph, batch_size),
              "batch_size": batch_size, "fractions": list(fractions),
              "multiple": multiple, "measurement": MEASUREMENT, "rest": rest,
              "statistic": statistic}
    if fold_batchnorm:  # (absent when False: tables cached before the option still hit)
        fields["fold_batchnorm"] = True
    return digest(fields)


def _as_careful(table, repeats, fit_seconds):
    """True when cached `table` was measured with at least `repeats` calls per point and
    (unless None) `fit_seconds` of fit: a table measured more carefully serves a quicker
    request, a quicker one is measured again (as is one that does not say)."""
    if table.repeats is None or table.repeats < repeats:
        return False
    return fit_seconds is None or (table.fit_seconds is not None
                                   and table.fit_seconds >= fit_seconds)


def _progress(total, verbose):
    """A Keras progress bar over `total` steps (the timed layers, then the whole model's
    fit), or None for verbose=0. Off a terminal it prints a line every 10 s at most."""
    if verbose == 0 or total == 0:
        return None
    interval = 0.5 if sys.stdout.isatty() else 10.0
    return keras.utils.Progbar(total, verbose=verbose, interval=interval, unit_name="layer")


def served_form(fold_batchnorm):
    """`fn(model) -> the model as deployed`: `tfcompress.export.fold_batchnorm` of it, or
    the model itself."""
    check_flag("fold_batchnorm", fold_batchnorm)
    return fold if fold_batchnorm else (lambda model: model)


def measure_cost_table(model, batch_size=1, *, graph=None, fractions=DEFAULT_FRACTIONS,
                       multiple=8, repeats=REPEATS, rest="fit", statistic="min",
                       runtime="tf", fold_batchnorm=False, fit_seconds=FIT_SECONDS,
                       cache_dir=None, use_cache=True, verbose=1):
    """The `CostTable` of `model` (unpruned, one input) at `batch_size` on this machine:
    read from the cache if this machine measured this model before at least as carefully
    (`repeats` calls per point or more and, for `rest="fit"`, `fit_seconds` or more), else
    measured and cached.

    Args:
        model: the model to prune, before `tfcompress.wrap` (its graph's prunable groups
            say which axes each layer's cost varies along; pass `graph` for an `exclude`).
        batch_size: the batch the latency is for.
        fractions: grid points per axis, as fractions of the full width (rounded to
            `multiple`; the full width is always measured).
        multiple: the channel multiple the kernels run well (8 float32 lanes on AVX2).
        repeats: timed calls per point.
        statistic: "min" (default: the least disturbed call) or "median" of the calls
            (closer to a loaded machine's typical call, e.g. for memory-bound layers).
        rest: how the whole model relates to its layers' timings: "fit" (default: a
            constant, a scale of the layers' costs and a part shrinking with the kept
            activations, fitted to the full model and three uniformly pruned ones;
            `tfcompress.latency.calibrate.fit_rest`), "split" (the layers as timed, the
            rest split into a constant and a shrinking part against a quarter-width
            model; at batch 1 the layers timed alone summed to more than the model, so
            nothing was left to split and MobileNetV2 missed its 1/2 target by 1.35x) or
            "constant" (which over-prunes nets whose BatchNorm / activations are much of
            the time: MobileNetV2 b32 reached 0.82 of its 1/2 target and could not
            reach 1/4).
        fit_seconds: a "fit" rest times its models for at least this long (and
            `FIT_TURNS` turns), keeping each one's fastest call.
        runtime: what serves the model, one of `tfcompress.latency.runtimes.RUNTIMES`:
            "tf" (a TF SavedModel's concrete function) or "tflite" (the LiteRT
            interpreter with XNNPACK); part of the machine key, so each runtime has its
            own cached tables.
        fold_batchnorm: time the whole models (the rest's fit) with their BatchNorms
            folded into the layers before them (`tfcompress.export.fold_batchnorm`), as
            `saved_model(..., fold_batchnorm=True)` deploys them: two element-wise passes
            fewer per conv, and the conv + bias + ReLU chain fused (folded, ResNet-18 at
            b32, 112 px, ran 1.18x and MobileNetV2 at b1, 224 px, 1.74x faster here).
            Prune to such a table when the compact model is deployed folded. The layers
            are timed alone either way.
        cache_dir: the cache folder (default `tfcompress.latency.default_cache_dir()`).
            A folder that cannot be written (read-only, full) leaves the table uncached,
            with a warning naming it.
        use_cache: False measures anew (and overwrites the cached table).
        verbose: 0 (silent), 1 (a Keras progress bar over the timed layers and the
            whole model's fit, with the time left) or 2 (one line at the end), as
            `Model.fit`'s. A cached table is read silently.
    """
    for name, value in (("batch_size", batch_size), ("repeats", repeats), ("multiple", multiple)):
        check_count(name, value)
    if (not isinstance(fractions, (list, tuple)) or not fractions
            or any(not is_number(f) or not 0 < f <= 1 for f in fractions)):
        raise ValueError(
            "fractions must be a list or tuple of numbers in (0, 1]. "
            f"Received: fractions={fractions!r}")
    check_graph_of(graph, model, "to time")
    if len(model.inputs) != 1:
        raise ValueError(
            f"measure_cost_table times models of one input; model '{model.name}' has "
            f"{len(model.inputs)}."
        )
    if rest not in RESTS:
        raise ValueError(f"rest must be one of {RESTS}. Received: rest={rest!r}")
    if statistic not in STATISTICS:
        raise ValueError(
            f"statistic must be one of {sorted(STATISTICS)}. Received: statistic={statistic!r}"
        )
    if not is_number(fit_seconds) or fit_seconds < 0:
        raise ValueError(
            f"fit_seconds must be a number >= 0. Received: fit_seconds={fit_seconds!r}")
    fit_seconds = float(fit_seconds)  # a NumPy float too
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2. Received: verbose={verbose!r}")
    check_runtime(runtime)
    served = served_form(fold_batchnorm)
    stat = STATISTICS[statistic]
    graph = graph or DependencyGraph(model)
    check_unique_names(graph)
    machine = machine_key(runtime)
    signature = model_signature(model, batch_size, fractions, multiple, graph, rest, statistic,
                                fold_batchnorm)
    fit_for = fit_seconds if rest == "fit" else None  # (only a fit times for seconds)
    if use_cache:
        table = load_table(machine, signature, cache_dir, model.name)
        if table is not None and _as_careful(table, repeats, fit_for):
            return table
    overhead = call_overhead_ms(repeats, stat, runtime)
    costs, memo = {}, {}
    sites = layer_sites(graph)
    fits = rest in ("fit", "split") and any(g.prunable for g in graph.groups)
    bar = _progress(len(sites) + fits, verbose)
    for done, site in enumerate(sites):
        full = {"in": site.in_shape[-1], "out": site.out_shape[-1]}
        grid = tuple(grid_counts(full[a], fractions, multiple) for a in site.axes)
        ms = np.zeros([len(g) for g in grid])
        for index in np.ndindex(*ms.shape):
            counts = {a: grid[i][j] for i, (a, j) in enumerate(zip(site.axes, index))}
            key = digest({**site.spec(batch_size), "name": None, "counts": counts})
            if key not in memo:
                ms_ = layer_ms(site, batch_size, counts, repeats, stat, runtime)
                memo[key] = max(0.0, ms_ - overhead)
            ms[index] = memo[key]
        costs[site.name] = LayerCost(site.axes, grid, padding_bound(ms).tolist())
        if bar is not None:
            bar.update(done + 1)
    layers_only = CostTable(costs, multiple=multiple)
    scale, scaled = 1.0, 0.0
    if rest == "fit" and any(g.prunable for g in graph.groups):
        base, scale, scaled = fit_rest(  # more turns: the fit reads small differences
            model, layers_only,
            lambda ms: paired_ms([served(m) for m in ms], batch_size, max(repeats, FIT_TURNS),
                                 runtime, fit_seconds),
            graph)
    elif rest == "split" and any(g.prunable for g in graph.groups):
        base, scaled = split_rest(
            model, layers_only,
            lambda *ms: paired_ms([served(m) for m in ms], batch_size, repeats, runtime), graph)
    else:
        base = max(0.0, model_ms(served(model), batch_size, repeats, stat, runtime)
                   - layers_only.full_ms())
    if bar is not None:
        bar.update(len(sites) + fits, finalize=True)
    table = CostTable(costs, base_ms=base, scaled_ms=scaled, layer_scale=scale,
                      multiple=multiple, batch_size=batch_size, machine=machine,
                      signature=signature, repeats=repeats, fit_seconds=fit_for)
    try:
        save_table(table, cache_dir, model.name)
    except OSError as e:  # a read-only or full cache folder: the measurement is not lost
        logging.warning(
            "The cost table of model '%s' could not be cached under %s (%s: %s). It is "
            "returned uncached: the next call measures it again.", model.name,
            cache_dir or default_cache_dir(), type(e).__name__, e)
    return table


