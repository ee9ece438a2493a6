"""`prune`: score channels (or weights) of a wrapped model and set its masks."""

import numpy as np

from tfcompress import importance
from tfcompress.graph import DependencyGraph
from tfcompress.layers import WeightMask
from tfcompress.pruners.plan import PruningPlan, apply_plan
from tfcompress.surgery.masks import mask_sites


def _check_ratio(ratio):
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ValueError(f"ratio must be a number in [0, 1). Received: ratio={ratio!r}")


def select_channels(scores, ratio, min_channels=1):
    """Indices of the channels to keep: the highest scores, `ratio` of them removed."""
    n = len(scores)
    n_keep = max(min(min_channels, n), n - int(np.floor(ratio * n + 1e-9)))
    order = np.argsort(-np.asarray(scores), kind="stable")
    return np.sort(order[:n_keep])


def prune(masked, ratio, data=None, method="l1_filter", min_channels=1):
    """One-shot pruning: scores every prunable group and keeps the best channels.

    Args:
        masked: a model returned by `tfcompress.wrap`.
        ratio: fraction in [0, 1) of each group's channels (or, for `magnitude`, of each
            layer's weights) to remove.
        data: batches for data-driven criteria (unused by `l1_filter` and `magnitude`).
        method: a criterion of `tfcompress.importance.CRITERIA`, or "magnitude".
        min_channels: never keep fewer channels than this in a group.

    Returns:
        The `PruningPlan` that was applied.
    """
    _check_ratio(ratio)
    weight_masks = [layer for layer in masked.layers if isinstance(layer, WeightMask)]
    if weight_masks:
        return _prune_weights(weight_masks, ratio)
    if method not in importance.CRITERIA:
        raise ValueError(
            f"Unknown channel criterion. Received: method={method!r}. "
            f"Known: {sorted(importance.CRITERIA)} (and 'magnitude' on weight-masked models)."
        )
    graph = DependencyGraph(masked)
    sites = mask_sites(graph)
    if not sites:
        raise ValueError(
            f"Model '{masked.name}' has no mask layers. Call `tfcompress.wrap(model)` first "
            "and prune the model it returns."
        )
    criterion = importance.CRITERIA[method]
    kept_by_group = {}
    for site in sites:
        if site.group not in kept_by_group:
            group = graph.groups[site.group]
            scores = criterion(group, data=data, model=masked, graph=graph)
            keep = np.zeros(group.size, bool)
            keep[select_channels(scores, ratio, min_channels)] = True
            kept_by_group[site.group] = keep
    plan = PruningPlan(
        keep={
            s.layer.name: np.nonzero(kept_by_group[s.group][s.group_channel])[0].tolist()
            for s in sites
        }
    )
    apply_plan(masked, plan)
    return plan


def _prune_weights(weight_masks, sparsity):
    plan = PruningPlan()
    for wm in weight_masks:
        for var in wm.layer.weights:
            mask_var = wm.masks.get(var.name)
            if mask_var is None:
                continue
            mask = importance.magnitude_mask(np.asarray(var), sparsity)
            mask_var.assign(mask)
            var.assign(np.asarray(var) * mask)
        plan.weight_sparsity[wm.layer.name] = float(sparsity)
    return plan
