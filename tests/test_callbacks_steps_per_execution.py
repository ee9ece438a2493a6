"""Pruning callbacks under `compile(steps_per_execution=k)`: Keras calls batch callbacks
once per execution (every k steps), so a schedule's event at a step inside an execution
is caught up at the next call; the final ratio is reached as with k = 1 (before, events
inside executions were skipped: 10 of 16 channels kept instead of 8)."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.callbacks._state import DueEvents
from tfcompress.pruners import mask_stats

from .pruning_models import conv_bn_net, data


def test_due_events_catch_up_the_latest_event_once():
    schedule = schedules.Iterative(0.5, begin_step=2, end_step=11, frequency=3)  # 2 5 8 11
    due = DueEvents()
    assert due.due(schedule, 0) == (False, None)
    assert due.due(schedule, 4) == (True, 0.125)  # step 2, caught up at 4
    assert due.due(schedule, 4) == (False, None)  # asked again: not twice
    assert due.due(schedule, 8) == (True, 0.375)  # steps 5 and 8: the latest ratio
    assert due.due(schedule, 12) == (True, 0.5)
    assert due.due(schedule, 16) == (False, None)
    due.start()  # a new fit (e.g. resumed at step 6): only its own step the first time
    assert due.due(schedule, 6) == (False, None)
    assert due.due(schedule, 5) == (False, None)  # a step already checked
    assert due.due(schedule, 8) == (True, 0.375)


def _fit(masked, callback, steps_per_execution):
    keras.utils.set_random_seed(0)
    masked.compile(optimizer=keras.optimizers.SGD(0.01),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   steps_per_execution=steps_per_execution)
    x, y = data(256)
    masked.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, callbacks=[callback])
    return callback


@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_structured_pruning_reaches_the_final_ratio(steps_per_execution):
    masked = tfc.wrap(conv_bn_net(widths=(16, 16, 16)), "l1_filter")
    callback = _fit(masked, cb.StructuredPruning(
        schedules.Iterative(0.5, begin_step=2, end_step=11, frequency=3)), steps_per_execution)
    assert len(callback.events) == {1: 4, 4: 3}[steps_per_execution]
    assert set(callback.kept_channels().values()) == {8}  # half of each group's 16
    assert mask_stats(masked)["channel_sparsity"] == pytest.approx(0.5)


@pytest.mark.parametrize("steps_per_execution", [1, 4])
def test_magnitude_pruning_reaches_the_final_ratio(steps_per_execution):
    masked = tfc.wrap(conv_bn_net(), "magnitude")
    _fit(masked, cb.MagnitudePruning(
        schedules.Polynomial(0.0, 0.8, begin_step=0, end_step=10, frequency=2)),
        steps_per_execution)
    sparsity = mask_stats(masked)["weight_sparsity"]
    assert sparsity == pytest.approx(0.8, abs=0.01)
    assert np.isfinite(sparsity)
