"""Consumer-side channel masks: a conv/dense layer that scales its own kernel."""

import keras

from tfcompress.layers._wrapper import EditedWeights
from tfcompress.layers.channel_mask import ChannelMask


class _Chain:
    """The (mask layer, site) pairs in front of a call; a plain holder, so Keras does not
    track the mask layers as sublayers of the wrapper (they are layers of the model)."""

    def __init__(self, links=()):
        self.links = tuple(links)


def folded_masks(tensor):
    """The `(ChannelMask, site)` chain called with `folded=True` that produced `tensor`
    (a symbolic Keras tensor), nearest first."""
    links = []
    for mask, site, folded in mask_chain(tensor):
        if not folded:
            break
        links.append((mask, site))
    return links


def mask_chain(tensor):
    """The `(ChannelMask, site, folded)` chain of mask calls that produced `tensor` (a
    symbolic Keras tensor), nearest first, folded or not."""
    links = []
    while True:
        history = getattr(tensor, "_keras_history", None)
        if history is None or not isinstance(history.operation, ChannelMask):
            return links
        node = history.operation._inbound_nodes[history.node_index]
        kwargs = node.arguments.kwargs
        links.append((history.operation, kwargs.get("site"), bool(kwargs.get("folded", False))))
        tensor = node.arguments.args[0]


@keras.saving.register_keras_serializable(package="tfcompress")
class MaskedKernel(EditedWeights):
    """Runs the wrapped layer with the input channels of one weight scaled by the folded
    channel masks in front of it: `layer(mask(x))` computed as `layer'(x)` with
    `K' = mask.scale_kernel(K)`, which is exact for conv/dense layers (conv(x * s, K) ==
    conv(x, K * s)) and costs a kernel-sized product instead of an activation-sized one.

    The masks are found when the wrapper is called on a symbolic tensor (building a
    functional model, also when loading one): the chain of `ChannelMask` layers called
    with `folded=True` that produced its input. The wrapper holds no weights of its own.

    Args:
        layer: the consuming layer (Conv*, Dense, SeparableConv* ...), called once.
        weight_name: the weight whose input axis the masks scale (default "kernel").
        axis: that weight's input-channel axis.
    """

    def __init__(self, layer, weight_name="kernel", axis=-2, **kwargs):
        super().__init__(layer, **kwargs)
        self.weight_name = weight_name
        self.axis = int(axis)
        self._chain = _Chain()

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, keras.KerasTensor):
            self._chain = _Chain(folded_masks(inputs))
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        names = [v.name for v in self.layer.weights]
        if self.weight_name not in names:
            raise ValueError(
                f"MaskedKernel: layer '{self.layer.name}' has no weight "
                f"{self.weight_name!r}. Its weights are {names}."
            )
        self.built = True

    @property
    def masks(self):
        """The `(ChannelMask, site)` pairs scaling the kernel."""
        return self._chain.links

    def edits(self, variable):
        return variable.name == self.weight_name

    def edited_value(self, variable):
        kernel = variable.value
        for mask, site in self._chain.links:
            kernel = mask.scale_kernel(kernel, self.axis, site)
        return kernel

    def get_config(self):
        return {**super().get_config(), "weight_name": self.weight_name, "axis": self.axis}
