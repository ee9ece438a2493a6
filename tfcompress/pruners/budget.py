"""Parameter budgets: how many parameters a keep state leaves, and the pruning ratio that
reaches a target compression (for "prune to 2x fewer parameters")."""

import numpy as np

from tfcompress.layers import ChannelMask
from tfcompress.pruners import ranking
from tfcompress.pruners.scores import default_normalize, score_groups


def compact_params(graph, keep_components):
    """Parameters of the compact model `strip` would build when only the components
    flagged in `keep_components` (a bool array over `graph`'s components) remain."""
    counted, total = set(), 0
    for op in graph.traced.ops:
        layer = op.layer
        if isinstance(layer, ChannelMask) or id(layer) in counted or not layer.weights:
            continue
        counted.add(id(layer))
        rule = graph.rule(layer)
        inner = getattr(layer, "layer", layer)
        axes = rule.weight_axes(inner)
        n_in = int(keep_components[graph.component_of[op.in_keys[0]]].sum()) if op.in_keys else 0
        n_out = int(keep_components[graph.component_of[op.out_keys[0]]].sum())
        full_in = len(graph.component_of[op.in_keys[0]]) if op.in_keys else 0
        for var in inner.weights:
            shape = list(var.shape)
            in_axis, out_axis = axes.get(var.name, (None, None))
            if in_axis is not None and full_in:
                shape[in_axis] = shape[in_axis] * n_in // full_in
            if out_axis is not None:
                shape[out_axis] = n_out
            total += int(np.prod(shape))
    return total


def keep_to_components(graph, sites, keep):
    """Group keep flags -> a bool array over the graph's components."""
    flags = np.ones(graph.num_components, bool)
    for site in sites:
        flags[site.components] = keep[site.group][site.group_channel]
    return flags


def ratio_for_compression(
    masked,
    compression,
    method="l1_filter",
    data=None,
    scope="local",
    min_channels=1,
    round_to=1,
    normalize=None,
    tolerance=1e-3,
):
    """The smallest pruning ratio whose plan leaves at most `params / compression`
    parameters, found by bisection on the current scores (nothing is applied).

    Returns:
        `(ratio, params_after)`.
    """
    if (
        isinstance(compression, bool)
        or not isinstance(compression, (int, float))
        or (compression < 1)
    ):
        raise ValueError(
            f"compression must be a number >= 1. Received: compression={compression!r}"
        )
    if normalize is None:
        normalize = default_normalize(method, scope)
    graph, sites, scores = score_groups(masked, method=method, data=data)
    full = compact_params(graph, np.ones(graph.num_components, bool))
    options = dict(scope=scope, min_channels=min_channels, round_to=round_to, normalize=normalize)
    ratio, _, params = ratio_for_params(graph, sites, scores, full / compression, tolerance,
                                        **options)
    if ratio is None:
        raise ValueError(
            f"No ratio reaches {compression}x fewer parameters in model '{masked.name}': "
            f"at ratio 0.999 it keeps {params} of {full} (pinned layers)."
        )
    return ratio, params


def ratio_for_params(graph, sites, scores, max_params, tolerance=1e-3, **options):
    """The smallest ranking ratio whose keep flags leave at most `max_params` parameters,
    by bisection; `options` are those of `ranking.select` (`alive=` included: channels
    already pruned go first and count toward the ratio).

    Returns:
        `(ratio, keep, params)`; `(None, keep, params)` at ratio 0.999 if even that keeps
        more than `max_params`.
    """

    def at(ratio):
        keep = ranking.select(scores, ratio=ratio, **options)
        return keep, compact_params(graph, keep_to_components(graph, sites, keep))

    lo, hi = 0.0, 0.999
    keep, params = at(hi)
    if params > max_params:
        return None, keep, params
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        k, p = at(mid)
        if p <= max_params:
            hi, keep, params = mid, k, p
        else:
            lo = mid
    return hi, keep, params
