"""`prune`: score channels (or weights) of a wrapped model and set its masks."""


from tfcompress.pruners import ranking
from tfcompress.pruners.plan import PruningPlan, apply_plan
from tfcompress.pruners.scores import (
    alive_channels,
    default_normalize,
    plan_for,
    score_groups,
)
from tfcompress.pruners.weights import prune_weights, weight_masks


def _check_ratio(ratio):
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ValueError(f"ratio must be a number in [0, 1). Received: ratio={ratio!r}")


def prune(
    masked,
    ratio=None,
    data=None,
    method="l1_filter",
    min_channels=1,
    scope="local",
    round_to=1,
    threshold=None,
    num_remove=None,
    normalize=None,
    keep_pruned=False,
    rule="safe",
):
    """Scores every prunable group and keeps the best channels (one pruning step).

    Args:
        masked: a model returned by `tfcompress.wrap`.
        ratio: fraction in [0, 1) of each group's channels (`scope="local"`), of all
            channels (`scope="global"`) or, for `magnitude`, of each layer's weights
            (`scope="local"`) or of all masked weights (`scope="global"`) to remove.
        data: batches for data-driven criteria (`taylor` without accumulated scores).
        method: a criterion of `tfcompress.importance.CRITERIA`, or "magnitude".
        min_channels: never keep fewer channels than this in a group.
        scope: "local" (per-group ratio) or "global" (one ranking over all groups).
        round_to: round each group's kept channel count up to a multiple of this.
        threshold: instead of `ratio`, remove the channels scoring below this.
        num_remove: instead of `ratio`, remove this many more channels.
        normalize: score normalisation before a global ranking (default per criterion,
            `tfcompress.pruners.scores.GLOBAL_NORMALIZE`).
        keep_pruned: channels already masked stay masked (iterative pruning).
        rule: how the cut is made, "safe" or "strict_quantile" (Network Slimming's
            vggprune.py); see `tfcompress.pruners.ranking.RankingOptions`.

    Returns:
        The `PruningPlan` that was applied.
    """
    if weight_masks(masked):
        _check_ratio(ratio)
        achieved = prune_weights(masked, sparsity=ratio, keep_pruned=False, scope=scope)
        return PruningPlan(weight_sparsity=achieved)
    if ratio is not None:
        _check_ratio(ratio)
    options = ranking.RankingOptions(
        ratio,
        scope=scope,
        min_channels=min_channels,
        round_to=round_to,
        threshold=threshold,
        num_remove=num_remove,
        normalize=normalize,
        rule=rule,
    ).with_defaults(normalize=default_normalize(method, scope))
    options.check_amount()
    graph, sites, scores = score_groups(masked, method=method, data=data)
    keep = ranking.select(
        scores, options, alive=alive_channels(graph, sites) if keep_pruned else None
    )
    plan = plan_for(sites, keep)
    apply_plan(masked, plan)
    return plan

