"""What a pruning ratio counts -- channels, parameters or predicted latency -- and the one
place a ratio becomes the channels to keep, for `tfcompress.prune` (one step) and
`tfcompress.callbacks.StructuredPruning` (a schedule of steps) alike.

    "channels": the fraction of channels to remove, per group or of the global pool
        (`tfcompress.pruners.ranking.select`);
    "params": the fraction of the model's parameters to remove: the fewest lowest-ranked
        channels leaving at most `(1 - ratio) x` the unpruned parameters
        (`tfcompress.pruners.budget.ratio_for_params`);
    "latency": the fraction of the predicted latency to remove, read from a
        `tfcompress.latency.CostTable`: the channels `plan_for_latency` keeps for a target
        of `(1 - ratio) x` the unpruned prediction, ranked by the criterion the step
        ranks by (the wrapped method's, not `plan_for_latency`'s default
        `budget_criterion`), ranked globally (a `scope="local"` given is refused).
"""

import dataclasses

import numpy as np

from tfcompress import methods
from tfcompress.latency import CostTable, Predictor
from tfcompress.pruners import ranking
from tfcompress.pruners.budget import compact_params, reach_params
from tfcompress.pruners.latency_budget import budget_from_scores, cut_groups
from tfcompress.pruners.scores import plan_for
from tfcompress.surgery.masks import mask_sites

BUDGETS = ("channels", "params", "latency")


def check_budget(budget, options, cost_table=None, only=None):
    """Raises naming the argument unless `budget`, `cost_table` and `only` fit together
    and with the ranking `options` (a `RankingOptions` as given, its defaults not filled
    in: a latency budget ranks globally, so a scope "local" given, loose or in
    `options`, is refused; None is none given)."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}. Received: budget={budget!r}")
    if budget != "channels" and (options.num_remove is not None or options.threshold is not None):
        raise ValueError(
            f"budget={budget!r} reads the ratio as a fraction of the model's {budget}; it "
            f"cannot be combined with num_remove={options.num_remove!r} or "
            f"threshold={options.threshold!r}."
        )
    if budget != "latency":
        if cost_table is not None:
            raise ValueError(
                "cost_table is read only by budget='latency'. Received: "
                f"budget={budget!r}, cost_table={cost_table!r}"
            )
        if only is not None:
            raise ValueError(
                "only is read only by budget='latency' (the groups a latency budget may "
                f"cut). Received: budget={budget!r}, only={only!r}"
            )
        return
    if not isinstance(cost_table, CostTable):
        raise TypeError(
            "budget='latency' needs cost_table, a tfcompress.latency.CostTable of the "
            "model (tfcompress.latency.measure_cost_table). "
            f"Received: cost_table={cost_table!r}"
        )
    if options.round_to != 1:
        raise ValueError(
            "budget='latency' keeps multiples of the cost table's multiple "
            f"({cost_table.multiple}); it cannot be combined with "
            f"round_to={options.round_to!r}."
        )
    if options.rule != "safe":
        raise ValueError(
            "budget='latency' cuts where the least importance is lost per millisecond, not "
            f"at a quantile; it cannot be combined with rule={options.rule!r}."
        )
    if options.scope == "local":
        raise ValueError(
            "budget='latency' ranks all groups together, cutting where the least "
            "importance is lost per millisecond; it cannot be combined with "
            f"scope={options.scope!r}. Leave scope out (or give 'global')."
        )


@dataclasses.dataclass
class Budget:
    """A checked budget bound to a wrapped model (`bind`): `plan(...)` turns a ratio and
    the channel scores into the `PruningPlan` to apply.

    Attributes:
        last: after a latency plan, its `LatencyBudget` (target and predicted ms).
    """

    kind: str
    options: object  # RankingOptions, defaults filled in
    cost_table: object = None
    latency_normalize: str = None
    cut: object = None
    full_params: int = None
    last: object = None
    model_name: str = None

    @classmethod
    def bind(cls, kind, masked, graph, options, *, cost_table=None, only=None,
             criterion=None, normalize=None):
        """Checks what the budget needs of `masked` (whose dependency graph is `graph`)
        before any pruning: a cost table naming its layers, `only` naming its masks. A
        latency budget ranks all groups together: with `normalize` (as given) or else the
        global normalisation of the method ranking by `criterion`."""
        latency_normalize = normalize or methods.default_normalize(criterion, "global")
        budget = cls(kind, options, cost_table, latency_normalize, model_name=masked.name)
        if kind == "latency":
            Predictor(graph, cost_table, {})  # raises if the table is another model's
            budget.cut = cut_groups(masked, mask_sites(graph), only)
        elif kind == "params":
            budget.full_params = compact_params(graph, np.ones(graph.num_components, bool))
        return budget

    def plan(self, graph, sites, scores, ratio, alive=None):
        """The plan removing `ratio` of what the budget counts (`alive`: channels already
        pruned stay pruned); raises naming the most that can be removed when even the
        highest ratio removes too little (budget "params", as `ratio_for_compression`)."""
        if self.kind == "latency":
            self.last = budget_from_scores(
                graph, sites, scores, self.cost_table, target_latency=1.0 - ratio,
                min_channels=self.options.min_channels, normalize=self.latency_normalize,
                alive=alive, cut=self.cut)
            return self.last.plan
        if self.kind == "params":
            max_params = (1.0 - ratio) * self.full_params
            _, keep, _ = reach_params(
                graph, sites, scores, max_params, self.options, alive=alive,
                target=f"ratio={ratio:g} of the parameters removed (budget='params')",
                model_name=self.model_name, full=self.full_params)
            return plan_for(sites, keep)
        return plan_for(sites, ranking.select(scores, self.options.with_ratio(ratio),
                                              alive=alive))
