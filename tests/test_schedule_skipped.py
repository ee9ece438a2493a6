"""A fit that applies none of its pruning schedule's events says so at its end
(`ScheduleSkippedWarning`): events before the fit's first step that were never applied
(schedule steps are the optimizer's, which continue across fits, and a fit's first batch
checks only its own step) and events all after its last step. Before, both pruned
nothing in silence. Fits that apply an event, or continue a schedule whose earlier
events were applied, stay quiet. A `SoftTopK` fit that ends before `ending_epoch` (masks
still soft, nothing pruned) warns the same way; before, it too was silent."""

import re
import warnings

import keras
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.callbacks._warnings import warn_if_skipped
from tfcompress.pruners import mask_stats

from .pruning_models import conv_bn_net, data

BATCH = 16  # 64 images: 4 steps per epoch


def _wrapped(method="l1_filter"):
    masked = tfc.wrap(conv_bn_net(seed=0), method)
    masked.compile(optimizer=keras.optimizers.Adam(1e-2),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return masked


def _callback(method, schedule):
    if method == "magnitude":
        return cb.MagnitudePruning(schedule)
    return cb.StructuredPruning(schedule)


def _fit(model, callback=None, epochs=1, initial_epoch=0):
    x, y = data(64)
    model.fit(x, y, batch_size=BATCH, epochs=epochs, initial_epoch=initial_epoch,
              shuffle=False, verbose=0, callbacks=[callback] if callback else [])
    return callback


def _skipped(model, callback, epochs=1, initial_epoch=0):
    """`_fit`; returns the text of the one `ScheduleSkippedWarning` it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", cb.ScheduleSkippedWarning)
        _fit(model, callback, epochs, initial_epoch)
    (message,) = [str(w.message) for w in caught
                  if issubclass(w.category, cb.ScheduleSkippedWarning)]
    return message


def _no_warning(model, callback, epochs=1, initial_epoch=0):
    """`_fit`, failing on a `ScheduleSkippedWarning`."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", cb.ScheduleSkippedWarning)
        _fit(model, callback, epochs, initial_epoch)


def _quiet(model, callback, epochs=1):
    """`_no_warning`; returns the steps of the callback's events."""
    _no_warning(model, callback, epochs)
    return [step for step, _ in callback.events]


@pytest.mark.parametrize("method", ["l1_filter", "magnitude"])
def test_a_one_shot_at_step_0_after_a_warm_up_fit_warns(method):
    masked = _wrapped(method)
    _fit(masked)  # warm-up: the optimizer is at step 4
    callback = _callback(method, schedules.OneShot(0.5))
    message = _skipped(masked, callback)
    assert callback.events == []
    name = type(callback).__name__
    assert message.startswith(
        f"Model 'conv_bn_net': {name} applied no pruning event in this fit, which trained "
        "steps 4 to 7 (the optimizer's iterations); its schedule OneShot(ratio=0.5, "
        "step=0) prunes at step 0. Its events before this fit's first step (step 0) were "
        "never applied")
    for text in ("the masks prune nothing",
                 "Schedule steps count the optimizer's iterations, which continue across "
                 "fits: this model's optimizer had trained 4 steps before this fit",
                 "OneShot(ratio, step=4), or begin_step >= 4",
                 "category=tfcompress.callbacks.ScheduleSkippedWarning"):
        assert text in message, text


def _warned_pruning_nothing(schedule):
    """The warning of a first fit (steps 0 to 3) with `schedule`, which must apply no
    event and leave the masks pruning nothing."""
    masked = _wrapped()
    callback = cb.StructuredPruning(schedule)
    message = _skipped(masked, callback)
    assert callback.events == [] and mask_stats(masked)["channel_sparsity"] == 0
    return message


def test_a_one_shot_after_the_fits_last_step_warns():
    message = _warned_pruning_nothing(schedules.OneShot(0.5, step=10))
    assert message.startswith(
        "Model 'conv_bn_net': StructuredPruning applied no pruning event in this fit, "
        "which trained steps 0 to 3 (the optimizer's iterations); its schedule "
        "OneShot(ratio=0.5, step=10) prunes at step 10. None is at or before this fit's "
        "last step, so nothing was pruned (tfcompress.strip returns the unpruned model). "
        "Give the schedule steps inside this fit (e.g. OneShot(ratio, step=s) with "
        "0 <= s <= 3) or train past step 10. If a later fit continues the schedule, this "
        "is expected.")


