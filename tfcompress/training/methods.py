"""Per-method plumbing for `compress`, read off each method's record
(`tfcompress.methods.Method`): default ranking scope, `wrap` options, the schedule and
callback that drive the masks, and the slimming penalty's phase.

    timeline = Timeline.of(prune_config, steps_per_epoch, total_steps)
    callback = METHODS[method].callback(prune_config, ratio, timeline)

`METHODS` is a live view of the method registry: a method registered with
`tfcompress.register_method` is driven by `compress` through its callback class.

Times come in epochs (`PruneConfig`) and become steps here: pruning begins at `begin`,
ends at `end` (equal: one-shot) and steps every `every` steps in between.
"""

import collections.abc
import dataclasses

from tfcompress import callbacks, schedules
from tfcompress import methods as records
from tfcompress.layers.taylor_mask import DEFAULT_AGGREGATION
from tfcompress.pruners.batchnorm import batch_norm_layers
from tfcompress.pruners.ranking import RankingOptions
from tfcompress.surgery.penalties import bn_gamma_l1, without_penalty


@dataclasses.dataclass(frozen=True)
class Timeline:
    """The pruning schedule in steps."""

    begin: int
    end: int
    every: int
    total: int
    steps_per_epoch: int = 1

    @classmethod
    def of(cls, prune, steps_per_epoch, total_steps):
        begin = int(round(prune.starting_epoch * steps_per_epoch))
        end = int(round(prune.end_epoch * steps_per_epoch))
        every = max(1, int(round(prune.prune_every * steps_per_epoch)))
        if end >= total_steps:
            raise ValueError(
                f"Pruning ends at epoch {prune.end_epoch} = step {end}, but the run has only "
                f"{total_steps} steps ({steps_per_epoch} per epoch): the final masks would "
                "never be set. Lower ending_epoch (or starting_epoch) or train longer."
            )
        if prune.method == "soft_topk" and end <= begin:
            raise ValueError(
                "soft_topk anneals its temperature from starting_epoch to ending_epoch, so "
                "ending_epoch must be after starting_epoch. Received: "
                f"starting_epoch={prune.starting_epoch}, ending_epoch={prune.ending_epoch}"
            )
        return cls(begin, end, every, total_steps, steps_per_epoch)

    @property
    def one_shot(self):
        return self.begin == self.end


