"""A channel mask that measures first-order Taylor importance during backprop."""

import keras
import tensorflow as tf
from keras import ops

from tfcompress.layers.channel_mask import ChannelMask


@keras.saving.register_keras_serializable(package="tfcompress")
class TaylorMask(ChannelMask):
    """A `ChannelMask` whose backward pass adds `sum(x * dL/dy)` per channel (the gradient
    of the loss with respect to a gate fixed at the mask value, Molchanov et al. 2017)
    and the number of summed positions to two non-trainable, replica-summed variables.

    `fold()` (called by `tfcompress.callbacks.StructuredPruning` after every batch) adds
    `|sum / count|` -- the Taylor importance of the batch -- to `score` and resets the
    sums. All three variables live in checkpoints. The forward pass is the plain mask.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.taylor_sum = self.add_weight(
            shape=(self.units,),
            initializer="zeros",
            trainable=False,
            aggregation="sum",
            name="taylor_sum",
        )
        self.taylor_count = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            aggregation="sum",
            name="taylor_count",
        )
        self.score = self.add_weight(
            shape=(self.units,), initializer="zeros", trainable=False, name="score"
        )

    def call(self, inputs, site=None):
        scale = ops.cast(self.channel_scale(), inputs.dtype)
        index = None
        if site is not None:
            index = ops.convert_to_tensor(self.channel_map(site), "int32") + 1
        return _taylor_product(inputs, scale, index, self.taylor_sum, self.taylor_count)

    def fold(self):
        """Adds the pending batch's `|mean(x * dy)|` to `score`; returns nothing."""
        count = ops.maximum(self.taylor_count.value, 1.0)
        self.score.assign(self.score.value + ops.abs(self.taylor_sum.value) / count)
        self.taylor_sum.assign(ops.zeros_like(self.taylor_sum.value))
        self.taylor_count.assign(0.0)

    def reset_scores(self):
        for v in (self.score, self.taylor_sum):
            v.assign(ops.zeros_like(v.value))
        self.taylor_count.assign(0.0)


def _taylor_product(x, scale, index, sum_var, count_var):
    """`x * scale` (scale gathered by `index`) whose gradient also accumulates Taylor sums."""
    units = scale.shape[0]

    @tf.custom_gradient
    def product(x, scale):
        full = scale if index is None else tf.gather(tf.concat([[1.0], scale], 0), index)
        full = tf.cast(full, x.dtype)

        def grad(dy):
            per_input = tf.reduce_sum(tf.reshape(x * dy, (-1, tf.shape(x)[-1])), axis=0)
            if index is None:
                per_channel = per_input
            else:
                per_channel = tf.math.unsorted_segment_sum(per_input, index, units + 1)[1:]
            per_channel = tf.cast(per_channel, sum_var.dtype)
            rows = tf.cast(tf.size(x) // tf.shape(x)[-1], count_var.dtype)
            updates = [sum_var.assign_add(per_channel), count_var.assign_add(rows)]
            with tf.control_dependencies(updates):
                return tf.identity(dy * full), tf.identity(tf.cast(per_channel, scale.dtype))

        return x * full, grad

    return product(x, scale)
