"""A channel mask that measures first-order Taylor importance during backprop."""

import contextlib
import weakref

import keras
import tensorflow as tf
from keras import ops

from tfcompress.layers.channel_mask import ChannelMask

# How the per-channel products `a * g` (activation times dL/da, at each position m of
# each example t of each batch b) become one score; `count` is the number of summed
# positions of a batch (examples x positions).
AGGREGATIONS = {
    # jacobgil/pytorch-pruning (the seed): sum over batches of mean_{t,m}(a * g), |.| at
    # the end -- |sum_b sum_{t,m} a g / count_b|.
    "sum_then_abs": "|sum over batches of the batch mean of a*g|",
    # tfcompress before issue #14: |mean_{t,m}(a * g)| per batch, summed over batches.
    "batch_abs": "sum over batches of |batch mean of a*g|",
    # Molchanov et al. 2017, Eq. 8: |mean_m(a * g)| per example, averaged over the
    # examples of a batch, summed over batches.
    "example_abs": "sum over batches of the mean over examples of |mean over positions of a*g|",
    # mean of |a * g| per element, summed over batches.
    "mean_abs": "sum over batches of the batch mean of |a*g|",
}
DEFAULT_AGGREGATION = "sum_then_abs"
# Aggregations that need the per-example or per-element products: they cannot be read
# from a kernel gradient (summed over the batch), so the mask stays on the activations.
_NEEDS_ACTIVATIONS = ("example_abs", "mean_abs")