def ratio_schedule(prune, ratio, timeline):
    """OneShot, Iterative or Polynomial schedule reaching `ratio` at `timeline.end`."""
    if timeline.one_shot:
        return schedules.OneShot(ratio, step=timeline.begin)
    # Events `interval` apart, the last exactly on `end` so the final ratio is reached.
    span = timeline.end - timeline.begin
    intervals = max(1, span // timeline.every)
    interval = span // intervals
    first = timeline.end - intervals * interval
    if prune.schedule == "polynomial":
        return schedules.Polynomial(0.0, ratio, first, timeline.end, frequency=interval)
    return schedules.Iterative(ratio, first, timeline.end, interval)


def ranking_options(prune, scope=None, latency=False):
    """The one `RankingOptions` of a compress run: the budget search and the callback
    rank with it (`scope` default: `prune.scope`, else the method's). A latency budget
    (`latency`) ranks globally whatever the method's scope: only `prune.scope` is passed
    on (None or "global"; `PruneConfig` refuses "local" with it, as the callback does)."""
    defaults = method_defaults(prune.method)
    return RankingOptions(
        scope=prune.scope if latency else scope or prune.scope or defaults["scope"],
        min_channels=prune.min_channels or defaults["min_channels"],
        round_to=prune.round_to,
        normalize=prune.normalize,
        rule=prune.ranking_rule,
    )


def latency_only(prune):
    """`only` of a latency budget from `prune.latency_only` (texts of mask layer names):
    a function of a mask layer's name, or None (every group)."""
    texts = prune.latency_only
    return (lambda name: any(t in name for t in texts)) if texts else None


def _structured(prune, ratio, timeline, scope, cost_table=None):
    latency = {} if cost_table is None else {
        "budget": "latency", "cost_table": cost_table, "only": latency_only(prune)}
    return callbacks.StructuredPruning(
        ratio_schedule(prune, ratio, timeline),
        method=prune.method,
        options=ranking_options(prune, scope, latency=cost_table is not None),
        **latency,
    )


def _magnitude(prune, ratio, timeline, scope):
    return callbacks.MagnitudePruning(
        ratio_schedule(prune, 0.0 if ratio is None else ratio, timeline),
        quality=prune.quality,
        scope=scope,
    )


def _soft_topk(prune, ratio, timeline, scope):
    del scope  # ACoSP keeps the same fraction of every layer
    if prune.temperature_update == "epoch_end":
        # ACoSP: the temperature is set once per epoch, after it (whole epochs, checked by
        # PruneConfig); the callback reads the epoch off the optimizer's step counter.
        schedule = schedules.ACoSPTemperature(
            ratio,
            int(prune.end_epoch),
            starting_epoch=int(prune.starting_epoch),
            update="epoch_end",
        )
        steps_per_epoch = timeline.steps_per_epoch
    else:
        # epochs of ACoSPTemperature are steps here (steps_per_epoch=1): the temperature
        # moves every step and resumes exactly from the optimizer's step counter.
        schedule = schedules.ACoSPTemperature(
            ratio, timeline.end, starting_epoch=timeline.begin
        )
        steps_per_epoch = 1
    return callbacks.SoftTopK(
        schedule,
        min_channels=prune.min_channels,
        round_to=prune.round_to,
        steps_per_epoch=steps_per_epoch,
    )


# callback class of a method's record -> fn(prune, ratio, timeline, scope) -> callback
CALLBACK_FACTORIES = {
    callbacks.StructuredPruning: _structured,
    callbacks.MagnitudePruning: _magnitude,
    callbacks.SoftTopK: _soft_topk,
}


@dataclasses.dataclass(frozen=True)
class Method:
    """How `compress` drives one method, read off its record.

    scope: default ranking scope (local: per group; global: one ranking).
    criterion: the channel criterion a compression target is measured with.
    penalty: whether `s` is an L1 penalty added by `wrap` (slimming's clone hook).
    compression_target: what `--compression=N` means by default (see
        `PruneConfig.compression_target`): "params" (1/N of the parameters) or
        "channels" (ACoSP: every group keeps 1/N of its channels).
    """

    record: records.Method

    @property
    def scope(self):
        return self.record.scope

    @property
    def criterion(self):
        return self.record.budget_criterion

    @property
    def penalty(self):
        return self.record.clone_hook is bn_gamma_l1

    @property
    def compression_target(self):
        return self.record.compression_target

    def callback(self, prune, ratio, timeline, cost_table=None):
        """The callback driving the masks; `cost_table` (a `CostTable`): prune to a
        latency budget (compression_target "latency", StructuredPruning only)."""
        make = CALLBACK_FACTORIES.get(self.record.callback)
        if make is None:
            raise ValueError(
                f"compress cannot drive method {self.record.name!r}: its callback "
                f"{self.record.callback.__name__} is not one of "
                f"{sorted(c.__name__ for c in CALLBACK_FACTORIES)}."
            )
        if cost_table is not None:
            if make is not _structured:
                raise ValueError(
                    f"A latency budget prunes with StructuredPruning; method "
                    f"{self.record.name!r} is driven by {self.record.callback.__name__}.")
            return _structured(prune, ratio, timeline, prune.scope or self.scope, cost_table)
        return make(prune, ratio, timeline, prune.scope or self.scope)


class _Registry(collections.abc.Mapping):
    """`{method name: Method}` over the method registry, read on every access."""

    def __getitem__(self, name):
        if name not in records.names():
            raise KeyError(name)
        return Method(records.get(name))

    def __iter__(self):
        return iter(records.names())

    def __len__(self):
        return len(records.names())


METHODS = _Registry()


def method_defaults(method, scope=None):
    """`{PruneConfig field: value}` that a None of that field stands for with `method`
    ranking at `scope` (None: the method's): the method record's defaults, the
    normalisation of that scope (`Method.global_normalize`: "none" for a per-group
    ranking), Taylor's aggregation `TaylorMask`'s."""
    record = records.get(method)
    scope = scope or record.scope
    out = {
        "scope": record.scope,
        "normalize": record.global_normalize(scope),
        "min_channels": record.min_channels,
        "compression_target": record.compression_target,
    }
    if method == "taylor":
        out["taylor_aggregation"] = DEFAULT_AGGREGATION
    return out


def resolve_record(record):
    """A compress run's record (`runs.record_of`) with the prune settings left None set
    to the method's defaults, so a restart naming a default (`--normalize=l2` for taylor)
    is the run that left it to the method."""
    prune = record.get("prune")
    if not isinstance(prune, dict) or prune.get("method") not in records.names():
        return record
    defaults = method_defaults(prune["method"], prune.get("scope"))
    filled = {k: v for k, v in defaults.items() if prune.get(k) is None}
    return {**record, "prune": {**prune, **filled}}


def wrap_options(prune):
    """Keyword options of `tfcompress.wrap` for `prune.method`."""
    options = {"penalty": float(prune.s)} if METHODS[prune.method].penalty else {}
    if prune.taylor_aggregation is not None:  # checked to be taylor's by PruneConfig
        options["aggregation"] = prune.taylor_aggregation
    return options


def penalty_active(prune, timeline, step):
    """Slimming trains with the L1 penalty until it prunes (its last pruning step), then
    refines without it, as `main.py -sr` then `main.py -refine` in the seed."""
    return METHODS[prune.method].penalty and step < timeline.end


def disable_penalties(model):
    """Takes the slimming penalty off the BatchNorm scales (their own regularizers stay)."""
    for layer in batch_norm_layers(model):  # a TimeDistributed one included
        if layer.scale:
            layer.gamma.regularizer = without_penalty(layer.gamma.regularizer)
