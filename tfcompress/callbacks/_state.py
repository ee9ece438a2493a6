"""Helpers the pruning callbacks share: the training step and the model's mask layers."""

import keras

from tfcompress.graph.trace import layers_of  # noqa: F401 (re-exported for callbacks)


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
    late) instead of skipped; one inside the fit's last execution is caught up at the end
    of the fit (`passed`), so the next fit, which starts past it, need not. Several
    events in one execution: the latest one's ratio.

    `start()` at the beginning of each fit: the first call checks only its own step (a
    resumed run's earlier events are in its restored masks).
    """

    def __init__(self):
        self.checked = None  # the last step asked about

    def start(self):
        self.checked = None

    def due(self, schedule, step):
        """`(True, ratio)` of `schedule`'s latest event in (last step checked, `step`],
        else `(False, None)`."""
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


class ScheduledPruning(keras.callbacks.Callback):
    """A callback that applies `self.schedule`'s events (`apply_event`) as `DueEvents`
    finds them: before each batch, and at the end of the fit for the events of its last
    execution (`steps_per_execution` > 1).

    Only at the end of the fit: at the end of an epoch, an event of its last execution
    would be applied apart from one at the next epoch's first step (two events at one
    step; "taylor" would rank the second by the scores the first reset)."""

    def __init__(self):
        super().__init__()
        self.events = []  # what `apply_event` returned at each event of this run
        self._due = DueEvents()

    def apply_event(self, step, ratio):
        """One pruning event at optimizer step `step` to `ratio`; returns its record."""
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self._due.start()

    def on_train_batch_begin(self, batch, logs=None):
        step = current_step(self.model)
        self._apply(step, self._due.due(self.schedule, step))

    def on_train_end(self, logs=None):
        step = current_step(self.model)
        self._apply(step, self._due.passed(self.schedule, step))

    def _apply(self, step, due):
        should, ratio = due
        if should:
            self.events.append(self.apply_event(step, ratio))
