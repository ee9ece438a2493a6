"""Per-method plumbing for `compress`, as a table: default ranking scope, `wrap` options,
the schedule and callback that drive the masks, and the slimming penalty's phase.

    timeline = Timeline.of(prune_config, steps_per_epoch, total_steps)
    callback = METHODS[method].callback(prune_config, ratio, timeline)

Times come in epochs (`PruneConfig`) and become steps here: pruning begins at `begin`,
ends at `end` (equal: one-shot) and steps every `every` steps in between.
"""

import dataclasses

import keras

from tfcompress import callbacks, schedules
from tfcompress.graph.trace import layers_of


@dataclasses.dataclass(frozen=True)
class Timeline:
    """The pruning schedule in steps."""

    begin: int
    end: int
    every: int
    total: int

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
        return cls(begin, end, every, total_steps)

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


def _structured(prune, ratio, timeline, scope):
    return callbacks.StructuredPruning(
        ratio_schedule(prune, ratio, timeline),
        method=prune.method,
        scope=scope,
        normalize=prune.normalize,
        min_channels=prune.min_channels,
        round_to=prune.round_to,
    )


def _magnitude(prune, ratio, timeline, scope):
    return callbacks.MagnitudePruning(
        ratio_schedule(prune, 0.0 if ratio is None else ratio, timeline),
        quality=prune.quality,
        scope=scope,
    )


def _soft_topk(prune, ratio, timeline, scope):
    del scope  # ACoSP keeps the same fraction of every layer
    # epochs of ACoSPTemperature are steps here (steps_per_epoch=1): the temperature moves
    # every step, as in the seed, and resumes exactly from the optimizer's step counter.
    return callbacks.SoftTopK(
        schedules.ACoSPTemperature(
            final_ratio=ratio, starting_epoch=timeline.begin, ending_epoch=timeline.end
        ),
        min_channels=prune.min_channels,
        round_to=prune.round_to,
        steps_per_epoch=1,
    )


@dataclasses.dataclass(frozen=True)
class Method:
    """How `compress` drives one method.

    scope: default ranking scope (local: per group; global: one ranking).
    criterion: the channel criterion a compression target is measured with.
    make_callback: `fn(prune, ratio, timeline, scope) -> keras.callbacks.Callback`.
    penalty: whether `s` is an L1 penalty added by `wrap` (slimming).
    compression_target: what `--compression=N` means by default (see
        `PruneConfig.compression_target`): "params" (1/N of the parameters) or
        "channels" (ACoSP: every group keeps 1/N of its channels).
    """

    scope: str
    criterion: str | None
    make_callback: object
    penalty: bool = False
    compression_target: str = "params"

    def callback(self, prune, ratio, timeline):
        return self.make_callback(prune, ratio, timeline, prune.scope or self.scope)


METHODS = {
    "magnitude": Method("local", None, _magnitude),
    "l1_filter": Method("local", "l1_filter", _structured),
    "taylor": Method("global", "l1_filter", _structured),
    "slimming": Method("global", "slimming", _structured, penalty=True),
    "soft_topk": Method("local", "l1_filter", _soft_topk, compression_target="channels"),
}


def wrap_options(prune):
    """Keyword options of `tfcompress.wrap` for `prune.method`."""
    return {"penalty": float(prune.s)} if METHODS[prune.method].penalty else {}


def penalty_active(prune, timeline, step):
    """Slimming trains with the L1 penalty until it prunes (its last pruning step), then
    refines without it, as `main.py -sr` then `main.py -refine` in the seed."""
    return METHODS[prune.method].penalty and step < timeline.end


def disable_penalties(model):
    """Drops the weight regularizers of BatchNorm scales (the slimming penalty)."""
    for layer in layers_of(model, keras.layers.BatchNormalization):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.scale:
            layer.gamma.regularizer = None
