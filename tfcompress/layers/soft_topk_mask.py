"""ACoSP's learnable soft top-k channel mask (sigmoid form)."""

import keras
from keras import ops

from tfcompress.layers.channel_mask import ChannelMask


@keras.saving.register_keras_serializable(package="tfcompress")
class SoftTopKMask(ChannelMask):
    """A `ChannelMask` times a soft top-k selection learned from per-channel logits.

    ACoSP's `sigmoid_soft_top_k` (merantix/acosp, `acosp/masks/sigmoid_soft_top_k.py`):
    with `z = (w - mean(w)) / max(std(w), 1e-3)` the standardised logits (`std` unbiased,
    as `torch.std`: divided by C - 1) and `x0` the value exactly `keep` of them exceed (the
    `1 - keep / units` quantile, linear interpolation, no gradient), the soft mask is
    `sigmoid((z - x0) / temperature)`: as the temperature anneals towards 0 it becomes a
    0/1 selection of the `keep` best channels. The logits start at N(0, 1), as ACoSP's
    `torch.nn.init.normal_`. Once `hard` is set (by the callback, see
    `tfcompress.callbacks.SoftTopK`), only the binary `mask` applies.

    State: `logits` (trainable), `temperature`, `keep`, `hard` (non-trainable), all in
    checkpoints. `keep` starts at `units` (no selection: the soft mask is 1).
    """

    def __init__(self, units, seed=None, **kwargs):
        super().__init__(units, **kwargs)
        self.seed = seed

    def build(self, input_shape):
        super().build(input_shape)
        self.logits = self.add_weight(
            shape=(self.units,),
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
            trainable=True,
            name="logits",
        )
        self.temperature = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="temperature"
        )
        self.keep = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(float(self.units)),
            trainable=False,
            name="keep",
        )
        self.hard = self.add_weight(shape=(), initializer="zeros", trainable=False, name="hard")

    def standardized_logits(self):
        z = self.logits - ops.mean(self.logits)
        # unbiased, as torch.std (one channel: no spread, and keep = units anyway)
        std = ops.sqrt(ops.sum(ops.square(z)) / max(self.units - 1, 1))
        return z / ops.maximum(std, 1e-3)

    def soft_mask(self):
        z = self.standardized_logits()
        q = ops.clip(1.0 - self.keep / float(self.units), 0.0, 1.0)
        x0 = ops.stop_gradient(ops.quantile(z, q))
        soft = ops.sigmoid((z - x0) / ops.maximum(self.temperature, 1e-12))
        return ops.where(self.keep >= float(self.units), ops.ones_like(soft), soft)

    def channel_scale(self):
        return self.mask * ops.where(self.hard > 0.5, ops.ones_like(self.mask), self.soft_mask())

    def scale_now(self):
        """`channel_scale` now: once `hard`, or while `keep` selects every channel, it is
        the binary `mask` exactly, read without the soft mask's quantile (~10 ms of eager
        ops per mask, for every report and plan)."""
        hard = float(ops.convert_to_numpy(self.hard)) > 0.5
        if hard or float(ops.convert_to_numpy(self.keep)) >= float(self.units):
            return ops.convert_to_numpy(self.mask)
        return super().scale_now()

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
