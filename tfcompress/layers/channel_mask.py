"""Per-channel binary mask: the state of structured pruning."""

import keras
import numpy as np
from keras import ops

from tfcompress.numbers import check_count


@keras.saving.register_keras_serializable(package="tfcompress")
class ChannelMask(keras.layers.Layer):
    """Multiplies the channels of its input by a binary, non-trainable mask.

    One `ChannelMask` holds the mask of one channel group and is shared by every place
    the group is read (each conv/dense consuming it). Where an input tensor holds more
    than the group's channels (after a Concatenate or Flatten), the call names a `site`:
    `channel_maps[site]` gives, for each input channel, the group channel it is, or -1
    for channels of other groups (left as they are).

    Args:
        units: number of channels in the group.
        channel_maps: optional list of channel maps (lists of ints in [-1, units)).
        wrapping: what `tfcompress.wrap` made the mask for (method, exclude, options; a
            JSON-able dict, see `tfcompress.methods.Wrapping`), kept in the config.
        internal_axis: the name of an internal channel axis of the layer reading the
            mask's output (an attention layer's "heads", see
            `tfcompress.layers.MaskedAttention`), or None for the input's channels. Such
            a mask is always called folded: the layer scales its own weights.

    Call args:
        inputs: a tensor whose last axis is channels.
        site: optional index into `channel_maps`; None means input channel c is group
            channel c.
        folded: True when every layer reading the output scales its own kernel with
            `scale_kernel` (see `tfcompress.layers.MaskedKernel`): the call then passes
            `inputs` through, and the mask costs a kernel-sized product instead of an
            activation-sized one.
    """

    def __init__(self, units, channel_maps=None, *, wrapping=None, internal_axis=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # a Keras mask (sequence padding) passes through
        self.wrapping = None if wrapping is None else dict(wrapping)
        if internal_axis is not None and (not isinstance(internal_axis, str) or channel_maps):
            raise ValueError(
                "ChannelMask internal_axis must be the name of an axis (a string), without "
                f"channel_maps. Received: internal_axis={internal_axis!r}, "
                f"channel_maps={channel_maps!r}"
            )
        self.internal_axis = internal_axis
        check_count("units", units)
        self.units = int(units)  # an np.int64 too; the config stays JSON
        # plain data, set past Keras/TF attribute tracking, which wraps every nested list
        # and checks every int (seconds of `wrap` for InceptionResNetV2's 204 masks)
        object.__setattr__(
            self, "channel_maps", [[int(v) for v in m] for m in (channel_maps or [])]
        )
        # channel_maps[site] + 1 as int32 arrays, the indices `_at_site` takes: a NumPy
        # array becomes a tensor at once, where a list of ints is checked element by element
        # (an eager call of a wrapped InceptionResNetV2: 1.4 s of its 3 s)
        object.__setattr__(
            self, "_site_indices", [np.asarray(m, "int32") + 1 for m in self.channel_maps]
        )
        for i, m in enumerate(self.channel_maps):
            bad = [v for v in m if not -1 <= v < units]
            if bad:
                raise ValueError(
                    f"ChannelMask '{self.name}': channel_maps[{i}] holds {bad[:5]}, outside "
                    f"[-1, {units})."
                )

    def build(self, input_shape):
        self.mask = self.add_weight(
            shape=(self.units,), initializer="ones", trainable=False, name="mask"
        )

    def channel_scale(self):
        """The per-group-channel factor applied to the input (the mask here)."""
        return self.mask

    def scale_now(self):
        """`channel_scale` as it is now, as a NumPy array (eager reads: reports, plans,
        `strip`); a subclass may read it without building its whole expression."""
        return ops.convert_to_numpy(self.channel_scale())

    def kept(self):
        """Which channels this mask keeps, as a bool NumPy array of `units`.

        The one definition of a kept channel, read by every report (`mask_stats`,
        `PruningSummaries`, the training log), by plans and by `strip`: the binary `mask`
        is on (> 0.5) and the factor the layer applies (`channel_scale`: a gate, a soft
        top-k selection) is not exactly zero. A soft top-k mask that is not hard yet
        keeps every channel its binary mask keeps: its soft factor is never zero, and
        `strip` folds it into the next layer's kernel.

        Raises:
            ValueError: a mask or scale value is NaN or infinite (neither kept nor
                pruned: a diverged or damaged model), naming the layer and the count.
        """
        mask = require_finite(self.name, "mask", ops.convert_to_numpy(self.mask))
        scale = require_finite(self.name, "channel scale", self.scale_now())
        return (mask > 0.5) & (scale != 0)

    def channel_map(self, site):
        """Input channel -> group channel (-1: not in the group) at `site`, or None."""
        return None if site is None else self.channel_maps[site]

    def site_scale(self, site=None):
        """The factor of each input channel at `site` (1 for channels of other groups)."""
        return self._at_site(self.channel_scale(), site)

    def site_kept(self, site=None):
        """1 for each input channel at `site` this mask keeps (`kept`, as a tensor that
        follows the mask's state; channels of other groups: 1), 0 for the others."""
        kept = ops.logical_and(self.mask > 0.5, ops.not_equal(self.channel_scale(), 0))
        return self._at_site(ops.cast(kept, self.mask.dtype), site)

    def _at_site(self, per_channel, site):
        """A per-group-channel vector laid out on the input channels at `site` (1 for
        channels of other groups)."""
        if site is None:
            return per_channel
        padded = ops.concatenate([ops.ones((1,), dtype=per_channel.dtype), per_channel])
        return ops.take(padded, self._site_indices[site])

    def scale_kernel(self, kernel, axis, site=None):
        """`kernel` with its input channels (along `axis`) scaled as `call` scales them:
        conv(x * s, K) == conv(x, K * s)."""
        return kernel * _along(ops.cast(self.site_scale(site), kernel.dtype), axis, kernel)

    def call(self, inputs, site=None, folded=False):
        if folded:
            return inputs
        return inputs * ops.cast(self.site_scale(site), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "units": self.units}
        if self.channel_maps:
            config["channel_maps"] = [list(m) for m in self.channel_maps]
        if self.wrapping is not None:
            config["wrapping"] = dict(self.wrapping)
        if self.internal_axis is not None:
            config["internal_axis"] = self.internal_axis
        return config


def require_finite(layer_name, what, values):
    """`values` (a NumPy array); raises naming `layer_name` if any is NaN or infinite."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"Mask layer '{layer_name}': {int(bad.sum())} of {values.size} {what} values are "
            f"not finite (NaN or inf), so which channels or weights it keeps is undefined. "
            "The model diverged or its masks were damaged: restore an earlier checkpoint. "
            f"Received: {what}={values.ravel()[:8].tolist()}"
        )
    return values


def _along(vector, axis, like):
    """`vector` reshaped to broadcast along `axis` of the tensor `like`."""
    shape = [1] * len(like.shape)
    shape[axis] = -1
    return ops.reshape(vector, shape)
