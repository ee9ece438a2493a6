"""The warnings of the pruning callbacks: a fit that restarts a schedule on pruned masks
(`ScheduleRestartWarning`) and one that applies none of its schedule's events, or ends
before `SoftTopK` hardens its masks (`ScheduleSkippedWarning`). Each rule is a function
of the model and the steps the caller read, and returns the warning's text (or None)."""

import math
import warnings

from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, WeightMask
from tfcompress.pruners.restored import last_event_step
from tfcompress.pruners.stats import mask_stats


class ScheduleRestartWarning(UserWarning):
    """A pruning schedule starts from step 0 on a model whose masks already prune.

    A Python warning (not a log line) so that a run that starts from a pruned model on
    purpose can silence exactly this one with `warnings.filterwarnings`."""


def warn_if_restarting(model, callback_name, step):
    """Warns (`ScheduleRestartWarning`) when the optimizer's step counter, `step` at the
    start of a fit, is 0 but the masks of `model` already prune channels or weights
    (`mask_stats`, the reports' reading of a kept channel); returns the warning's text,
    or None.

    That is what a weights file loaded before the optimizer was built leaves: Keras skips
    the unbuilt optimizer's variables, so `iterations` stays 0 while the masks come back
    pruned, and the schedule's events fire again from step 0 and prune the pruned model
    further, silently. A `.keras` file and `BackupAndRestore` restore the step too."""
    if step:
        return None
    pruned = _already_pruned(model)
    if not pruned:
        return None
    message = (
        f"Model '{model.name}': {callback_name} starts its schedule from step 0 (the "
        f"optimizer's iterations = {step}), but the model's masks already prune {pruned}, "
        "so the schedule's events fire again from step 0 and prune the pruned model "
        "further. A run resumed from a weights file (model.save_weights, "
        "ModelCheckpoint(save_weights_only=True)) loaded before the optimizer was built "
        "gets its masks back but not its step: compile, build the optimizer "
        "(model.optimizer.build(model.trainable_variables)), then model.load_weights; or "
        "save and load a whole .keras file, or use keras.callbacks.BackupAndRestore. If "
        "this fit starts from a pruned model on purpose, silence this with "
        "warnings.filterwarnings('ignore', "
        "category=tfcompress.callbacks.ScheduleRestartWarning)."
    )
    warnings.warn(message, ScheduleRestartWarning, stacklevel=2)
    return message


class ScheduleSkippedWarning(UserWarning):
    """A fit applied none of its pruning schedule's events: they all fall before the
    fit's first step (never applied) or after its last -- for `SoftTopK`, the fit ended
    before its schedule's `ending_epoch`, with the masks still soft. A Python warning, so
    a run whose schedule continues in a later fit can silence exactly this one."""

# the end of every ScheduleSkippedWarning
_LATER_FIT = "If a later fit continues the schedule, this is expected."
_SILENCE_SKIPPED = (
    "Silence this with warnings.filterwarnings('ignore', "
    "category=tfcompress.callbacks.ScheduleSkippedWarning)."
)


def warn_if_skipped(model, callback_name, schedule, first, last, applied):
    """Warns (`ScheduleSkippedWarning`) at the end of a fit that trained the optimizer
    steps `first` to `last` and applied `applied` of `schedule`'s events, when it
    applied none and either

    - the schedule's latest event before `first` (with a ratio above 0) was never
      applied: the masks of `model` prune nothing and no pruning callback applied an
      event at or after it in this process (`restored.last_event_step`). A fit's first
      batch checks only its own step (`DueEvents`), so such events are skipped for
      good -- e.g. `OneShot(r)` (step 0) in a fit after a warm-up fit: schedule steps
      count the optimizer's iterations, which continue across fits; or
    - the schedule's first event is after `last`: nothing was pruned (a later fit may
      still reach it: the warning says so).

    A `Schedule` of one's own that does not list its `event_steps` warns when the masks
    of `model` prune nothing and no event was applied to it in this process.

    Returns the warning's text, or None. No warning when an event was applied, when no
    batch was trained, or when the earlier events may have been applied (masks that
    prune: a resumed run)."""
    if applied or first is None or last < first:
        return None
    try:
        steps = schedule.event_steps
    except NotImplementedError:  # a user's schedule that does not list its events
        return _warn_unlisted(model, callback_name, schedule, first, last)
    if not steps:
        return None
    before = range(steps.start, min(first, steps.stop), steps.step)
    head = (
        f"Model '{model.name}': {callback_name} applied no pruning event in this fit, "
        f"which trained steps {first} to {last} (the optimizer's iterations); its "
        f"schedule {_name(schedule)} prunes at step {_few(steps)}"
    )
    if before and schedule(before[-1])[1] > 0 and not _already_pruned(model):
        remembered = last_event_step(model)
        if remembered is not None and remembered >= before[-1]:
            return None
        why = (
            f". Its events before this fit's first step (step {_few(before)}) were never "
            "applied (a fit's first batch checks only its own step, so that a resumed "
            "run is not pruned again), and the masks prune nothing. Schedule "
            "steps count the optimizer's iterations, which continue across fits: this "
            f"model's optimizer had trained {first} steps before this fit. Give the "
            f"schedule steps inside this fit (e.g. OneShot(ratio, step={first}), or "
            f"begin_step >= {first})."
        )
    elif steps[0] > last:
        why = (
            ". None is at or before this fit's last step, so nothing was pruned "
            "(tfcompress.strip returns the unpruned model). Give the "
            f"schedule steps inside this fit (e.g. OneShot(ratio, step=s) with {first} <= "
            f"s <= {last}) or train past step {steps[0]}. {_LATER_FIT}"
        )
    else:
        return None
    message = f"{head}{why} {_SILENCE_SKIPPED}"
    warnings.warn(message, ScheduleSkippedWarning, stacklevel=2)
    return message


