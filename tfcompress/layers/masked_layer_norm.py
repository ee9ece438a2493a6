"""A LayerNormalization whose statistics are taken over the channels its masks keep."""

import keras
from keras import ops

from tfcompress.layers.masked_kernel import _Chain, mask_chain


def check_layer_norm(layer, rank=None):
    """Raises `ValueError` naming `layer` unless it is a `keras.layers.LayerNormalization`
    over one axis, the last one (of a `rank`-dimensional input, when known)."""
    if not isinstance(layer, keras.layers.LayerNormalization):
        raise ValueError(
            "MaskedLayerNormalization wraps a keras.layers.LayerNormalization. Received: "
            f"layer={layer!r} ({type(layer).__name__})"
        )
    axis = layer.axis
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    # before the input's rank is known, any one axis may be the last one
    last = len(axes) == 1 and (rank is None or axes[0] % rank == rank - 1)
    if not last:
        raise ValueError(
            f"MaskedLayerNormalization: layer '{layer.name}' normalizes over axis {axis!r}; "
            "only a LayerNormalization over the last (channel) axis alone has channels that "
            "can be removed. Received: axis="
            f"{axis!r}" + ("" if rank is None else f" on a {rank}-dimensional input")
        )


@keras.saving.register_keras_serializable(package="tfcompress")
class MaskedLayerNormalization(keras.layers.Wrapper):
    """Runs a `keras.layers.LayerNormalization` (over the last axis) as the compact model's
    narrower one does: its mean and variance are taken over the channels the masks in front
    of it keep, and its output is zero at the others.

    The masks are the `ChannelMask` calls that produced its input (folded or not), found
    when the wrapper is called on a symbolic tensor, as `MaskedKernel` finds its masks. A
    mask that scales the channels it keeps (a gate, a soft top-k selection) is undone on
    them: the compact LayerNormalization reads them unscaled. The wrapper holds no weights
    of its own; gamma and beta are the layer's.

    Args:
        layer: the LayerNormalization (one axis, the last; `rms_scaling` allowed).
    """

    def __init__(self, layer, **kwargs):
        check_layer_norm(layer)
        kwargs.setdefault("dtype", layer.dtype_policy)  # as the layer computes
        super().__init__(layer, **kwargs)
        self.supports_masking = True  # a Keras mask (sequence padding) passes, as LN's
        self._chain = _Chain()

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, keras.KerasTensor):
            chain = _Chain(mask_chain(inputs))
            if self._chain.links and _ids(chain) != _ids(self._chain):
                raise ValueError(
                    f"MaskedLayerNormalization '{self.name}' is called on tensors masked "
                    f"differently ({_names(self._chain)} and {_names(chain)}): one layer "
                    "takes its statistics over one set of kept channels. Exclude the "
                    "shared LayerNormalization from pruning (exclude=[its name])."
                )
            self._chain = chain
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape):
        check_layer_norm(self.layer, len(input_shape))
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    @property
    def masks(self):
        """The `(ChannelMask, site, folded)` calls in front of the layer."""
        return self._chain.links

    def kept_and_scale(self, channels, dtype):
        """`(kept, scale)` per input channel: 1/0 for the channels the masks keep, and the
        factor the masks not folded have applied to the input."""
        kept = ops.ones((channels,), dtype)
        scale = ops.ones((channels,), dtype)
        for mask, site, folded in self._chain.links:
            kept = kept * ops.cast(mask.site_kept(site), dtype)
            if not folded:
                scale = scale * ops.cast(mask.site_scale(site), dtype)
        return kept, scale

    def call(self, inputs):
        norm = self.layer
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        x = ops.cast(inputs, dtype)
        kept, scale = self.kept_and_scale(x.shape[-1], dtype)
        x = x * kept / ops.where(kept > 0, scale, ops.ones_like(scale))
        count = ops.sum(kept)
        mean = ops.sum(x, axis=-1, keepdims=True) / count
        variance = ops.sum(ops.square((x - mean) * kept), axis=-1, keepdims=True) / count
        inv = ops.rsqrt(variance + norm.epsilon)
        if norm.rms_scaling:  # as keras.ops.layer_normalization: x / std, not centered
            outputs = x * inv
            if norm.gamma is not None:
                outputs = outputs * ops.cast(norm.gamma, dtype)
        else:  # in keras.ops.layer_normalization's order of operations
            if norm.gamma is not None:
                inv = inv * ops.cast(norm.gamma, dtype)
            shift = -mean * inv
            if norm.beta is not None:
                shift = shift + ops.cast(norm.beta, dtype)
            outputs = x * inv + shift
        return ops.cast(outputs * kept, norm.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from the dict it is given.
        return super().from_config(dict(config), custom_objects)


def _ids(chain):
    return [(id(mask), site, folded) for mask, site, folded in chain.links]


def _names(chain):
    return [(mask.name, site) for mask, site, _ in chain.links]
