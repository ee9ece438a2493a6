"""Scoring the channel groups of a wrapped model, and turning keep flags into a plan."""

import numpy as np

from tfcompress import importance, methods
from tfcompress.batches import describe
from tfcompress.pruners.plan import PruningPlan
from tfcompress.surgery.masks import mask_sites


def default_normalize(method, scope):
    """Score normalisation before ranking when none is given: the method record's for a
    global ranking (`tfcompress.methods.Method.normalize`), none for a per-group one."""
    return methods.default_normalize(method, scope)


def score_groups(masked, method="l1_filter", data=None, graph=None, steps=None):
    """Scores every group that has a mask layer (`data`, `steps`: the batches a
    data-driven criterion's `prepare` measures, and how many of them; refused, naming
    them, for a criterion that reads no data (`importance.reads_data`), and `steps`
    without `data`).

    Returns:
        `(graph, sites, scores)`: the dependency graph of `masked`, its `MaskSite`s and
        `{group index: np.ndarray of scores}`.
    """
    if method not in importance.CRITERIA:
        raise ValueError(
            f"Unknown channel criterion. Received: method={method!r}. "
            f"Known: {sorted(importance.CRITERIA)} (and 'magnitude' on weight-masked models)."
        )
    _check_data(method, data, steps)
    graph = graph or methods.graph_of(masked)
    sites = mask_sites(graph)
    if not sites:
        raise ValueError(_no_masks_message(masked, graph))
    criterion = importance.CRITERIA[method]
    prepare = getattr(criterion, "prepare", None)
    if prepare is not None:
        prepare(masked, data=data, graph=graph, steps=steps)
    scores = {}
    for site in sites:
        if site.group not in scores:
            group = graph.groups[site.group]
            s = criterion(group, data=data, model=masked, graph=graph, sites=sites)
            s = np.asarray(s, np.float64)
            if s.shape != (group.size,):
                raise ValueError(
                    f"Criterion {method!r} returned scores of shape {s.shape} for group "
                    f"{group.index} of {group.size} channels."
                )
            scores[site.group] = s
    return graph, sites, scores


def _check_data(method, data, steps):
    """Raises naming `data` / `steps` when criterion `method` would leave them unread."""
    given = {k: v for k, v in (("data", data), ("steps", steps)) if v is not None}
    if given and not importance.reads_data(method):
        received = ", ".join(
            f"{k}={describe(v) if k == 'data' else repr(v)}" for k, v in given.items())
        raise ValueError(
            f"Criterion {method!r} scores channels from the model's weights and reads no "
            f"data; {' and '.join(given)} would be left unread. Leave "
            f"{'them' if len(given) > 1 else 'it'} out, or rank by a data-driven criterion "
            f"(criterion='taylor' on a taylor-wrapped model). Received: {received}"
        )
    if steps is not None and data is None:
        raise ValueError(
            "steps is how many batches of data to measure; without data it would be left "
            f"unread. Pass data= with it, or leave steps out. Received: data=None, "
            f"steps={steps!r}"
        )


def _no_masks_message(model, graph):
    """Why `model` has no mask layer: its graph has no prunable group (so `wrap` placed
    none), or it was not wrapped."""
    if graph.prunable_groups:
        return (
            f"Model '{model.name}' has no mask layers. Call `tfcompress.wrap(model)` first "
            "and prune the model it returns. (If it is a model `wrap` returned, its "
            "`exclude` list pinned every channel group: exclude fewer layers.)"
        )
    reasons = {}
    for group in graph.groups:
        reasons[group.pinned_by] = reasons.get(group.pinned_by, 0) + 1
    why = ", ".join(f"{reason} ({n} group{'s' * (n > 1)})" for reason, n in reasons.items())
    return (
        f"Model '{model.name}' has no prunable channel group, so `tfcompress.wrap` placed "
        f"no mask layer and there is nothing to prune: every group of channels is pinned "
        f"by {why}."
    )


def alive_channels(graph, sites):
    """`{group: bool}`: the channels each group's mask currently keeps
    (`ChannelMask.kept`)."""
    alive = {}
    for site in sites:
        flags = site.layer.kept()
        a = alive.setdefault(site.group, np.ones(graph.groups[site.group].size, bool))
        a[site.group_channel] &= flags
    return alive


def plan_for(sites, keep):
    """The `PruningPlan` setting each mask layer to the group keep flags `keep`."""
    return PruningPlan(
        keep={s.layer.name: np.nonzero(keep[s.group][s.group_channel])[0].tolist() for s in sites}
    )
