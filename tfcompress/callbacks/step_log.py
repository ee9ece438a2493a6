"""`StepLog`: a log line (and TensorBoard scalars) every N steps of a Keras `fit`."""

import time

import keras
import numpy as np
import tensorflow as tf  # the summary writer is TensorFlow's (an edge)
from absl import logging

from tfcompress.callbacks._state import current_step
from tfcompress.callbacks.summaries import scalar
from tfcompress.numbers import check_count
from tfcompress.pruners.stats import mask_stats, stats_words


def step_line(step, total, values, lr, rate, stats, name=None):
    """The one training log line, of the custom loop's `--skip_step` and of `StepLog`:

        pruned: step 40/64  loss 0.4180  lr 0.019531  accuracy 0.8750  12.30 steps/s

    `name: ` when given, `/total` when known; `values`: the loss and metrics (those not
    finite left out); `stats`: `mask_stats` of the model (its totals, `stats_words`)."""
    head = f"step {step}" if total is None else f"step {step}/{total}"
    parts = [head if name is None else f"{name}: {head}"]
    if "loss" in values:
        parts.append(f"loss {values['loss']:.4f}")
    parts.append(f"lr {lr:.6f}")
    parts += [f"{k} {v:.4f}" for k, v in values.items() if k != "loss" and np.isfinite(v)]
    parts += stats_words(stats)
    parts.append(f"{rate:.2f} steps/s")
    return "  ".join(parts)


class StepLog(keras.callbacks.Callback):
    """Every `every` steps of a fit, and at its last step, one absl INFO line

        pruned: step 40/64  loss 0.4180  lr 0.019531  accuracy 0.8750  12.30 steps/s

    as the custom training loop's `--skip_step` lines read (`step_line`; what the masks
    keep, `mask_stats`, when the model has masks): the step is the optimizer's
    (a model fitted again counts on), its end the step this fit stops at; loss and
    metrics are Keras's running means over the epoch so far (as its progress bar shows).
    With `log_dir`, the same values as TensorBoard scalars `train/<name>/<key>` at that step
    (`learning_rate` for lr).

    Args:
        every: steps between two lines, an integer >= 1.
        name: what trains (e.g. a Deep Compression stage), the line's prefix and the
            scalars' group.
        log_dir: TensorBoard directory, or None.
    """

    def __init__(self, every, name, log_dir=None):
        super().__init__()
        check_count("every", every)
        self.every = every
        self.name = name
        self.log_dir = None if log_dir is None else str(log_dir)
        self._writer = None

    def on_train_begin(self, logs=None):
        self._step = current_step(self.model)
        self._end = None  # set at the first epoch, which is fit's initial_epoch
        self._window = (time.monotonic(), self._step)

    def on_epoch_begin(self, epoch, logs=None):
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if self._end is None and steps is not None and epochs is not None:
            self._end = self._step + steps * (epochs - epoch)

    def on_train_batch_end(self, batch, logs=None):
        # the optimizer's count: `batch` is not a step count with steps_per_execution
        # (Keras passes the epoch's step count at its last, partial execution)
        before, self._step = self._step, current_step(self.model)
        if self._step // self.every > before // self.every or self._step == self._end:
            self._log(dict(logs or {}))

    def _log(self, logs):
        started, first = self._window
        now = time.monotonic()
        rate = (self._step - first) / max(now - started, 1e-9)
        self._window = (now, self._step)
        values = {k: float(v) for k, v in logs.items()}
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        stats = mask_stats(self.model)
        logging.info(step_line(self._step, self._end, values, lr, rate, stats, self.name))
        if self.log_dir is None:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for key, value in {**values, "learning_rate": lr}.items():
                scalar(f"train/{self.name}/{key}", value, self._step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
