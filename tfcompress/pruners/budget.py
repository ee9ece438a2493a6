"""Parameter budgets: how many parameters a keep state leaves, and the pruning ratio that
reaches a target compression (for "prune to 2x fewer parameters")."""

import dataclasses

import numpy as np

from tfcompress import methods
from tfcompress.layers import ChannelMask
from tfcompress.numbers import check_positive, is_number
from tfcompress.pruners import ranking
from tfcompress.pruners.scores import score_groups


def compact_params(graph, keep_components):
    """Parameters of the compact model `strip` would build when only the components
    flagged in `keep_components` (a bool array over `graph`'s components) remain."""
    counted, total = set(), 0

    def keep_of(key):
        flags = keep_components[graph.component_of[key]]
        return None if flags.all() else np.nonzero(flags)[0]

    for op in graph.traced.ops:
        layer = op.layer
        if isinstance(layer, ChannelMask) or layer.name in counted:
            continue
        if not getattr(layer, "weights", None):  # a keras.ops operation holds none
            continue
        counted.add(layer.name)  # a shared layer's weights count once
        total += graph.rule(layer).param_count(layer, op, keep_of)
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
    *,
    criterion=None,
    data=None,
    options=None,
    tolerance=1e-3,
):
    """The smallest pruning ratio whose plan leaves at most `params / compression`
    parameters, found by bisection on the current scores (nothing is applied).

    Args:
        masked: a model from `tfcompress.wrap`.
        compression: the target, >= 1 (2 = half the parameters).
        criterion: the channel criterion that scores the groups (default: the wrapped
            method's `budget_criterion`, e.g. "l1_filter" for taylor, whose scores need
            training; see `tfcompress.methods`).
        data: batches for data-driven criteria (refused, naming it, for a criterion
            that reads none: `tfcompress.importance.reads_data`).
        options: a `ranking.RankingOptions` (its ratio is what is searched: one with a
            ratio, threshold or num_remove set is refused, naming it); a None
            `min_channels` or `normalize` becomes the method's, as in `prune`
            (`tfcompress.methods.with_method_defaults`).
        tolerance: bisection stops when the ratio is known this closely (a finite
            number > 0; 0 would never stop).

    Returns:
        `(ratio, params_after)`.
    """
    if not is_number(compression) or compression < 1:
        raise ValueError(
            f"compression must be a finite number >= 1. Received: compression={compression!r}"
        )
    check_positive("tolerance", tolerance)
    options = _search_options(options)
    if options.ratio is not None:
        raise ValueError(
            "ratio_for_compression searches the ratio; options cannot set it (it would "
            f"be left unread). Received: options.ratio={options.ratio!r}"
        )
    record, _ = methods.resolve(masked, None, criterion, caller="ratio_for_compression")
    criterion = criterion or record.budget_criterion
    options = methods.with_method_defaults(options, record, criterion)
    graph, sites, scores = score_groups(masked, method=criterion, data=data)
    full = compact_params(graph, np.ones(graph.num_components, bool))
    ratio, _, params = reach_params(
        graph, sites, scores, full / compression, options, tolerance=tolerance,
        target=f"{compression}x fewer parameters", model_name=masked.name, full=full,
    )
    return ratio, params


def _search_options(options):
    if options is None:
        return ranking.RankingOptions()
    if not isinstance(options, ranking.RankingOptions):
        raise TypeError(
            "options must be a tfcompress.pruners.ranking.RankingOptions. "
            f"Received: options={options!r}"
        )
    if options.threshold is not None or options.num_remove is not None:
        raise ValueError(
            "A parameter budget searches the ratio; options cannot set threshold or "
            f"num_remove. Received: threshold={options.threshold!r}, "
            f"num_remove={options.num_remove!r}"
        )
    return options


def ratio_for_params(graph, sites, scores, max_params, options=None, *, alive=None, tolerance=1e-3):
    """The smallest ranking ratio whose keep flags leave at most `max_params` parameters,
    by bisection; `options` is a `ranking.RankingOptions` whose ratio is searched
    (`alive`: channels already pruned go first and count toward the ratio); `tolerance`,
    a finite number > 0, is how closely the ratio is found.

    Returns:
        `(ratio, keep, params)`; `(None, keep, params)` at ratio 0.999 if even that keeps
        more than `max_params`.
    """
    options = _search_options(options)
    check_positive("tolerance", tolerance)

    def at(ratio):
        keep = ranking.select(scores, dataclasses.replace(options, ratio=ratio), alive=alive)
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


def reach_params(graph, sites, scores, max_params, options, *, target, model_name, full,
                 alive=None, tolerance=1e-3):
    """`ratio_for_params`, raising when no ratio leaves at most `max_params` parameters:
    the error names `target` (what was asked), the model, the most a ranking can remove of
    the `full` parameters, and what keeps the rest (`min_channels` / `round_to`, the
    channels no mask may remove)."""
    ratio, keep, params = ratio_for_params(
        graph, sites, scores, max_params, options, alive=alive, tolerance=tolerance
    )
    if ratio is not None:
        return ratio, keep, params
    bare = dataclasses.replace(options, ratio=0.999, min_channels=1, round_to=1)
    floor = compact_params(
        graph, keep_to_components(graph, sites, ranking.select(scores, bare, alive=alive))
    )
    causes = []
    if params > floor:
        floors = " and ".join(
            f"{k}={v!r}" for k, v in (("min_channels", options.min_channels),
                                      ("round_to", options.round_to)) if v not in (None, 1)
        )
        causes.append(f"{floors} keep{'s' if ' and ' not in floors else ''} {params - floor}")
    causes.append(
        f"{'the other ' if causes else ''}{floor} are those of the channels no mask may "
        "remove (model inputs and outputs, pinned or excluded layers) and of the one "
        "channel every group keeps"
    )
    raise ValueError(
        f"No ratio reaches {target} in model '{model_name}': the most a ranking can remove "
        f"leaves {params} of {full} parameters ({full / params:.3g}x fewer, "
        f"{1 - params / full:.3f} of them removed); of these, {'; '.join(causes)}."
    )
