"""`StructuredPruning`: channel pruning (l1_filter, taylor, slimming) during `fit`."""

from tfcompress import methods
from tfcompress.callbacks._state import ScheduledPruning
from tfcompress.graph.trace import layers_of
from tfcompress.layers import TaylorMask
from tfcompress.pruners import budgets, restored
from tfcompress.pruners.plan import apply_plan
from tfcompress.pruners.prune import ranking_options
from tfcompress.pruners.scores import alive_channels, score_groups
from tfcompress.pruners.stats import mask_stats
from tfcompress.schedules import Schedule


class StructuredPruning(ScheduledPruning):
    """Prunes the channels of a model from `tfcompress.wrap` whenever `schedule` says so.

    Before each batch the callback asks `schedule(step)` (step = the optimizer's
    `iterations`; with `compile(steps_per_execution=k)` Keras calls it every k steps, and
    an event inside an execution is caught up at the next call, or at the end of its
    epoch -- unless the next epoch's first step has an event, whose ratio then wins --
    and of the fit: `ScheduledPruning`); on a pruning step it
    scores the groups with the wrapped method's criterion and masks the lowest channels,
    keeping those already masked masked. For
    "taylor" the `TaylorMask` layers gather each batch's importance inside the compiled
    training step (no per-batch work in the callback); the callback folds the last batch
    in at the end of each epoch (so `score` is complete after `fit` and in checkpoints)
    and resets the scores after every pruning step, as Molchanov et al. do.

        masked = tfc.wrap(model, "taylor")
        masked.compile(...)
        masked.fit(data, epochs=3, callbacks=[StructuredPruning(
            Iterative(final_ratio=0.5, begin_step=200, end_step=1000, frequency=200),
            scope="global")])

    The method and the layers to leave alone are those the model was wrapped with
    (`tfcompress.methods.wrapping_of`, read in `on_train_begin`).

    Args:
        schedule: a `tfcompress.schedules.Schedule` (the ratio to reach at each step).
        method: optional; when given, it must be the method the model was wrapped with.
        criterion: re-score with another criterion on purpose (a key of
            `tfcompress.importance.CRITERIA`); default: the wrapped method's.
        options: a `tfcompress.pruners.ranking.RankingOptions` holding every ranking
            choice below (its ratio is the schedule's); give it or the loose arguments.
        scope: "local" (the ratio per group; the default, None) or "global" (of all
            channels). budget="latency" always ranks globally: scope="local" is refused
            with it (as `options=RankingOptions(scope="local")` is).
        min_channels: channels every group keeps at least (default: the method's).
        round_to: round kept channel counts up to a multiple of this.
        num_remove: instead of the schedule's ratio, remove this many more channels at
            each pruning step (Molchanov's "lowest N per step").
        threshold: instead of the ratio, remove channels scoring below this.
        normalize: score normalisation for global ranking (default: the method's).
        rule: how the cut is made, "safe" or "strict_quantile" (Network Slimming's
            vggprune.py); see `tfcompress.pruners.ranking.RankingOptions`.
        budget: what the schedule's ratio counts: "channels" (the fraction of channels
            to remove, per group or of the global pool) or "params" (the fraction of the
            model's parameters to remove: each pruning step removes the fewest
            lowest-ranked channels that leave at most `(1 - ratio) x` the parameters, so
            an iterative global ranking ends at the parameter target it was given; a
            step whose target no ratio reaches raises, naming the most that can be
            removed, as `ratio_for_compression` does), or
            "latency" (the fraction of the predicted latency to remove, read from
            `cost_table`: each pruning step keeps the channels
            `tfcompress.pruners.plan_for_latency` would, from the channels still kept,
            until the prediction is at most `(1 - ratio) x` the unpruned model's; kept
            counts are multiples of the table's `multiple`, and the ranking is global,
            normalised as for a global ranking by default, by the callback's criterion
            (the wrapped method's, e.g. "taylor", not `plan_for_latency`'s default, the
            method's `budget_criterion`). A target in milliseconds
            `t` is the ratio `1 - t / cost_table.full_ms()`.
        cost_table: the `tfcompress.latency.CostTable` of the unwrapped model (measured
            with `tfcompress.latency.measure_cost_table` at the serving batch and
            runtime); only with budget="latency", which needs it. After each pruning
            step, `last_budget` holds its `LatencyBudget` (target and predicted ms).
        only: budget="latency" only: cut only the groups of these mask layers (names,
            or a function `name -> bool`), as `tfcompress.pruners.plan_for_latency`'s
            `only`; the other groups keep their channels. Default: every group.
    """

    # What a schedule's ratio counts (`budget=`): `tfcompress.pruners.budgets.BUDGETS`.
    BUDGETS = budgets.BUDGETS

    def __init__(
        self,
        schedule,
        *,
        method=None,
        criterion=None,
        options=None,
        scope=None,
        min_channels=None,
        round_to=1,
        num_remove=None,
        threshold=None,
        normalize=None,
        rule="safe",
        budget="channels",
        cost_table=None,
        only=None,
    ):
        super().__init__()
        if not isinstance(schedule, Schedule):
            raise TypeError(
                "schedule must be a tfcompress.schedules.Schedule (OneShot, Iterative, "
                f"Polynomial). Received: schedule={schedule!r}"
            )
        if method is not None and not methods.get(method).structured:
            raise ValueError(
                "StructuredPruning prunes channels; method must be a structured method. "
                f"Received: method={method!r}"
            )
        options = ranking_options(
            options,
            scope=scope,
            min_channels=min_channels,
            round_to=round_to,
            num_remove=num_remove,
            threshold=threshold,
            normalize=normalize,
            rule=rule,
        )
        budgets.check_budget(budget, options, cost_table, only)
        self.budget = budget
        self.cost_table = cost_table
        self.only = only
        self.last_budget = None
        self.schedule = schedule
        self.method = method
        self.criterion = criterion
        self.options = options  # as given: None normalize / min_channels are the method's

    def on_train_begin(self, logs=None):
        record, self._criterion = methods.resolve(
            self.model, self.method, self.criterion, caller="StructuredPruning"
        )
        if not record.structured:
            raise ValueError(
                f"StructuredPruning prunes channels, but model '{self.model.name}' was "
                f"wrapped with method={record.name!r}. Use MagnitudePruning."
            )
        # soft_topk: its criterion ranks logits that only its own callback trains
        methods.check_ranked_by_scores(self.model, record, self.criterion, "StructuredPruning")
        self._options = methods.with_method_defaults(self.options, record, self._criterion)
        self._graph = methods.graph_of(self.model)
        self._budget = budgets.Budget.bind(
            self.budget, self.model, self._graph, self._options, cost_table=self.cost_table,
            only=self.only, criterion=self._criterion, normalize=self.options.normalize)
        self._taylor = layers_of(self.model, TaylorMask)
        for mask in self._taylor:  # mixed precision: scores without the loss scale
            mask.watch_loss_scale(getattr(self.model, "optimizer", None))
        if self._criterion == "taylor" and not self._taylor:
            raise ValueError(
                "StructuredPruning ranking by 'taylor' needs TaylorMask layers: wrap the "
                "model with `tfcompress.wrap(model, method='taylor')`."
            )
        # after the checks: a model this callback refuses gets no restart warning first
        super().on_train_begin(logs)

    def apply_event(self, step, ratio):
        """`events` gets `(step, kept channels)` of each pruning step of this run."""
        self.prune_now(ratio)
        return step, self.kept_channels(restored.remember(self.model, step))

    def on_epoch_end(self, epoch, logs=None):
        for mask in self._taylor:
            mask.fold()
        super().on_epoch_end(epoch, logs)  # an event of the epoch's last execution

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        restored.warn_if_restored(self.model)

    def prune_now(self, ratio):
        """One pruning step to `ratio` (or by `num_remove` / `threshold`)."""
        graph, sites, scores = score_groups(self.model, self._criterion, graph=self._graph)
        plan = self._budget.plan(graph, sites, scores, ratio, alive=alive_channels(graph, sites))
        self.last_budget = self._budget.last
        apply_plan(self.model, plan)
        for mask in self._taylor:
            mask.reset_scores()

    def kept_channels(self, stats=None):
        """`{mask layer name: kept channels}`: the `kept_channels/<mask>` of `stats`
        (default: the model's `mask_stats` now)."""
        prefix = "kept_channels/"
        stats = mask_stats(self.model) if stats is None else stats
        return {k[len(prefix):]: v for k, v in stats.items() if k.startswith(prefix)}