def _warn_unlisted(model, callback_name, schedule, first, last):
    """`warn_if_skipped`'s rule for a schedule that does not list its `event_steps`."""
    if _already_pruned(model) or last_event_step(model) is not None:
        return None
    message = (
        f"Model '{model.name}': {callback_name} applied no pruning event in this fit, "
        f"which trained steps {first} to {last} (the optimizer's iterations), and the "
        "masks prune nothing (tfcompress.strip returns the unpruned model): its schedule "
        f"{_name(schedule)} returned should_prune=False at every one of them (it does not "
        "list its event_steps, so which steps it prunes at cannot be named). Schedule "
        "steps count the optimizer's iterations, which continue across fits. "
        f"{_LATER_FIT} {_SILENCE_SKIPPED}"
    )
    warnings.warn(message, ScheduleSkippedWarning, stacklevel=3)
    return message


def _name(schedule):
    """repr(schedule); the class name for a schedule of one's own without get_config."""
    try:
        return repr(schedule)
    except NotImplementedError:
        return type(schedule).__name__


def warn_if_still_soft(model, callback_name, schedule, first, end, steps_per_epoch):
    """Warns (`ScheduleSkippedWarning`) at the end of a fit of `SoftTopK` whose masks are
    still soft, which trained the optimizer steps `first` to `end - 1` (`end`: its
    iterations now), when it ended before the `ACoSPTemperature` `schedule` hardens the
    masks: epoch `end / steps_per_epoch` before `ending_epoch`. As the second rule of
    `warn_if_skipped`: the one event that prunes (hardening) is after the fit, so
    nothing was pruned (a later fit may still reach it: the warning says so).

    Returns the warning's text, or None. No warning when no batch was trained (`first`
    None) or the fit reached `ending_epoch` (`SoftTopK` hardens the masks at its end)."""
    if first is None or end <= first or schedule.is_hard(end / steps_per_epoch):
        return None
    ending = schedule.ending_epoch
    hard_step = math.ceil(ending * steps_per_epoch)
    reached = f"{end / steps_per_epoch:g}"
    message = (
        f"Model '{model.name}': {callback_name}'s masks are still soft at the end of this "
        f"fit, which trained from epoch {first / steps_per_epoch:g} to epoch {reached} "
        f"(steps {first} to {end - 1} of the optimizer's iterations, {steps_per_epoch} "
        f"steps an epoch); its schedule {schedule!r} hardens them to each mask's top k "
        f"channels at ending_epoch={ending} (step {hard_step}), after this fit. So no "
        "channel is pruned yet: tfcompress.strip returns the model with all its "
        f"channels. Fit longer, to epoch {ending} ({hard_step - end} more steps), or give "
        f"the schedule a smaller ending_epoch (this fit reached epoch {reached}). "
        f"{_LATER_FIT} {_SILENCE_SKIPPED}"
    )
    warnings.warn(message, ScheduleSkippedWarning, stacklevel=2)
    return message


def _few(steps):
    """A few of `steps` as words: "0", "2, 8, 14", "0, 100, 200, ..., 2000 (21 events)"."""
    if len(steps) <= 4:
        return ", ".join(str(t) for t in steps)
    return f"{steps[0]}, {steps[1]}, {steps[2]}, ..., {steps[-1]} ({len(steps)} events)"


def _already_pruned(model):
    """What the masks of `model` prune now, as words ("3 of 32 channels (0.0938)"), or
    "" when they keep everything; read by `mask_stats`."""
    stats = mask_stats(model)
    pruned = []
    if stats.get("channel_sparsity"):
        total = sum(m.units for m in layers_of(model, ChannelMask))
        kept = sum(v for k, v in stats.items() if k.startswith("kept_channels/"))
        pruned.append(f"{total - kept} of {total} channels ({stats['channel_sparsity']:.3g})")
    if stats.get("weight_sparsity"):
        total = sum(
            math.prod(m.shape) for wm in layers_of(model, WeightMask) for m in wm.masks.values()
        )
        share = stats["weight_sparsity"]
        pruned.append(f"{round(share * total)} of {total} masked weights ({share:.3g})")
    return " and ".join(pruned)
