"""`PruningSummaries`: kept channels and sparsity in TensorBoard and the fit logs."""

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tfcompress.callbacks._state import current_step
from tfcompress.numbers import is_int, plain
from tfcompress.pruners.stats import mask_stats


def _scalar_metadata():
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"  # what TensorBoard's scalar dashboard reads
    return metadata.SerializeToString()


def scalar(name, value, step):
    """A TensorBoard scalar through `tf.summary.write` (works without the tensorboard
    package, which `tf.summary.scalar` needs)."""
    tf.summary.write(
        name, tf.constant(float(value), tf.float32), step=step, metadata=_scalar_metadata()
    )


class PruningSummaries(keras.callbacks.Callback):
    """Writes `tfcompress.pruners.stats.mask_stats` (kept channels as
    `ChannelMask.kept` defines them) as TensorBoard scalars under
    `pruning/` at the end of every epoch (and every `update_freq` steps, if an int),
    and adds the totals (`channel_sparsity`, `weight_sparsity`) to the epoch logs.

    Args:
        log_dir: TensorBoard directory (a `pruning` run is written inside it).
        update_freq: "epoch", or an integer number of steps.
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        if update_freq != "epoch" and not (is_int(update_freq) and update_freq >= 1):
            raise ValueError(
                "update_freq must be 'epoch' or a positive integer. Received: "
                f"update_freq={update_freq!r}"
            )
        self.log_dir = str(log_dir)
        self.update_freq = plain(update_freq)
        self._writer = None

    def _write(self, step):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(f"{self.log_dir}/pruning")
        stats = mask_stats(self.model)
        with self._writer.as_default():
            for name, value in stats.items():
                scalar(f"pruning/{name}", value, step)
        self._writer.flush()
        return stats

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq != "epoch":
            step = current_step(self.model)
            if step % self.update_freq == 0:
                self._write(step)

    def on_epoch_end(self, epoch, logs=None):
        stats = self._write(current_step(self.model))
        if logs is not None:
            for key in ("channel_sparsity", "weight_sparsity"):
                if key in stats:
                    logs[key] = stats[key]

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
