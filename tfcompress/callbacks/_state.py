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
    late) instead of skipped. Several events in one execution: the latest one's ratio.

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

