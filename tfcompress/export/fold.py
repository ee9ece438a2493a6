"""Folding inference-mode BatchNormalization into the conv or dense layer before it.

In inference a BatchNorm is an affine map per channel, `y = x * a + b` with
`a = gamma / sqrt(var + eps)` and `b = beta - mean * a`. When `x` is the output of a
Conv / Dense layer that feeds nothing else, the map folds into that layer's kernel and
bias (`kernel * a`, `bias * a + b`) and the BatchNorm disappears from the exported graph:
two element-wise passes over the activation fewer per layer, and the conv + bias + ReLU
chain that TensorFlow's graph optimiser fuses into one kernel.

Which kernel axis holds the output channel depends on the layer: the last one for Conv and
Dense; for a depthwise conv (kernel `(..., in, multiplier)`, output channel
`c * multiplier + m`) the last two; for a separable conv the pointwise kernel's last one;
for a transposed conv (kernel `(..., out, in)`) the one before last.
"""

import keras
import numpy as np

from tfcompress.export.graph_model import functional
from tfcompress.graph.rule_base import activation_name

L = keras.layers
# Layer class -> (the weight that holds the output channels, how to scale it by `a`).
_LAST = lambda kernel, a: kernel * a  # noqa: E731 - output channels on the last axis
_DEPTHWISE = lambda kernel, a: kernel * a.reshape(kernel.shape[-2:])  # noqa: E731
_TRANSPOSED = lambda kernel, a: kernel * a[:, None]  # noqa: E731 - (..., out, in)
SCALED_KERNEL = {
    L.Conv1D: ("kernel", _LAST),
    L.Conv2D: ("kernel", _LAST),
    L.Conv3D: ("kernel", _LAST),
    L.Dense: ("kernel", _LAST),
    L.DepthwiseConv1D: ("kernel", _DEPTHWISE),
    L.DepthwiseConv2D: ("kernel", _DEPTHWISE),
    L.SeparableConv1D: ("pointwise_kernel", _LAST),
    L.SeparableConv2D: ("pointwise_kernel", _LAST),
    L.Conv1DTranspose: ("kernel", _TRANSPOSED),
    L.Conv2DTranspose: ("kernel", _TRANSPOSED),
    L.Conv3DTranspose: ("kernel", _TRANSPOSED),
}
FOLDABLE = tuple(SCALED_KERNEL)


@keras.saving.register_keras_serializable(package="tfcompress")
class FoldedBatchNorm(keras.layers.Layer):
    """Where a folded BatchNorm was: passes its input through (takes BatchNorm's call
    arguments, so the rest of the graph is cloned unchanged)."""

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _own_nodes(model):
    """The nodes of `model`'s own graph. A layer `model` shares with another model (e.g.
    `tfcompress.wrap(model, copy_layers=False)`) has the other model's calls too."""
    functional = model._functional if isinstance(model, keras.Sequential) else model
    return {node for nodes in functional._nodes_by_depth.values() for node in nodes}


def _own(nodes, own):
    """Those of `nodes` (a layer's inbound or outbound nodes) in the model's graph `own`."""
    return [node for node in nodes if node in own]


def _producer(layer, own):
    """The layer whose output `layer` (called once in the model, on one tensor) consumes,
    or None."""
    nodes = _own(layer._inbound_nodes, own)
    if len(nodes) != 1:
        return None
    inputs = nodes[0].input_tensors
    if len(inputs) != 1:
        return None
    return inputs[0]._keras_history.operation


def _is_output(layer, model):
    """True when an output of `model` is `layer`'s output."""
    return any(t._keras_history.operation is layer for t in model.outputs)


def _foldable_axis(bn, ndim):
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    return axis is not None and axis in (-1, ndim - 1)


