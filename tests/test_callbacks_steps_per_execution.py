"""Pruning callbacks under `compile(steps_per_execution=k)`: Keras calls batch callbacks
once per execution (every k steps), so a schedule's event at a step inside an execution
is caught up at the next call; the final ratio is reached as with k = 1 (before, events
inside executions were skipped: 10 of 16 channels kept instead of 8). One inside an
epoch's last execution is applied at the end of the epoch, before fit's validation of it."""

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


def test_due_events_at_epoch_end_leaves_to_an_event_at_the_next_step():
    schedule = schedules.Iterative(0.5, begin_step=5, end_step=6, frequency=1)  # 5 6
    due = DueEvents()
    assert due.due(schedule, 4) == (False, None)
    assert due.at_epoch_end(schedule, 6, more_epochs=True) == (False, None)  # 6 has one
    assert due.due(schedule, 6) == (True, 0.5)  # steps 5 and 6 at once: the latest ratio
    assert due.passed(schedule, 8) == (False, None)
    due = DueEvents()
    assert due.due(schedule, 4) == (False, None)
    assert due.at_epoch_end(schedule, 6, more_epochs=False) == (True, 0.25)  # fit's end
    assert due.passed(schedule, 6) == (False, None)  # not again at on_train_end
    once = schedules.OneShot(0.5, step=5)
    due = DueEvents()
    assert due.due(once, 4) == (False, None)
    assert due.at_epoch_end(once, 6, more_epochs=True) == (True, 0.5)
    assert due.due(once, 6) == (False, None)  # not again at the next epoch's first step


def test_due_events_passed_catches_up_the_last_execution():
    schedule = schedules.OneShot(0.5, step=5)
    due = DueEvents()
    assert due.passed(schedule, 6) == (False, None)  # no batch of this fit checked yet
    assert due.due(schedule, 4) == (False, None)
    assert due.passed(schedule, 6) == (True, 0.5)  # steps 4 and 5 trained, 5 unchecked
    assert due.passed(schedule, 6) == (False, None)  # once
    due.start()  # the next fit, from step 6: step 5 is not asked again
    assert due.due(schedule, 6) == (False, None)


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
    # k=1: each event at its own step; k=4 (8 steps an epoch, calls at 0 4 | 8 12): step
    # 2 at 4, step 5 left to the end of epoch 0 since step 8 has an event (the latest
    # ratio, once at step 8), step 11 at 12
    assert [step for step, _ in callback.events] == {
        1: [2, 5, 8, 11], 4: [4, 8, 12]}[steps_per_execution]
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


def _fits(method, make_callback, plan, after=(), validation_data=None):
    """`plan`'s fits (`(initial_epoch, epochs)`) of one model, 6 steps an epoch, executions
    of 4 steps: the callback is called at steps 0 and 4 of each epoch; the callbacks
    `after` it see what it did."""
    masked = tfc.wrap(conv_bn_net(), method)
    keras.utils.set_random_seed(0)
    masked.compile(optimizer=keras.optimizers.SGD(0.01),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                   steps_per_execution=4)
    x, y = data(96)
    callback = make_callback()
    for first, last in plan:
        masked.fit(x, y, batch_size=16, initial_epoch=first, epochs=last, shuffle=False,
                   verbose=0, callbacks=[callback, *after], validation_data=validation_data)
    return masked, callback


@pytest.mark.parametrize("method, make_callback, sparsity", [
    ("l1_filter", lambda: cb.StructuredPruning(schedules.OneShot(0.5, step=5)), "channel_sparsity"),
    ("magnitude", lambda: cb.MagnitudePruning(schedules.OneShot(0.5, step=5)), "weight_sparsity"),
])
def test_an_event_in_the_last_execution_of_a_fit_is_applied_once(
        method, make_callback, sparsity):
    # step 5 is inside the execution of steps 4-5: no batch call sees it in a 1-epoch fit
    # (before, it was lost: sparsity 0, and the next fit started past it)
    masked, callback = _fits(method, make_callback, [(0, 1)])
    assert [step for step, _ in callback.events] == [6]  # at the end of the fit
    assert mask_stats(masked)[sparsity] == pytest.approx(0.5, abs=0.01)
    resumed, callback = _fits(method, make_callback, [(0, 1), (1, 2)])
    assert [step for step, _ in callback.events] == [6]  # not again in the second fit
    whole, _ = _fits(method, make_callback, [(0, 2)])
    for a, b in zip(resumed.weights, whole.weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   atol=1e-6, err_msg=a.path)


SPARSITY = {"l1_filter": "channel_sparsity", "taylor": "channel_sparsity",
            "magnitude": "weight_sparsity"}
