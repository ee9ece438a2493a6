"""Per-channel trainable gate on top of the binary mask."""

import keras

from tfcompress.layers.channel_mask import ChannelMask


@keras.saving.register_keras_serializable(package="tfcompress")
class ChannelGate(ChannelMask):
    """A `ChannelMask` with a trainable per-channel scale: output = input * mask * gate.

    The gate starts at 1, so wrapping changes nothing until it is trained. Methods that
    learn or probe channel importance (Taylor, soft top-k) build on it.
    """

    def build(self, input_shape):
        super().build(input_shape)
        self.gate = self.add_weight(
            shape=(self.units,), initializer="ones", trainable=True, name="gate"
        )

    def channel_scale(self):
        return self.mask * self.gate
