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

    `fold()` adds `|sum / count|` -- the Taylor importance of one batch -- to `score` and
    resets the sums. Every training-mode call folds the previous batch first, so inside
    `fit` the scores accumulate batch by batch with no per-batch work outside the
    compiled step; call `fold()` before reading `score`. All three variables live in
    checkpoints. The forward pass is the plain mask.

    When the mask is `folded` (see `ChannelMask`), the consumers' `scale_kernel` calls
    gather the sums from their kernel gradients: sum over a kernel's other axes of
    `K * dL/dK'` (K' = K * mask) is the same `sum(x * dL/dy)` for the channels that
    kernel reads.
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
            shape=(self.units,),
            initializer="zeros",
            trainable=False,
            aggregation="mean",
            name="score",
        )

    def call(self, inputs, site=None, folded=False, training=None):
        if training:
            self.fold()
        if folded:
            return _counted(inputs, self.taylor_count)
        return _taylor_product(
            inputs, self.channel_scale(), self._index(site), self.taylor_sum, self.taylor_count
        )

    def scale_kernel(self, kernel, axis, site=None):
            return _taylor_kernel(
            kernel, self.channel_scale(), self._index(site), axis % len(kernel.shape),
            self.taylor_sum,
        )

    def _index(self, site):
        """Input channel -> 1 + group channel (0: another group's channel), or None."""
        if site is None:
            return None
        return ops.convert_to_tensor(self.channel_map(site), "int32") + 1

    def fold(self):
        """Adds the pending batch's `|mean(x * dy)|` to `score`; returns nothing."""
        count = ops.maximum(self.taylor_count.value, 1.0)
        self.score.assign(self.score.value + ops.abs(self.taylor_sum.value) / count)
        self.taylor_sum.assign(ops.zeros_like(self.taylor_sum.value))
        self.taylor_count.assign(ops.zeros_like(self.taylor_count.value))

    def reset_scores(self):
        for v in (self.score, self.taylor_sum):
            v.assign(ops.zeros_like(v.value))
        self.taylor_count.assign(0.0)


def _gathered(scale, index, dtype):
    full = scale if index is None else tf.gather(tf.concat([[1.0], scale], 0), index)
    return tf.cast(full, dtype)


def _per_channel(per_input, index, units, dtype):
    if index is not None:
        per_input = tf.math.unsorted_segment_sum(per_input, index, units + 1)[1:]
    return tf.cast(per_input, dtype)


def _rows(x, dtype):
    return tf.cast(tf.size(x) // tf.shape(x)[-1], dtype)


def _taylor_product(x, scale, index, sum_var, count_var):
    """`x * scale` (scale gathered by `index`) whose gradient also accumulates Taylor sums."""
    units = scale.shape[0]

    @tf.custom_gradient
    def product(x, scale):
        full = _gathered(scale, index, x.dtype)

        def grad(dy):
            per_input = tf.reduce_sum(tf.reshape(x * dy, (-1, tf.shape(x)[-1])), axis=0)
            per_channel = _per_channel(per_input, index, units, sum_var.dtype)
            updates = [sum_var.assign_add(per_channel),
                       count_var.assign_add(_rows(x, count_var.dtype))]
            with tf.control_dependencies(updates):
                return tf.identity(dy * full), tf.identity(tf.cast(per_channel, scale.dtype))

        return x * full, grad

    return product(x, tf.convert_to_tensor(scale))


def _counted(x, count_var):
    """`x`, whose gradient adds the number of positions per channel to `count_var`."""

    @tf.custom_gradient
    def identity(x):
        def grad(dy):
            with tf.control_dependencies([count_var.assign_add(_rows(x, count_var.dtype))]):
                return tf.identity(dy)

        return tf.identity(x), grad

    return identity(x)


def _taylor_kernel(kernel, scale, index, axis, sum_var):
    """`kernel` with input channels (`axis`) scaled, whose gradient adds, per channel,
    the sum of `kernel * dL/dkernel'` over the other axes to `sum_var`."""
    units = scale.shape[0]
    rank = len(kernel.shape)
    shape = [1] * rank
    shape[axis] = -1
    others = [i for i in range(rank) if i != axis]

    @tf.custom_gradient
    def product(kernel, scale):
        full = tf.reshape(_gathered(scale, index, kernel.dtype), shape)

        def grad(dk):
            per_input = tf.reduce_sum(kernel * dk, axis=others)
            per_channel = _per_channel(per_input, index, units, sum_var.dtype)
            with tf.control_dependencies([sum_var.assign_add(per_channel)]):
                return tf.identity(dk * full), tf.identity(tf.cast(per_channel, scale.dtype))

        return kernel * full, grad

    # a tensor, not the (possibly distributed) variable: the custom gradient is the
    # kernel read's, and the variable's own gradient flows on through the read
    return product(tf.convert_to_tensor(kernel), scale)