def test_many_events_after_the_fit_are_named_a_few():
    masked = _wrapped("magnitude")
    schedule = schedules.Iterative(0.5, begin_step=100, end_step=1000, frequency=100)
    message = _skipped(masked, cb.MagnitudePruning(schedule))
    assert "prunes at step 100, 200, 300, ..., 1000 (10 events). None is at or" in message


def test_a_fit_whose_event_fires_is_quiet():
    masked = _wrapped()
    assert _quiet(masked, cb.StructuredPruning(schedules.OneShot(0.5, step=2))) == [2]
    assert mask_stats(masked)["channel_sparsity"] > 0


def test_fits_between_applied_events_are_quiet():
    """A schedule continued over several fits: the fit with no event of its own (steps 4
    to 7, events at 0 and 8) starts after an applied event, so the masks prune."""
    masked = _wrapped()
    schedule = schedules.Iterative(0.5, begin_step=0, end_step=8, frequency=8)  # 0, 8
    assert _quiet(masked, cb.StructuredPruning(schedule)) == [0]
    assert _quiet(masked, cb.StructuredPruning(schedule)) == []  # steps 4 to 7
    assert _quiet(masked, cb.StructuredPruning(schedule)) == [8]


def test_a_fit_after_an_applied_event_that_pruned_nothing_is_quiet():
    """The event of step 0 (ratio 0.5 / 11 = 0.045) rounds to no channel: the masks prune
    nothing, but the event was applied in this process (`restored.last_event_step`)."""
    masked = _wrapped()
    schedule = schedules.Iterative(0.5, begin_step=0, end_step=80, frequency=8)
    assert _quiet(masked, cb.StructuredPruning(schedule)) == [0]
    assert mask_stats(masked)["channel_sparsity"] == 0
    assert _quiet(masked, cb.StructuredPruning(schedule)) == []  # steps 4 to 7


def test_a_passed_event_to_ratio_0_is_quiet():
    """Polynomial's first event is to initial_ratio 0: skipped or not, it prunes nothing."""
    masked = _wrapped()
    _fit(masked)
    schedule = schedules.Polynomial(0.0, 0.5, begin_step=0, end_step=16, frequency=8)
    assert _quiet(masked, cb.StructuredPruning(schedule)) == []  # steps 4 to 7


def _soft_topk():
    """Hard masks from epoch 4 = step 16 (4 steps an epoch)."""
    return cb.SoftTopK(schedules.ACoSPTemperature(0.5, ending_epoch=4), min_channels=2)


def test_a_soft_topk_fit_that_ends_before_ending_epoch_warns():
    masked = _wrapped("soft_topk")
    callback = _soft_topk()
    message = _skipped(masked, callback, epochs=2)
    assert not callback.is_hard() and mask_stats(masked)["channel_sparsity"] == 0
    assert tfc.strip(masked).count_params() == conv_bn_net(seed=0).count_params()
    assert message == (
        "Model 'conv_bn_net': SoftTopK's masks are still soft at the end of this fit, "
        "which trained from epoch 0 to epoch 2 (steps 0 to 7 of the optimizer's "
        "iterations, 4 steps an epoch); its schedule ACoSPTemperature(final_ratio=0.5, "
        "ending_epoch=4, starting_epoch=0, initial_temperature=1.0, "
        "final_temperature=0.001, update='continuous') hardens them to each mask's top "
        "k channels at ending_epoch=4 (step 16), after this fit. So no channel is pruned "
        "yet: tfcompress.strip returns the model with all its channels. Fit longer, to "
        "epoch 4 (8 more steps), or give the schedule a smaller ending_epoch (this fit "
        "reached epoch 2). If a later fit continues the schedule, this is expected. "
        "Silence this with warnings.filterwarnings('ignore', "
        "category=tfcompress.callbacks.ScheduleSkippedWarning).")


