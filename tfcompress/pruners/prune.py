"""`prune`: score channels (or weights) of a wrapped model and set its masks."""

import dataclasses

from tfcompress import methods
from tfcompress.numbers import check_count, check_flag
from tfcompress.pruners import budgets, ranking
from tfcompress.pruners.plan import PruningPlan, apply_plan
from tfcompress.pruners.scores import alive_channels, score_groups
from tfcompress.pruners.weights import prune_weights

# The loose ranking arguments of `prune` and `StructuredPruning`, and their defaults, those
# of `RankingOptions` (None min_channels / normalize: the method's, None scope: "local",
# filled in by `methods.with_method_defaults`; a scope left None can be told from a
# "local" given, which budget="latency" refuses). `options=` (a `RankingOptions`)
# replaces them all.
LOOSE_DEFAULTS = {
    "scope": None,
    "min_channels": None,
    "round_to": 1,
    "threshold": None,
    "num_remove": None,
    "normalize": None,
    "rule": "safe",
}


def ranking_options(options, ratio=None, **loose):
    """One `RankingOptions`: `options` (with `ratio` filled in, if given) or one made of
    the loose arguments; giving both is an error naming the loose ones. A None `scope`,
    `min_channels` or `normalize` stays, to be filled in
    (`tfcompress.methods.with_method_defaults`)."""
    changed = {k: v for k, v in loose.items() if v != LOOSE_DEFAULTS[k]}
    if options is None:
        return ranking.RankingOptions(ratio, **{**LOOSE_DEFAULTS, **loose})
    if not isinstance(options, ranking.RankingOptions):
        raise TypeError(
            "options must be a tfcompress.pruners.ranking.RankingOptions. "
            f"Received: options={options!r}"
        )
    if changed:
        raise ValueError(
            "Give the ranking options either as options=RankingOptions(...) or as "
            f"arguments, not both. Received: options={options!r} and {changed!r}"
        )
    return options if ratio is None else dataclasses.replace(options, ratio=ratio)


def prune(
    masked,
    ratio=None,
    *,
    data=None,
    steps=None,
    method=None,
    criterion=None,
    options=None,
    scope=None,
    min_channels=None,
    round_to=1,
    threshold=None,
    num_remove=None,
    normalize=None,
    rule="safe",
    keep_pruned=None,
    budget="channels",
    cost_table=None,
    only=None,
):
    """Scores every prunable group and keeps the best channels (one pruning step).

    The model's method and exclude list are those it was wrapped with
    (`tfcompress.methods.wrapping_of`): `wrap(model, method="taylor")` then
    `prune(masked, ratio=0.5, data=ds)` ranks by Taylor importance. A model wrapped with
    "magnitude" has its weights pruned: `ratio`, `scope` and `keep_pruned` (or `options`
    with only its ratio and scope set) are all that apply, and any other argument is refused.

    Args:
        masked: a model returned by `tfcompress.wrap`.
        ratio: fraction in [0, 1) of each group's channels (`scope="local"`), of all
            channels (`scope="global"`) or, for `magnitude`, of each layer's weights
            (`scope="local"`) or of all masked weights (`scope="global"`) to remove.
        data: batches for data-driven criteria (`taylor` without accumulated scores):
            an iterable of `(x, y)` or `(x, y, sample_weight)` batches (a batched
            tf.data.Dataset, `[(x, y)]`), or a tuple `(x, y)` of arrays as `fit` takes
            them, cut into batches of 32 (`tfcompress.importance.taylor.measure`).
            Refused, naming it, for a criterion that reads no data (l1_filter, slimming,
            soft_topk: `tfcompress.importance.reads_data`).
        steps: how many batches of `data` to measure (default: all of them, so give it
            for an endless dataset, e.g. a repeated tf.data.Dataset or a generator);
            refused without `data` and where `data` is.
        method: optional; when given, it must be the method `masked` was wrapped with
            (an error names both otherwise). Models whose masks carry no record rank
            by "l1_filter".
        criterion: re-score with another criterion on purpose (a key of
            `tfcompress.importance.CRITERIA`, e.g. "l1_filter" on a taylor-wrapped
            model); default: the wrapped method's. A model whose masks another callback
            drives (soft_topk: `SoftTopK` trains its logits) needs it: without it prune
            is refused, as `StructuredPruning` is (`methods.check_ranked_by_scores`).
        options: a `tfcompress.pruners.ranking.RankingOptions` holding every ranking
            choice below (`ratio` fills its ratio in); give it or the loose arguments.
        scope: "local" (per-group ratio; the default, None) or "global" (one ranking
            over all groups). budget="latency" always ranks globally: scope="local" is
            refused with it (as `options=RankingOptions(scope="local")` is).
        min_channels: never keep fewer channels than this in a group (default: the
            method's, `tfcompress.methods.Method.min_channels`).
        round_to: round each group's kept channel count up to a multiple of this.
        threshold: instead of `ratio`, remove the channels scoring below this.
        num_remove: instead of `ratio`, remove this many more channels.
        normalize: score normalisation before a global ranking (default: the method's
            that ranks by the criterion, `tfcompress.methods.Method.normalize`).
        rule: how the cut is made, "safe" or "strict_quantile" (Network Slimming's
            vggprune.py); see `tfcompress.pruners.ranking.RankingOptions`.
        keep_pruned: channels (method "magnitude": weights) already masked stay masked
            and count toward the ratio (iterative pruning). Default (None): False for
            channels, whose masks only multiply, so a fresh ranking may bring one back;
            True for "magnitude", which sets the weights it masks to zero: they cannot
            come back, so `keep_pruned=False` is refused there when the ratio would
            unmask one (a lower ratio than reached), naming the sparsity reached.
        budget: what `ratio` counts (`tfcompress.pruners.budgets`, the same list as
            `StructuredPruning`'s): "channels" (default), "params" (the fraction of the
            model's parameters to remove; a fraction no ratio reaches raises, naming the
            most that can be removed and what keeps the rest) or "latency" (the fraction
            of the latency `cost_table` predicts to remove: the channels
            `plan_for_latency(..., criterion=c)` keeps, `c` being the criterion this
            prune ranks by -- the wrapped method's ("taylor" for taylor) or `criterion` --
            where `plan_for_latency` by default ranks by the method's `budget_criterion`
            ("l1_filter" for taylor); kept counts are multiples of the table's
            `multiple`; ranked globally, normalised as for a global ranking by
            default). Not with `num_remove` / `threshold`.
        cost_table: the `tfcompress.latency.CostTable` of the model; budget="latency"
            only, which needs it (the prediction after: `predict_masked`).
        only: budget="latency" only: cut only the groups of these mask layers (names or
            a function `name -> bool`), as `plan_for_latency`'s `only`.

    Returns:
        The `PruningPlan` that was applied.
    """
    given_criterion = criterion
    if keep_pruned is not None:
        check_flag("keep_pruned", keep_pruned)
    record, criterion = methods.resolve(masked, method, criterion)
    if not record.structured:
        unused = {
            "data": data, "steps": steps, "criterion": given_criterion,
            "min_channels": min_channels, "round_to": round_to, "threshold": threshold,
            "num_remove": num_remove, "normalize": normalize, "rule": rule, "budget": budget,
            "cost_table": cost_table, "only": only,
        }
        return _prune_weights(masked, record, ratio, options, scope, keep_pruned, unused)
    methods.check_ranked_by_scores(masked, record, given_criterion, "prune")
    options = ranking_options(
        options,
        ratio,
        scope=scope,
        min_channels=min_channels,
        round_to=round_to,
        threshold=threshold,
        num_remove=num_remove,
        normalize=normalize,
        rule=rule,
    )
    given = options  # what None scope / normalize stand for is filled in below
    options = methods.with_method_defaults(options, record, criterion)
    options.check_amount()
    check_count("steps", steps, none=True)
    budgets.check_budget(budget, given, cost_table, only)
    graph = methods.graph_of(masked)
    chosen = budgets.Budget.bind(budget, masked, graph, options, cost_table=cost_table,
                                 only=only, criterion=criterion, normalize=given.normalize)
    graph, sites, scores = score_groups(masked, method=criterion, data=data, graph=graph,
                                        steps=steps)
    alive = alive_channels(graph, sites) if keep_pruned else None
    plan = chosen.plan(graph, sites, scores, options.ratio, alive=alive)
    apply_plan(masked, plan)
    return plan


