"""Per-channel binary mask: the state of structured pruning."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfcompress")
class ChannelMask(keras.layers.Layer):
    """Multiplies the channels of its input by a binary, non-trainable mask.

    One `ChannelMask` holds the mask of one channel group and is shared by every place
    the group is read (each conv/dense consuming it). Where the input tensor holds more
    than the group's channels (after a Concatenate or Flatten), `channel_map` tells which
    group channel each input channel is; `-1` marks channels of other groups (left as is).

    Args:
        units: number of channels in the group.

    Call args:
        inputs: a tensor whose last axis is channels.
        channel_map: optional list of ints, one per input channel.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"ChannelMask needs a positive integer units. Received: units={units}")
        self.units = units

    def build(self, input_shape):
        self.mask = self.add_weight(
            shape=(self.units,), initializer="ones", trainable=False, name="mask"
        )

    def channel_scale(self):
        """The per-group-channel factor applied to the input (the mask here)."""
        return self.mask

    def call(self, inputs, channel_map=None):
        scale = self.channel_scale()
        if channel_map is not None:
            padded = ops.concatenate([ops.ones((1,), dtype=scale.dtype), scale])
            scale = ops.take(padded, ops.convert_to_tensor(channel_map, "int32") + 1)
        return inputs * ops.cast(scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "units": self.units}
