"""`StructuredPruning`: channel pruning (l1_filter, taylor, slimming) during `fit`."""

import keras
import numpy as np

from tfcompress.callbacks._state import current_step, layers_of
from tfcompress.graph import DependencyGraph
from tfcompress.importance import CRITERIA
from tfcompress.layers import ChannelMask, TaylorMask
from tfcompress.pruners import ranking
from tfcompress.pruners.budget import compact_params, ratio_for_params
from tfcompress.pruners.plan import apply_plan
from tfcompress.pruners.scores import (
    alive_channels,
    default_normalize,
    plan_for,
    score_groups,
)
from tfcompress.schedules import Schedule


class StructuredPruning(keras.callbacks.Callback):
    """Prunes the channels of a model from `tfcompress.wrap` whenever `schedule` says so.

    Before each batch the callback asks `schedule(step)` (step = the optimizer's
    `iterations`); on a pruning step it scores the groups with `method`'s criterion and
    masks the lowest channels, keeping those already masked masked. For "taylor" the
    `TaylorMask` layers gather each batch's importance (`|mean(x * dL/dx)|`) inside the
    compiled training step (no per-batch work in the callback); the callback folds the
    last batch in at the end of each epoch (so `score` is complete after `fit` and in
    checkpoints) and resets the scores after every pruning step, as Molchanov et al. do.

        masked = tfc.wrap(model, "taylor")
        masked.compile(...)
        masked.fit(data, epochs=3, callbacks=[StructuredPruning(
            Iterative(final_ratio=0.5, begin_step=200, end_step=1000, frequency=200),
            method="taylor", scope="global")])

    Args:
        schedule: a `tfcompress.schedules.Schedule` (the ratio to reach at each step).
        method: a channel criterion ("l1_filter", "taylor", "slimming", ...).
        scope: "local" (the ratio per group) or "global" (of all channels).
        min_channels: channels every group keeps at least.
        round_to: round kept channel counts up to a multiple of this.
        num_remove: instead of the schedule's ratio, remove this many more channels at
            each pruning step (Molchanov's "lowest N per step").
        threshold: instead of the ratio, remove channels scoring below this.
        normalize: score normalisation for global ranking (default per criterion).
        budget: what the schedule's ratio counts: "channels" (the fraction of channels
            to remove, per group or of the global pool) or "params" (the fraction of the
            model's parameters to remove: each pruning step removes the fewest
            lowest-ranked channels that leave at most `(1 - ratio) x` the parameters, so
            an iterative global ranking ends at the parameter target it was given).
        rule: how the cut is made, "safe" or "strict_quantile" (Network Slimming's
            vggprune.py); see `tfcompress.pruners.ranking.RankingOptions`.
    """

    BUDGETS = ("channels", "params")

    def __init__(
        self,
        schedule,
        method="l1_filter",
        scope="local",
        min_channels=1,
        round_to=1,
        num_remove=None,
        threshold=None,
        normalize=None,
        budget="channels",
        rule="safe",
    ):
        super().__init__()
        if not isinstance(schedule, Schedule):
            raise TypeError(
                "schedule must be a tfcompress.schedules.Schedule (OneShot, Iterative, "
                f"Polynomial). Received: schedule={schedule!r}"
            )
        if method not in CRITERIA:
            raise ValueError(
                f"Unknown channel criterion. Received: method={method!r}. Known: {sorted(CRITERIA)}"
            )
        options = ranking.RankingOptions(
            scope=scope,
            min_channels=min_channels,
            round_to=round_to,
            num_remove=num_remove,
            threshold=threshold,
            normalize=normalize,
            rule=rule,
        ).with_defaults(normalize=default_normalize(method, scope))
        if budget not in self.BUDGETS:
            raise ValueError(f"budget must be one of {self.BUDGETS}. Received: budget={budget!r}")
        if budget == "params" and (num_remove is not None or threshold is not None):
            raise ValueError(
                "budget='params' reads the schedule's ratio as a parameter fraction; it "
                f"cannot be combined with num_remove={num_remove!r} or threshold={threshold!r}."
            )
        self.budget = budget
        self.schedule = schedule
        self.method = method
        self.options = options
        self.events = []  # (step, kept channels) of each pruning step of this run

    def on_train_begin(self, logs=None):
        self._graph = DependencyGraph(self.model)
        if self.budget == "params":
            self._full_params = compact_params(
                self._graph, np.ones(self._graph.num_components, bool)
            )
        self._taylor = layers_of(self.model, TaylorMask)
        if self.method == "taylor" and not self._taylor:
            raise ValueError(
                "StructuredPruning(method='taylor') needs TaylorMask layers: wrap the model "
                "with `tfcompress.wrap(model, method='taylor')`."
            )

    def on_train_batch_begin(self, batch, logs=None):
        step = current_step(self.model)
        should, ratio = self.schedule(step)
        if should:
            self.prune_now(ratio)
            self.events.append((step, self.kept_channels()))

    def on_epoch_end(self, epoch, logs=None):
        for mask in self._taylor:
            mask.fold()

    def prune_now(self, ratio):
        """One pruning step to `ratio` (or by `num_remove` / `threshold`)."""
        graph, sites, scores = score_groups(self.model, self.method, graph=self._graph)
        alive = alive_channels(graph, sites)
        if self.budget == "params":
            max_params = (1.0 - ratio) * self._full_params
            _, keep, _ = ratio_for_params(graph, sites, scores, max_params, self.options,
                                          alive=alive)
        else:
            keep = ranking.select(scores, self.options.with_ratio(ratio), alive=alive)
        apply_plan(self.model, plan_for(sites, keep))
        for mask in self._taylor:
            mask.reset_scores()

    def kept_channels(self):
        """`{mask layer name: kept channels}`."""
        return {
            m.name: int((keras.ops.convert_to_numpy(m.mask) > 0.5).sum())
            for m in layers_of(self.model, ChannelMask)
        }