CALLBACKS = {"l1_filter": cb.StructuredPruning, "taylor": cb.StructuredPruning,
             "magnitude": cb.MagnitudePruning}


class SparsityAtEpochEnd(keras.callbacks.Callback):
    """What a callback after the pruning one (`ModelCheckpoint`, a logger) sees at the end
    of each epoch: the mask sparsity."""

    def __init__(self, key):
        super().__init__()
        self.key, self.seen = key, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(mask_stats(self.model)[self.key])


@pytest.mark.parametrize("method", sorted(CALLBACKS))
@pytest.mark.parametrize("event, seen", [
    (5, [0.5, 0.5]),  # in epoch 0's last execution (steps 4-5)
    (11, [0.0, 0.5]),  # in the fit's last execution (steps 10-11): once, not again at its end
])
def test_an_event_in_an_epochs_last_execution_is_applied_at_its_end(method, event, seen):
    # before, the callbacks after this one saw it only at the next epoch (0 at epoch 0's
    # end; at the fit's last epoch, not at all: it came at on_train_end)
    recorder = SparsityAtEpochEnd(SPARSITY[method])
    masked, callback = _fits(
        method, lambda: CALLBACKS[method](schedules.OneShot(0.5, step=event)), [(0, 2)],
        after=[recorder])
    assert [step for step, _ in callback.events] == [6 if event == 5 else 12]
    assert recorder.seen == pytest.approx(seen, abs=0.01)
    assert mask_stats(masked)[SPARSITY[method]] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("method", sorted(CALLBACKS))
def test_an_epoch_end_leaves_its_event_to_one_at_the_next_epochs_first_step(method):
    # events at 5 (ratio 0.25, epoch 0's last execution) and 6 (0.5, epoch 1's first
    # step): one event at step 6, to 0.5 -- not 0.25 at epoch 0's end, then 0.5 at
    # step 6 by scores (taylor's) that the first just reset
    recorder = SparsityAtEpochEnd(SPARSITY[method])
    both, callback = _fits(method, lambda: CALLBACKS[method](
        schedules.Iterative(0.5, begin_step=5, end_step=6, frequency=1)), [(0, 2)],
        after=[recorder])
    assert [step for step, _ in callback.events] == [6]
    assert recorder.seen == pytest.approx([0.0, 0.5], abs=0.01)
    later, _ = _fits(method, lambda: CALLBACKS[method](schedules.OneShot(0.5, step=6)),
                     [(0, 2)])
    for a, b in zip(both.weights, later.weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   atol=1e-6, err_msg=a.path)


class SparsityAtValidation(keras.callbacks.Callback):
    """What the epoch's validation inside fit measures (`on_test_begin`, after the pruning
    callback's): the mask sparsity."""

    def __init__(self, key):
        super().__init__()
        self.key, self.seen = key, []

    def on_test_begin(self, logs=None):
        self.seen.append(mask_stats(self.model)[self.key])


@pytest.mark.parametrize("method", sorted(CALLBACKS))
@pytest.mark.parametrize("event, seen", [
    (5, [0.5, 0.5]),  # in epoch 0's last execution (steps 4-5)
    (11, [0.0, 0.5]),  # in the fit's last execution (steps 10-11)
])
def test_an_epochs_validation_sees_the_event_of_its_last_execution(method, event, seen):
    # fit validates (evaluate, on_test_begin) before on_epoch_end: before, the event came
    # after it, so val_loss -- what ModelCheckpoint(save_best_only) and EarlyStopping
    # watch -- was measured on the masks before the event ([0, 0.5] and [0, 0] here)
    recorder = SparsityAtValidation(SPARSITY[method])
    val_x, val_y = data(32, seed=1)
    masked, callback = _fits(
        method, lambda: CALLBACKS[method](schedules.OneShot(0.5, step=event)), [(0, 2)],
        after=[recorder], validation_data=(val_x, val_y))
    assert [step for step, _ in callback.events] == [6 if event == 5 else 12]  # once
    assert recorder.seen == pytest.approx(seen, abs=0.01)
    final = masked.evaluate(val_x, val_y, batch_size=16, verbose=0)
    assert masked.history.history["val_loss"][-1] == pytest.approx(final, rel=1e-6)


def test_a_standalone_evaluate_applies_no_event():
    masked = tfc.wrap(conv_bn_net(), "l1_filter")
    masked.compile(optimizer=keras.optimizers.SGD(0.01),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = cb.StructuredPruning(schedules.OneShot(0.5, step=0))
    x, y = data(32)
    masked.evaluate(x, y, batch_size=16, verbose=0, callbacks=[callback])
    assert callback.events == [] and mask_stats(masked)["channel_sparsity"] == 0
