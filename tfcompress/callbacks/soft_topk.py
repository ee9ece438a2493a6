"""`SoftTopK`: ACoSP's annealed soft top-k masks, hardened at `ending_epoch`."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfcompress import methods
from tfcompress.callbacks._state import current_step
from tfcompress.callbacks._warnings import warn_if_still_soft
from tfcompress.graph.trace import layers_of
from tfcompress.layers import SoftTopKMask
from tfcompress.numbers import check_count
from tfcompress.pruners import ranking, restored
from tfcompress.pruners.plan import apply_plan
from tfcompress.pruners.scores import plan_for, score_groups
from tfcompress.schedules import ACoSPTemperature

# The temperature is re-assigned once it has moved by 1 % (in log space) since the last
# assignment: a per-step schedule without a per-step variable update.
TEMPERATURE_STEP = 0.01


class SoftTopK(keras.callbacks.Callback):
    """Drives the `SoftTopKMask` layers of a model wrapped with method "soft_topk".

    At the start of training every mask learns to select `k = keep_count(C, final_ratio,
    min_channels, round_to)` of its C channels: ACoSP's `k = max(ceil((1 - s) C), 8)`
    with the defaults (s = `final_ratio`, 8 = `min_channels`; at most C). Before each batch the
    temperature follows `schedule(epoch)` (epoch = step / steps per epoch, a float; the
    variable is re-assigned once the schedule has moved by 1 %); at `ending_epoch` each
    mask keeps exactly its k channels of highest logits and becomes hard (the seed's
    `soft_to_hard_k`), also when `fit` ends there. Training then goes on with hard masks.
    A fit that ends before `ending_epoch` leaves the masks soft (no channel pruned yet)
    and warns at its end, `ScheduleSkippedWarning` (`warn_if_still_soft`).

        masked = tfc.wrap(model, "soft_topk")
        masked.compile(...)
        masked.fit(x, y, epochs=6, callbacks=[SoftTopK(
            ACoSPTemperature(final_ratio=0.5, starting_epoch=0, ending_epoch=4))])

    Args:
        schedule: an `ACoSPTemperature`.
        min_channels: channels every group keeps at least; None: the soft_topk method
            record's, 8 (ACoSP's `min_remaining_elements`).
        round_to: round kept channel counts up to a multiple of this.
        steps_per_epoch: default: from `fit` (needed when fit does not know it).
    """

    def __init__(self, schedule, *, min_channels=None, round_to=1, steps_per_epoch=None):
        super().__init__()
        if not isinstance(schedule, ACoSPTemperature):
            raise TypeError(
                f"schedule must be an ACoSPTemperature. Received: schedule={schedule!r}"
            )
        if min_channels is None:
            min_channels = methods.get("soft_topk").min_channels
        # validates min_channels and round_to; ACoSP keeps the same fraction of every group
        self.options = ranking.RankingOptions(
            schedule.final_ratio, scope="local", min_channels=min_channels, round_to=round_to
        )
        check_count("steps_per_epoch", steps_per_epoch, none=True)
        self.schedule = schedule
        self.steps_per_epoch = None if steps_per_epoch is None else int(steps_per_epoch)
        self.hardened_at = None

    def on_train_begin(self, logs=None):
        self._masks = layers_of(self.model, SoftTopKMask)
        if not self._masks:
            raise ValueError(
                f"SoftTopK needs a model wrapped with method='soft_topk'; model "
                f"'{self.model.name}' has no SoftTopKMask layer."
            )
        self._steps = self.steps_per_epoch or (self.params or {}).get("steps")
        if not self._steps:
            raise ValueError(
                "SoftTopK cannot tell the epoch from the step: fit does not know the "
                "number of steps per epoch. Pass SoftTopK(..., steps_per_epoch=N)."
            )
        self._graph = methods.graph_of(self.model)  # with the wrapped exclude list
        for mask in self._masks:
            k = ranking.keep_count(
                mask.units, self.options.ratio, self.options.min_channels, self.options.round_to
            )
            mask.keep.assign(float(k))
        self._hard = self.is_hard()  # True when resuming after hardening
        # No `warn_if_restarting` (the scheduled callbacks' check): hard masks are left as
        # they are, so a step counter back at 0 prunes nothing again; soft masks prune no
        # channel yet (`ChannelMask.kept`), so a resumed run looks like a fresh one. What a
        # weights file in an unbuilt optimizer restarts here is the temperature schedule,
        # on the trained logits: hardening comes that many steps later.
        self._temperature = None
        self._first = None  # the step of this fit's first batch with soft masks
        # one compiled call per batch instead of one eager assign per mask
        self._assign_temperature = tf.function(self._assign_all)

    def is_hard(self):
        return all(float(keras.ops.convert_to_numpy(m.hard)) > 0.5 for m in self._masks)

    def on_train_batch_begin(self, batch, logs=None):
        if self._hard:
            return
        step = current_step(self.model)
        if self._first is None:
            self._first = step
        epoch = step / self._steps
        if self._harden_if_due(epoch):
            return
        temperature = self.schedule(epoch)
        if self._temperature is None or abs(
            math.log(temperature / self._temperature)
        ) > TEMPERATURE_STEP:
            self._assign_temperature(tf.constant(temperature, tf.float32))
            self._temperature = temperature

    def _harden_if_due(self, epoch):
        """Hardens the masks once the schedule says so at `epoch`; True if they are hard."""
        if not self.schedule.is_hard(epoch):
            return False
        self.harden()
        self.hardened_at = current_step(self.model)
        restored.remember(self.model, self.hardened_at)
        return True

    def _assign_all(self, temperature):
        for mask in self._masks:
            mask.temperature.assign(temperature)

    def harden(self):
        """Each mask keeps exactly its `keep` channels of highest logits, from now on."""
        graph, sites, scores = score_groups(self.model, "soft_topk", graph=self._graph)
        keep = {}
        for site in sites:
            k = int(round(float(keras.ops.convert_to_numpy(site.layer.keep))))
            order = np.argsort(-scores[site.group], kind="stable")
            flags = np.zeros(len(order), bool)
            flags[order[:k]] = True
            keep[site.group] = flags
        apply_plan(self.model, plan_for(sites, keep))
        for mask in self._masks:
            mask.hard.assign(1.0)
        self._hard = True

    def on_train_end(self, logs=None):
        # a fit that ends at (or, with steps_per_execution, past) ending_epoch: hard as the
        # next batch of a longer fit would make it; one that ends before it says so
        if not self._hard:
            step = current_step(self.model)
            if not self._harden_if_due(step / self._steps):
                warn_if_still_soft(self.model, type(self).__name__, self.schedule,
                                   self._first, step, self._steps)
        restored.warn_if_restored(self.model)
