"""`MagnitudePruning`: Han et al.'s unstructured pruning during `fit`."""

from tfcompress import methods
from tfcompress.callbacks._state import ScheduledPruning
from tfcompress.numbers import is_number
from tfcompress.pruners import restored
from tfcompress.pruners.weights import check_quality_scope, prune_weights, weight_masks
from tfcompress.schedules import Schedule


class MagnitudePruning(ScheduledPruning):
    """Sets the element-wise masks of a model wrapped with method "magnitude" whenever
    `schedule(step)` says so (an event inside a `steps_per_execution` run of steps is
    caught up at the next call, or at the end of its epoch or of the fit, as
    `ScheduledPruning` says): to the schedule's ratio (of
    weights removed), or -- with `quality` -- by Han's per-layer threshold
    `quality * std(w)`. Weights once masked stay masked (and exactly zero: `WeightMask`
    re-zeroes them in every training step).
    The schedule's ratio is each layer's (`scope="local"`, as TFMOT) or that of all
    masked weights under one magnitude threshold (`scope="global"`, see
    `tfcompress.pruners.prune_weights`); `quality` is per layer, so not with
    `scope="global"`.

        masked = tfc.wrap(model, "magnitude")
        masked.compile(...)
        masked.fit(x, y, epochs=4, callbacks=[MagnitudePruning(
            Polynomial(0.0, 0.8, begin_step=0, end_step=1000, frequency=100))])
    """

    def __init__(self, schedule, *, quality=None, scope="local"):
        super().__init__()
        if not isinstance(schedule, Schedule):
            raise TypeError(
                f"schedule must be a tfcompress.schedules.Schedule. Received: schedule={schedule!r}"
            )
        if quality is not None and (
            not is_number(quality) or quality < 0
        ):
            raise ValueError(f"quality must be a number >= 0. Received: quality={quality!r}")
        check_quality_scope(quality, scope)
        self.schedule = schedule
        self.quality = quality
        self.scope = scope

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        wrapping = methods.wrapping_of(self.model)
        if wrapping is not None and methods.get(wrapping.method).structured:
            raise ValueError(
                f"MagnitudePruning needs a model wrapped with method='magnitude'; model "
                f"'{self.model.name}' was wrapped with method={wrapping.method!r}. Use "
                "StructuredPruning."
            )
        if not weight_masks(self.model):
            raise ValueError(
                f"MagnitudePruning needs a model wrapped with method='magnitude'; model "
                f"'{self.model.name}' has no WeightMask layer."
            )

    def apply_event(self, step, ratio):
        if self.quality is not None:
            achieved = prune_weights(self.model, quality=self.quality)
        else:
            achieved = prune_weights(self.model, ratio=ratio, scope=self.scope)
        restored.remember(self.model, step)
        return step, achieved

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        restored.warn_if_restored(self.model)