# The value of each argument of `prune` that its weight (magnitude) path leaves unread.
_WEIGHT_PATH_UNUSED = {
    **{k: v for k, v in LOOSE_DEFAULTS.items() if k != "scope"},
    "data": None,
    "steps": None,
    "criterion": None,
    "budget": "channels",
    "cost_table": None,
    "only": None,
}


def _given(value, default):
    """Whether `value` differs from an argument's `default` (data may be an array)."""
    return value is not None if default is None else value != default


def _prune_weights(masked, record, ratio, options, scope, keep_pruned, arguments):
    """`prune` for an unstructured method: `ratio` (or `options.ratio`) of the weights,
    per layer or global (`scope`); every other argument (`arguments`, by name) refused."""
    unread = {k: v for k, v in arguments.items() if _given(v, _WEIGHT_PATH_UNUSED[k])}
    if isinstance(options, ranking.RankingOptions):
        default = ranking.RankingOptions()
        unread.update({
            f"options.{k}": getattr(options, k) for k in LOOSE_DEFAULTS
            if k != "scope" and _given(getattr(options, k), getattr(default, k))
        })
    if unread:
        received = ", ".join(f"{k}={v!r}" for k, v in unread.items())
        raise ValueError(
            f"Model '{masked.name}' was wrapped with method={record.name!r}, which prunes "
            f"weights, not channels: prune reads only ratio, scope and keep_pruned (or "
            f"options=RankingOptions(ratio, scope=...)) for it; {', '.join(unread)} "
            f"{'is' if len(unread) == 1 else 'are'} for channel pruning. Received: {received}"
        )
    options = ranking_options(options, ratio, scope=scope).with_defaults()  # None: local
    if options.ratio is None:
        raise ValueError(
            f"prune needs ratio, the fraction of weights to remove, for model "
            f"'{masked.name}' (method={record.name!r}); Han's quality rule is "
            "tfcompress.pruners.prune_weights(masked, quality=q). Received: ratio=None"
        )
    keep_pruned = True if keep_pruned is None else keep_pruned  # zeroed weights stay zero
    achieved = prune_weights(masked, ratio=options.ratio, keep_pruned=keep_pruned,
                             scope=options.scope)
    return PruningPlan(weight_sparsity=achieved)
