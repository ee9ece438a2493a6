"""`prune`: score channels (or weights) of a wrapped model and set its masks."""

from tfcompress import methods
from tfcompress.pruners import ranking
from tfcompress.pruners.plan import PruningPlan, apply_plan
from tfcompress.pruners.scores import alive_channels, plan_for, score_groups
from tfcompress.pruners.weights import prune_weights


def prune(
    masked,
    ratio=None,
    *,
    data=None,
    method=None,
    criterion=None,
    scope="local",
    min_channels=None,
    round_to=1,
    threshold=None,
    num_remove=None,
    normalize=None,
    rule="safe",
    keep_pruned=False,
):
    """Scores every prunable group and keeps the best channels (one pruning step).

    The model's method and exclude list are those it was wrapped with
    (`tfcompress.methods.wrapping_of`): `wrap(model, method="taylor")` then
    `prune(masked, ratio=0.5, data=ds)` ranks by Taylor importance.

    Args:
        masked: a model returned by `tfcompress.wrap`.
        ratio: fraction in [0, 1) of each group's channels (`scope="local"`), of all
            channels (`scope="global"`) or, for `magnitude`, of each layer's weights
            (`scope="local"`) or of all masked weights (`scope="global"`) to remove.
        data: batches for data-driven criteria (`taylor` without accumulated scores).
        method: optional; when given, it must be the method `masked` was wrapped with
            (an error names both otherwise). Models whose masks carry no record rank
            by "l1_filter".
        criterion: re-score with another criterion on purpose (a key of
            `tfcompress.importance.CRITERIA`, e.g. "l1_filter" on a taylor-wrapped
            model); default: the wrapped method's.
        scope: "local" (per-group ratio) or "global" (one ranking over all groups).
        min_channels: never keep fewer channels than this in a group (default: the
            method's, `tfcompress.methods.Method.min_channels`).
        round_to: round each group's kept channel count up to a multiple of this.
        threshold: instead of `ratio`, remove the channels scoring below this.
        num_remove: instead of `ratio`, remove this many more channels.
        normalize: score normalisation before a global ranking (default: the method's
            that ranks by the criterion, `tfcompress.methods.Method.normalize`).
        rule: how the cut is made, "safe" or "strict_quantile" (Network Slimming's
            vggprune.py); see `tfcompress.pruners.ranking.RankingOptions`.
        keep_pruned: channels already masked stay masked (iterative pruning).

    Returns:
        The `PruningPlan` that was applied.
    """
    record, criterion = methods.resolve(masked, method, criterion)
    if not record.structured:
        achieved = prune_weights(masked, ratio=ratio, keep_pruned=False, scope=scope)
        return PruningPlan(weight_sparsity=achieved)
    options = ranking.RankingOptions(
        ratio,
        scope=scope,
        min_channels=record.min_channels if min_channels is None else min_channels,
        round_to=round_to,
        threshold=threshold,
        num_remove=num_remove,
        normalize=normalize,
        rule=rule,
    ).with_defaults(normalize=methods.default_normalize(criterion, scope))
    options.check_amount()
    graph, sites, scores = score_groups(masked, method=criterion, data=data)
    keep = ranking.select(
        scores, options, alive=alive_channels(graph, sites) if keep_pruned else None
    )
    plan = plan_for(sites, keep)
    apply_plan(masked, plan)
    return plan
