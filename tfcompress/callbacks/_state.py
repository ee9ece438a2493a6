"""Helpers the pruning callbacks share: the training step and the model's mask layers."""

import math
import warnings

import keras

from tfcompress.graph.trace import layers_of  # also re-exported for the callbacks
from tfcompress.layers import ChannelMask, WeightMask
from tfcompress.pruners.restored import last_event_step
from tfcompress.pruners.stats import mask_stats


def current_step(model):
    """The optimizer's step counter: restored with checkpoints, so schedules resume."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            f"Model '{model.name}' is not compiled: pruning callbacks read the optimizer's "
            "step counter. Compile the wrapped model before fit."
        )
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


class ScheduleRestartWarning(UserWarning):
    """A pruning schedule starts from step 0 on a model whose masks already prune.

    A Python warning (not a log line) so that a run that starts from a pruned model on
    purpose can silence exactly this one with `warnings.filterwarnings`."""


def warn_if_restarting(model, callback_name):
    """Warns (`ScheduleRestartWarning`) when the optimizer's step counter is 0 but the
    masks of `model` already prune channels or weights (`mask_stats`, the reports'
    reading of a kept channel); returns the warning's text, or None.

    That is what a weights file loaded before the optimizer was built leaves: Keras skips
    the unbuilt optimizer's variables, so `iterations` stays 0 while the masks come back
    pruned, and the schedule's events fire again from step 0 and prune the pruned model
    further, silently. A `.keras` file and `BackupAndRestore` restore the step too.
    Not compiled: nothing to check (the first batch's `current_step` names that)."""
    if getattr(model, "optimizer", None) is None:
        return None
    step = current_step(model)
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
    fit's first step (never applied) or after its last. A Python warning, so a run whose
    schedule continues in a later fit can silence exactly this one."""


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

    Returns the warning's text, or None. No warning when an event was applied, when no
    batch was trained, for a `Schedule` that does not list its `event_steps`, or when
    the earlier events may have been applied (masks that prune: a resumed run)."""
    if applied or first is None or last < first:
        return None
    try:
        steps = schedule.event_steps
    except NotImplementedError:  # a user's schedule that does not list its events
        return None
    if not steps:
        return None
    before = range(steps.start, min(first, steps.stop), steps.step)
    head = (
        f"Model '{model.name}': {callback_name} applied no pruning event in this fit, "
        f"which trained steps {first} to {last} (the optimizer's iterations); its "
        f"schedule {schedule!r} prunes at step {_few(steps)}"
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
            f"s <= {last}) or train past step {steps[0]}. If a later fit continues the "
            "schedule, this is expected."
        )
    else:
        return None
    message = (
        head + why + " Silence this with warnings.filterwarnings('ignore', "
        "category=tfcompress.callbacks.ScheduleSkippedWarning)."
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


class DueEvents:
    """The schedule's pruning events that are due, once each: Keras calls the batch
    callbacks once per execution, i.e. every `steps_per_execution` (k) steps, so an event
    at a step inside an execution is caught up at the next call (at most k - 1 steps
    late) instead of skipped; one inside an epoch's last execution is caught up at the
    end of the epoch (`at_epoch_end`), so checkpoints and logs written there have it, and
    one inside the fit's last execution at the end of the fit (`passed`), so the next
    fit, which starts past it, need not. Several events in one execution: the latest
    one's ratio.

    `start()` at the beginning of each fit: the first call checks only its own step (a
    resumed run's earlier events are in its restored masks); `first` is that step (None
    before the fit's first call), so the fit has trained from `first`.
    """

    def __init__(self):
        self.checked = None  # the last step asked about
        self.first = None  # the step of this fit's first call

    def start(self):
        self.checked = None
        self.first = None

    def due(self, schedule, step):
        """`(True, ratio)` of `schedule`'s latest event in (last step checked, `step`],
        else `(False, None)`."""
        if self.checked is None:
            self.first = step
        first = step if self.checked is None else self.checked + 1
        self.checked = step if self.checked is None else max(self.checked, step)
        for t in range(step, first - 1, -1):  # the latest first
            should, ratio = schedule(t)
            if should:
                return True, ratio
        return False, None

    def passed(self, schedule, step):
        """At the end of a fit, the optimizer at `step`: `due` for the steps trained
        since the last call, (last step checked, `step` - 1] (`step` itself is the next
        fit's first, checked by its first call)."""
        if self.checked is None:  # no batch trained
            return False, None
        return self.due(schedule, step - 1)

    def at_epoch_end(self, schedule, step, more_epochs):
        """At the end of an epoch, the optimizer at `step`: `passed`, unless
        `more_epochs` follow in this fit and `schedule` has an event at `step` itself.
        That event is the next epoch's first, which its first call (`due` at `step`)
        applies; catching up now would apply two events at one optimizer step (and
        "taylor" would rank the second by the scores the first just reset). So nothing
        now: that call finds the passed events and the one at `step` together, and the
        latest's ratio wins, as for several events in one execution."""
        if more_epochs and schedule(step)[0]:
            return False, None
        return self.passed(schedule, step)


class ScheduledPruning(keras.callbacks.Callback):
    """A callback that applies `self.schedule`'s events (`apply_event`) as `DueEvents`
    finds them: before each batch, and, for the events of an epoch's last execution
    (`steps_per_execution` > 1), at the end of that epoch and of the fit.

    At the end of an epoch, so that the callbacks after this one (`ModelCheckpoint`,
    `BackupAndRestore`, `PruningSummaries`) save and log the masks of every event
    trained past -- but not when the next epoch's first step has an event of its own
    (`DueEvents.at_epoch_end`): that one is applied, with the latest ratio, before the
    next batch, so within a fit one optimizer step never gets two events. (The end of
    the fit catches up regardless: it cannot tell whether another fit follows.) With
    `steps_per_execution=1` every event is applied before the batch of its own step, and
    the ends of epochs and of the fit find nothing left. The epoch's loss, metrics and
    validation were computed before its end, so without the event caught up there (with
    k = 1 they have it): a `save_best_only` checkpoint holds the event's masks under a
    score measured without them.

    A fit that applies none of the schedule's events warns at its end
    (`ScheduleSkippedWarning`, `warn_if_skipped`) when the schedule's events fall
    before its first step while the masks prune nothing (never applied: e.g. `OneShot`'s
    step 0 after a warm-up fit, the step being the optimizer's, which continues across
    fits) or all after its last step.

    Subclasses that override `on_train_begin`, `on_epoch_end` or `on_train_end` call
    `super()`."""

    def __init__(self):
        super().__init__()
        self.events = []  # what `apply_event` returned at each event of this run
        self._due = DueEvents()
        self._applied = 0  # events applied in the current fit

    def apply_event(self, step, ratio):
        """One pruning event at optimizer step `step` to `ratio`; returns its record."""
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self._due.start()
        self._applied = 0
        warn_if_restarting(self.model, type(self).__name__)

    def on_train_batch_begin(self, batch, logs=None):
        step = current_step(self.model)
        self._apply(step, self._due.due(self.schedule, step))

    def on_epoch_end(self, epoch, logs=None):
        step = current_step(self.model)
        self._apply(step, self._due.at_epoch_end(self.schedule, step, self._more_epochs(epoch)))

    def on_train_end(self, logs=None):
        step = current_step(self.model)
        self._apply(step, self._due.passed(self.schedule, step))
        warn_if_skipped(
            self.model, type(self).__name__, self.schedule, self._due.first, step - 1,
            self._applied)

    def _apply(self, step, due):
        should, ratio = due
        if should:
            self.events.append(self.apply_event(step, ratio))
            self._applied += 1

    def _more_epochs(self, epoch):
        """Whether this fit trains another epoch after `epoch` (True when the params do
        not tell: the end of the fit catches up what the end of the epoch left)."""
        epochs = (self.params or {}).get("epochs")
        stopping = getattr(self.model, "stop_training", False)  # e.g. EarlyStopping before
        return (epochs is None or epoch + 1 < epochs) and not stopping
