"""Element-wise weight mask wrapper: unstructured (Han et al.) pruning."""

import keras
from keras import ops

from tfcompress.layers._wrapper import EditedWeights
from tfcompress.layers.channel_mask import require_finite


class MaskConstraint:
    """Variable constraint: the optimizer applies it after each update (then `previous`,
    the variable's own constraint, if any)."""

    def __init__(self, mask, previous=None):
        self.mask = mask
        self.previous = previous

    def __call__(self, value):
        value = value * ops.cast(self.mask, value.dtype)
        return value if self.previous is None else self.previous(value)


# The weight matrices unstructured (Han et al.) pruning masks, per layer class: every conv
# and dense kernel, both kernels of a separable conv, an embedding table (TFMOT's registry
# masks a separable conv's pointwise kernel only). Biases, BatchNorm and other vectors stay.
_MASKED_WEIGHTS = (
    ((keras.layers.SeparableConv1D, keras.layers.SeparableConv2D),
     ("depthwise_kernel", "pointwise_kernel")),
    ((keras.layers.Embedding,), ("embeddings",)),
    ((keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
      keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose,
      keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D,
      keras.layers.Dense, keras.layers.EinsumDense), ("kernel",)),
)  # fmt: skip


def masked_weight_names(layer):
    """The names of the weights of `layer` a `WeightMask` masks by default (`()`: none)."""
    for classes, names in _MASKED_WEIGHTS:
        if isinstance(layer, classes):
            return names
    return ()


@keras.saving.register_keras_serializable(package="tfcompress")
class WeightMask(EditedWeights):
    """Runs the wrapped layer with some of its weights multiplied by binary masks.

    Masked entries get zero gradient, and each masked variable carries a constraint that
    re-applies its mask after every optimizer update, so momentum carried from before
    pruning cannot revive them: masked weights stay exactly zero while the others train.

    Args:
        layer: a layer with the weights to mask (e.g. Conv2D, Dense).
        weight_names: names of the variables to mask (default: `("kernel",)`).
        wrapping: what `tfcompress.wrap` made the mask for (method, exclude, options; a
            JSON-able dict, see `tfcompress.methods.Wrapping`), kept in the config.
    """

    def __init__(self, layer, weight_names=("kernel",), *, wrapping=None, **kwargs):
        super().__init__(layer, **kwargs)
        self.wrapping = None if wrapping is None else dict(wrapping)
        self.weight_names = tuple(weight_names)
        if not self.weight_names:
            raise ValueError("WeightMask needs at least one weight name. Received: ()")

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        names = {v.name: v for v in self.layer.weights}
        missing = [n for n in self.weight_names if n not in names]
        if missing:
            raise ValueError(
                f"WeightMask: layer '{self.layer.name}' has no weight(s) {missing}. "
                f"Its weights are {sorted(names)}."
            )
        self.masks = {
            n: self.add_weight(
                shape=names[n].shape, initializer="ones", trainable=False, name=f"{n}_mask"
            )
            for n in self.weight_names
        }
        for n, mask in self.masks.items():
            names[n].constraint = MaskConstraint(mask, names[n].constraint)
        self.built = True

    def edits(self, variable):
        return variable.name in self.masks

    def edited_value(self, variable):
        return variable.value * ops.cast(self.masks[variable.name], variable.dtype)

    def mask_values(self, name):
        """The mask of weight `name` as a NumPy array; raises naming this layer if any of
        its values is NaN or infinite (`ChannelMask.kept`'s check)."""
        values = ops.convert_to_numpy(self.masks[name])
        return require_finite(self.name, f"{name} mask", values)

    def get_config(self):
        config = {**super().get_config(), "weight_names": list(self.weight_names)}
        if self.wrapping is not None:
            config["wrapping"] = dict(self.wrapping)
        return config