def check_aggregation(aggregation):
    """Raises naming `aggregation` unless it is a key of `AGGREGATIONS`."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(
            f"TaylorMask aggregation must be one of {sorted(AGGREGATIONS)}. "
            f"Received: aggregation={aggregation!r}"
        )


@keras.saving.register_keras_serializable(package="tfcompress")
class TaylorMask(ChannelMask):
    """A `ChannelMask` whose backward pass accumulates first-order Taylor importance
    (Molchanov et al. 2017): per channel, products `a * dL/da` of the masked activation
    and its gradient (the gradient of the loss with respect to a gate fixed at the mask
    value), reduced per batch into two non-trainable, replica-summed variables
    (`taylor_sum`, and `taylor_count`, the number of summed positions).

    `fold()` adds the pending batch's term to `score` and resets the sums; every
    training-mode call folds the previous batch first, so inside `fit` the scores
    accumulate batch by batch with no per-batch work outside the compiled step. Call
    `fold()`, then read `importance()`. All three variables live in checkpoints; the
    forward pass is the plain mask.

    Args:
        units, channel_maps: see `ChannelMask`.
        aggregation: how products become a score (`AGGREGATIONS`), with `count_b` the
            positions (examples x spatial positions) of batch b:
            - "sum_then_abs" (default; jacobgil/pytorch-pruning): `|sum_b sum a*g / count_b|`
              -- the signed batch means are summed, the absolute value taken at the end.
            - "batch_abs": `sum_b |sum a*g| / count_b` -- |.| per batch (tfcompress before
              issue #14).
            - "example_abs" (Molchanov et al. 2017, Eq. 8 exactly): per example t,
              `|mean over positions of a*g|`, averaged over the examples, summed over
              batches: `sum_b sum_t |sum_m a*g| / count_b`.
            - "mean_abs": `sum_b sum |a*g| / count_b`, the mean of |a*g| per element.
            None: the "aggregation" option the model was wrapped with
            (`tfcompress.wrap(model, "taylor", aggregation=...)`, kept in `wrapping`),
            else "sum_then_abs". The l2 normalisation of the paper is not applied here:
            it belongs to the ranking (`normalize="l2"`).

    When the mask is `folded` (see `ChannelMask`), the consumers' `scale_kernel` calls
    gather the sums from their kernel gradients: sum over a kernel's other axes of
    `K * dL/dK'` (K' = K * mask) is the same `sum(a * dL/da)` for the channels that
    kernel reads. "example_abs" and "mean_abs" need the products before the sum over the
    batch, so with them the mask scales the activations even when called folded.
    """

    def __init__(self, units, channel_maps=None, *, aggregation=None, **kwargs):
        super().__init__(units, channel_maps=channel_maps, **kwargs)
        if aggregation is None:
            options = (self.wrapping or {}).get("options") or {}
            aggregation = options.get("aggregation", DEFAULT_AGGREGATION)
        check_aggregation(aggregation)
        if self.internal_axis is not None and aggregation in _NEEDS_ACTIVATIONS:
            raise ValueError(
                f"TaylorMask '{self.name}' masks the internal axis {self.internal_axis!r} of "
                f"a layer, which is scored from the layer's weight gradients: aggregation "
                f"{aggregation!r} needs per-example activations, which no tensor of the "
                f"model holds for it. Use 'sum_then_abs' or 'batch_abs'. Received: "
                f"aggregation={aggregation!r}"
            )
        self.aggregation = aggregation
        self._loss_scaler = None  # see `watch_loss_scale`; not part of the config

    def watch_loss_scale(self, optimizer):
        """Under a `keras.optimizers.LossScaleOptimizer` (mixed precision), the gradients
        the products are made of carry its loss scale, and those of a step it skips
        (overflow) are not finite: each batch's sums are then divided by the scale and
        a non-finite one is left out, as the optimizer leaves out the step. The pruning
        callbacks call this at the start of `fit`, before the train step is traced."""
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        # weakly: an attribute holding the optimizer would make it one of the layer's
        # tracked dependencies (checkpoints, SavedModel) and keep it alive
        self._loss_scaler = weakref.ref(optimizer) if scaled else None

    @contextlib.contextmanager
    def loss_scale_off(self):
        """Inside, the sums are taken as the gradients come (no loss scale divided out):
        for gradients of the loss itself (`tfcompress.importance.taylor.measure`) on a
        model whose masks a mixed-precision fit left watching its optimizer."""
        ref, self._loss_scaler = getattr(self, "_loss_scaler", None), None
        try:
            yield
        finally:
            self._loss_scaler = ref

    @property
    def loss_scale(self):
        """What the watched optimizer scales the loss by now, as its `scale_loss` reads
        it (its variable once built, else its initial scale), or None."""
        ref = getattr(self, "_loss_scaler", None)
        opt = None if ref is None else ref()
        if opt is None:
            return None
        return opt.dynamic_scale if opt.built else opt.initial_scale

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
        if folded and self.aggregation not in _NEEDS_ACTIVATIONS:
            return _counted(inputs, self.taylor_count)
        return _taylor_product(
            inputs,
            self.channel_scale(),
            self._index(site),
            self.taylor_sum,
            self.taylor_count,
            self.aggregation,
            self.loss_scale,
        )

    def scale_kernel(self, kernel, axis, site=None):
        if self.aggregation in _NEEDS_ACTIVATIONS:
            return kernel  # `call` masked the activations
        return _taylor_kernel(
            kernel,
            self.channel_scale(),
            self._index(site),
            axis % len(kernel.shape),
            self.taylor_sum,
            self.loss_scale,
        )

    def _index(self, site):
        """Input channel -> 1 + group channel (0: another group's channel), or None."""
        if site is None:
            return None
        return ops.convert_to_tensor(self.channel_map(site), "int32") + 1

    def fold(self):
        """Adds the pending batch's term (`taylor_sum / taylor_count`, signed for
        "sum_then_abs", else its absolute value) to `score`; returns nothing."""
        count = ops.maximum(self.taylor_count.value, 1.0)
        term = self.taylor_sum.value / count
        if self.aggregation != "sum_then_abs":
            term = ops.abs(term)
        self.score.assign(self.score.value + term)
        self.taylor_sum.assign(ops.zeros_like(self.taylor_sum.value))
        self.taylor_count.assign(ops.zeros_like(self.taylor_count.value))

    def importance(self):
        """The accumulated importance per group channel (`|score|`), after `fold()`."""
        return ops.abs(self.score.value)

    def reset_scores(self):
        for v in (self.score, self.taylor_sum):
            v.assign(ops.zeros_like(v.value))
        self.taylor_count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "aggregation": self.aggregation}


def _gathered(scale, index, dtype):
    """`scale` (one factor per group channel) per input channel through `index` (0: a
    channel no group holds, factor 1), as `dtype`. The 1 takes `scale`'s dtype (float16
    under mixed_float16)."""
    if index is not None:
        one = tf.ones([1], scale.dtype)
        scale = tf.gather(tf.concat([one, scale], 0), index)
    return tf.cast(scale, dtype)


def _per_channel(per_input, index, units, dtype):
    """Sums the last axis (input channels) into group channels."""
    if index is not None:
        moved = tf.experimental.numpy.moveaxis(per_input, -1, 0)
        summed = tf.math.unsorted_segment_sum(moved, index, units + 1)[1:]
        per_input = tf.experimental.numpy.moveaxis(summed, 0, -1)
    return tf.cast(per_input, dtype)


def _rows(x, dtype):
    return tf.cast(tf.size(x) // tf.shape(x)[-1], dtype)


def _batch_term(x, dy, index, units, aggregation, dtype):
    """Per group channel, the batch's sum of products for `aggregation` (see
    `AGGREGATIONS`), and the same sum signed (the gate's gradient)."""
    channels = tf.shape(x)[-1]
    product = x * dy
    if aggregation == "example_abs":
        per_example = tf.reduce_sum(tf.reshape(product, (tf.shape(x)[0], -1, channels)), 1)
        per_example = _per_channel(per_example, index, units, dtype)
        return tf.reduce_sum(tf.abs(per_example), 0), tf.reduce_sum(per_example, 0)
    signed = _per_channel(
        tf.reduce_sum(tf.reshape(product, (-1, channels)), 0), index, units, dtype
    )
    if aggregation == "mean_abs":
        absolute = tf.reduce_sum(tf.reshape(tf.abs(product), (-1, channels)), 0)
        return _per_channel(absolute, index, units, dtype), signed
    return signed, signed


def _unscaled(term, loss_scale):
    """A batch's Taylor sums without the optimizer's loss scale (`watch_loss_scale`);
    zeros for a batch whose sums are not finite (a step the optimizer skips): its
    positions still count, so it adds 0 to the score. Unchanged without a loss scale."""
    if loss_scale is None:
        return term
    term = term / tf.cast(tf.convert_to_tensor(loss_scale), term.dtype)
    return tf.where(tf.reduce_all(tf.math.is_finite(term)), term, tf.zeros_like(term))


def _taylor_product(x, scale, index, sum_var, count_var, aggregation, loss_scale=None):
    """`x * scale` (scale gathered by `index`) whose gradient also accumulates Taylor sums."""
    units = scale.shape[0]

    @tf.custom_gradient
    def product(x, scale):
        full = _gathered(scale, index, x.dtype)

        def grad(dy):
            term, gate_grad = _batch_term(x, dy, index, units, aggregation, sum_var.dtype)
            updates = [
                sum_var.assign_add(_unscaled(term, loss_scale)),
                count_var.assign_add(_rows(x, count_var.dtype)),
            ]
            with tf.control_dependencies(updates):
                return tf.identity(dy * full), tf.identity(tf.cast(gate_grad, scale.dtype))

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


def _taylor_kernel(kernel, scale, index, axis, sum_var, loss_scale=None):
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
            added = sum_var.assign_add(_unscaled(per_channel, loss_scale))
            with tf.control_dependencies([added]):
                return tf.identity(dk * full), tf.identity(tf.cast(per_channel, scale.dtype))

        return kernel * full, grad

    # a tensor, not the (possibly distributed) variable: the custom gradient is the
    # kernel read's, and the variable's own gradient flows on through the read
    return product(tf.convert_to_tensor(kernel), scale)