def foldable_pairs(model):
    """`{bn layer name: producer layer}` for every BatchNormalization of `model` (top
    level) that directly follows a Conv, depthwise, separable or transposed Conv, or Dense
    layer (`FOLDABLE`; channels last, without an activation of its own, called once, whose
    output feeds only that BatchNorm and is not a model output; not quantized, without
    LoRA: its kernel is then not the float kernel the fold scales)."""
    pairs, own = {}, _own_nodes(model)
    for bn in model.layers:
        if type(bn) is not keras.layers.BatchNormalization:
            continue
        prev = _producer(bn, own)
        if type(prev) not in FOLDABLE or len(_own(prev._inbound_nodes, own)) != 1:
            continue
        if len(_own(prev._outbound_nodes, own)) != 1 or _is_output(prev, model):
            continue  # (its output read elsewhere too: folding would change that reader's)
        if activation_name(prev) != "linear":
            continue  # BN(act(conv(x))) is not conv'(x) then act
        if not _foldable_axis(bn, len(prev.output.shape)):
            continue
        if getattr(prev, "data_format", "channels_last") != "channels_last":
            continue
        if getattr(prev, "quantization_mode", None) or getattr(prev, "lora_enabled", False):
            continue  # (int8 / float8 kernels with scales, or a kernel plus LoRA factors)
        pairs[bn.name] = prev
    return pairs


def folded_weights(layer, bn):
    """`layer`'s weights, in `get_weights` order with a bias at the end, with the
    inference-mode `bn` after it folded in (its kernel, or pointwise kernel, scaled)."""
    name, scale = SCALED_KERNEL[type(layer)]
    mean = np.asarray(bn.moving_mean, np.float64)
    n = mean.shape[0]
    var = np.asarray(bn.moving_variance, np.float64)
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones(n)
    beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros(n)
    a = gamma / np.sqrt(var + bn.epsilon)
    bias = np.asarray(layer.bias, np.float64) if layer.use_bias else np.zeros(n)
    dtype = keras.backend.standardize_dtype(getattr(layer, name).dtype)
    weights = []
    for w in layer.weights:
        if w is getattr(layer, name):
            weights.append(scale(np.asarray(w, np.float64), a).astype(dtype))
        elif not (layer.use_bias and w is layer.bias):
            weights.append(np.asarray(w))
    return [*weights, (bias * a + beta - mean * a).astype(dtype)]


def fold_batchnorm(model):
    """A copy of `model` in which every foldable BatchNormalization (see
    `foldable_pairs`) is folded into the Conv / Dense layer before it and replaced by a
    pass-through `FoldedBatchNorm` layer of the same name. Same outputs in inference
    mode (up to float rounding); the copy is for export and inference, not for further
    training. The caller's model is not changed; nested models are copied unchanged.

    Returns:
        A new functional or Sequential model.
    """
    functional(model, "fold_batchnorm")  # a subclassed or unbuilt model refused
    pairs = foldable_pairs(model)
    producers = {p.name: bn_name for bn_name, p in pairs.items()}
    copies = []  # (original layer, its copy), as clone_model makes them (once per layer)

    def clone(layer):
        if layer.name in pairs:
            new = FoldedBatchNorm(name=layer.name)
        else:
            config = layer.get_config()
            if layer.name in producers:
                config["use_bias"] = True
                config["bias_initializer"] = "zeros"
            new = layer.__class__.from_config(config)
        copies.append((layer, new))
        return new

    folded = keras.models.clone_model(
        model, input_tensors=_named_inputs(model), clone_function=clone
    )
    for layer, new in copies:
        if layer.name in pairs or not isinstance(layer, keras.layers.Layer):
            continue  # a folded BatchNorm, or a keras.ops operation (e.g. `x + y`)
        if layer.name in producers:
            new.set_weights(folded_weights(layer, model.get_layer(producers[layer.name])))
        else:
            new.set_weights(layer.get_weights())
    return folded


def _named_inputs(model):
    """Fresh inputs named after `model`'s input layers (clone_model would name them after
    the input tensors, e.g. 'keras_tensor', and rename the model's inputs); None for a
    Sequential model, whose clone keeps its input layer."""
    if isinstance(model, keras.Sequential):
        return None

    def fresh(tensor):
        name = tensor._keras_history.operation.name
        return keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype, name=name)

    return keras.tree.map_structure(fresh, model.input)