def test_a_soft_topk_fit_to_ending_epoch_or_past_it_is_quiet():
    masked = _wrapped("soft_topk")
    callback = _soft_topk()
    _no_warning(masked, callback, epochs=4)  # hardened at the end of the fit
    assert callback.is_hard() and callback.hardened_at == 16
    masked = _wrapped("soft_topk")
    callback = _soft_topk()
    _no_warning(masked, callback, epochs=5)  # hardened before the first batch of epoch 4
    assert callback.is_hard() and callback.hardened_at == 16


def test_resumed_soft_topk_fits_warn_until_one_reaches_ending_epoch():
    """Fits resumed with initial_epoch (the optimizer's step continues): each names the
    epochs it trained; the one that reaches ending_epoch, and one after it, are quiet."""
    masked = _wrapped("soft_topk")
    callback = _soft_topk()
    assert "which trained from epoch 0 to epoch 2 (steps 0 to 7 " in _skipped(
        masked, callback, epochs=2)
    message = _skipped(masked, callback, epochs=3, initial_epoch=2)
    for text in ("which trained from epoch 2 to epoch 3 (steps 8 to 11 of the optimizer's",
                 "Fit longer, to epoch 4 (4 more steps)", "(this fit reached epoch 3)"):
        assert text in message, text
    _no_warning(masked, callback, epochs=4, initial_epoch=3)
    assert callback.is_hard() and callback.hardened_at == 16
    _no_warning(masked, callback, epochs=5, initial_epoch=4)  # masks hard from the start


def test_the_warning_is_silenced_by_its_category():
    masked = _wrapped()
    with warnings.catch_warnings():
        warnings.simplefilter("error", cb.ScheduleSkippedWarning)
        warnings.filterwarnings("ignore", category=cb.ScheduleSkippedWarning)  # the advice
        _fit(masked, cb.StructuredPruning(schedules.OneShot(0.5, step=10)))


class FromStep(schedules.Schedule):
    """A schedule of one's own that does not list its `event_steps` (nor get_config)."""

    def __init__(self, step):
        self.step = step

    def __call__(self, step):
        return step == self.step, 0.5


def test_a_schedule_that_does_not_list_its_events_warns_when_nothing_was_pruned():
    """Before, such a schedule was never checked: a fit it never fired in was silent."""
    message = _warned_pruning_nothing(FromStep(10))
    assert message.startswith(
        "Model 'conv_bn_net': StructuredPruning applied no pruning event in this fit, "
        "which trained steps 0 to 3 (the optimizer's iterations), and the masks prune "
        "nothing (tfcompress.strip returns the unpruned model): its schedule FromStep "
        "returned should_prune=False at every one of them (it does not list its "
        "event_steps, so which steps it prunes at cannot be named).")
    assert message.endswith(
        "If a later fit continues the schedule, this is expected. Silence this with "
        "warnings.filterwarnings('ignore', "
        "category=tfcompress.callbacks.ScheduleSkippedWarning).")


def test_a_schedule_of_ones_own_without_get_config_is_named_by_its_class():
    """Its repr (get_config) raised NotImplementedError at the end of the fit."""

    class Listed(FromStep):
        @property
        def event_steps(self):
            return range(self.step, self.step + 1)

    message = _warned_pruning_nothing(Listed(10))
    assert "its schedule Listed prunes at step 10. None is at or before" in message


def test_a_schedule_that_does_not_list_its_events_is_quiet_once_it_pruned():
    masked = _wrapped()
    assert _quiet(masked, cb.StructuredPruning(FromStep(2))) == [2]
    assert _quiet(masked, cb.StructuredPruning(FromStep(2))) == []  # steps 4 to 7: pruned


def test_no_batch_trained_is_not_checked():
    schedule = schedules.OneShot(0.5, step=10)
    assert warn_if_skipped(None, "StructuredPruning", schedule, None, 3, 0) is None


def test_the_warning_is_exported():
    assert "ScheduleSkippedWarning" in cb.__all__
    assert issubclass(cb.ScheduleSkippedWarning, UserWarning)
    assert re.search("ScheduleSkippedWarning", cb.__doc__)
