"""Helpers the pruning callbacks share: the training step, the schedule's due events and
the scheduled callbacks' driver (`ScheduledPruning`). The warnings they give are in
`_warnings`."""

import keras

from tfcompress.callbacks._warnings import warn_if_restarting, warn_if_skipped


def current_step(model):
    """The optimizer's step counter: restored with checkpoints, so schedules resume."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            f"Model '{model.name}' is not compiled: pruning callbacks read the optimizer's "
            "step counter. Compile the wrapped model before fit."
        )
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


class DueEvents:
    """The schedule's pruning events that are due, once each: Keras calls the batch
    callbacks once per execution, i.e. every `steps_per_execution` (k) steps, so an event
    at a step inside an execution is caught up at the next call (at most k - 1 steps
    late) instead of skipped; one inside an epoch's last execution is caught up at the
    end of the epoch (`at_epoch_end`: before its validation, if any), so the validation
    metrics and the checkpoints and logs written at the epoch's end have it, and
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
    (`steps_per_execution` > 1), at the end of that epoch -- before its validation, when
    fit runs one -- and of the fit.

    At the end of an epoch, so that the epoch's validation and the callbacks after this
    one (`ModelCheckpoint`, `EarlyStopping`, `BackupAndRestore`, `PruningSummaries`)
    measure, save and log the masks of every event trained past. Fit validates with
    `evaluate` on its own callback list after the epoch's last batch, before
    `on_epoch_end`, so the epoch's catch-up is applied in `on_test_begin` inside a fit
    (between `on_epoch_begin` and `on_epoch_end`; a standalone `evaluate` applies
    nothing) and, in an epoch without validation, in `on_epoch_end`; `DueEvents` applies
    it once. Not when the next epoch's first step has an event of its own
    (`DueEvents.at_epoch_end`): that one is applied, with the latest ratio, before the
    next batch, so within a fit one optimizer step never gets two events. (The end of
    the fit catches up regardless: it cannot tell whether another fit follows.) With
    `steps_per_execution=1` every event is applied before the batch of its own step, and
    the ends of epochs and of the fit find nothing left. The epoch's training loss and
    metrics are means over its batches, trained before the event caught up at its end.

    A fit that applies none of the schedule's events warns at its end
    (`ScheduleSkippedWarning`, `warn_if_skipped`) when the schedule's events fall
    before its first step while the masks prune nothing (never applied: e.g. `OneShot`'s
    step 0 after a warm-up fit, the step being the optimizer's, which continues across
    fits) or all after its last step.

    Subclasses that override `on_train_begin`, `on_epoch_begin`, `on_test_begin`,
    `on_epoch_end` or `on_train_end` call `super()`."""

    def __init__(self):
        super().__init__()
        self.events = []  # what `apply_event` returned at each event of this run
        self._due = DueEvents()
        self._applied = 0  # events applied in the current fit
        self._epoch = None  # the epoch fit is in (on_epoch_begin to on_epoch_end), or None

    def apply_event(self, step, ratio):
        """One pruning event at optimizer step `step` to `ratio`; returns its record."""
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self._due.start()
        self._applied = 0
        self._epoch = None
        # not compiled: nothing to check (the first batch's `current_step` names that)
        if getattr(self.model, "optimizer", None) is not None:
            warn_if_restarting(self.model, type(self).__name__, current_step(self.model))

    def on_train_batch_begin(self, batch, logs=None):
        step = current_step(self.model)
        self._apply(step, self._due.due(self.schedule, step))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_test_begin(self, logs=None):
        if self._epoch is not None:  # fit's validation of the epoch, not an evaluate
            self._catch_up(self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._catch_up(epoch)  # unless on_test_begin did (DueEvents: once)
        self._epoch = None

    def on_train_end(self, logs=None):
        step = current_step(self.model)
        self._apply(step, self._due.passed(self.schedule, step))
        warn_if_skipped(
            self.model, type(self).__name__, self.schedule, self._due.first, step - 1,
            self._applied)

    def _catch_up(self, epoch):
        """The events of `epoch`'s last execution (`DueEvents.at_epoch_end`)."""
        step = current_step(self.model)
        self._apply(step, self._due.at_epoch_end(self.schedule, step, self._more_epochs(epoch)))

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
