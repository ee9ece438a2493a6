"""Channel rules per layer class: how a layer couples channels, and how to slice it.

A rule answers two questions about one layer:
- `couple(op, b)`: which channels of its inputs and outputs are the same channel
  (through the `Coupler` `b`: identity, offset, modulo, expand, pin).
- `slice_weights` / `edit_config`: given the kept input and output channel indices,
  the narrower layer's config and weights; `compact` for ops whose call arguments (not
  config) name channels (`x[..., a:b]`, `keras.ops.split`) or whose internal axes shrink.
- `internal_axes(layer)`: channel axes inside the layer that no tensor holds (an
  attention layer's heads, `tfcompress.graph.attention_rules`): each is a group of its own.

A rule declares how many input and output tensors it couples (`inputs`, `outputs`; None:
any number). A rule that cannot be right for a layer's arity is refused: when registered,
if the class's arity is knowable (Keras merge layers, or a `call` with two or more required
positional arguments), otherwise when the graph meets a call of the layer (`check_arity`).
A Keras layer class does not declare how many tensors it takes (`call(inputs)` takes a list
as readily as one tensor), so for most classes only the call can tell.

Rules live in one table keyed by layer class (or the class's qualified name, for layers
that are not importable at tfcompress import time); `register_rule` adds to it for the
process, `registered_rule` for a `with` block.
"""

import contextlib
import dataclasses
import inspect

import numpy as np
from keras import layers
from keras.src.layers.merging.base_merge import Merge as KerasMerge

from tfcompress.graph.attention_rules import Attention, EinsumDense
from tfcompress.graph.hidden_rules import POSITION_EMBEDDING, Embedding, LayerNorm
from tfcompress.graph.op_rules import GetItem, Pad, Reduce, ReshapeOp, Split
from tfcompress.graph.recurrent_rules import RULES as RECURRENT_RULES
from tfcompress.graph.recurrent_rules import Recurrent
from tfcompress.graph.rule_base import (
    InternalAxis,
    Rule,
    RuleArityError,
    _qualname,
    channel_sized_weights,
    couple_broadcast,
    generic_classes,
    internal_key,
    keras_mask_keys,
    mixing_activation,
    suggest_rule,
)
from tfcompress.graph.time_distributed_rules import TimeDistributed

__all__ = [
    "RULES",
    "Attention",
    "Channelwise",
    "Concat",
    "Depthwise",
    "EinsumDense",
    "Embedding",
    "GetItem",
    "Identity",
    "InternalAxis",
    "LayerNorm",
    "Merge",
    "Mixing",
    "Modulo",
    "Pad",
    "Permute",
    "Pin",
    "Recurrent",
    "Reduce",
    "Rescale",
    "Reshape",
    "ReshapeOp",
    "Rule",
    "ScalesEachChannel",
    "RuleArityError",
    "SpaceToDepth",
    "Split",
    "TimeDistributed",
    "Wrapped",
    "find_rule",
    "internal_key",
    "register_rule",
    "registered_rule",
    "suggest_rule",
    "unwrap",
]


def _channels_first(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_first"


class Mixing(Rule):
    """Conv/Dense-like: outputs are new channels; inputs are consumed (sliced, not coupled).
    A grouped conv (`groups > 1`) or a channels_first one pins its inputs and outputs."""

    is_mixing = True
    inputs, outputs = 1, 1

    def __init__(self, width_key, weights):
        self.width_key = width_key
        self.weights = weights

    def couple(self, op, b):
        layer = op.layer
        groups = getattr(layer, "groups", 1)
        if _channels_first(layer):
            b.pin(*op.in_keys, *op.out_keys, reason=f"{type(layer).__name__} channels_first")
        elif groups != 1:  # each output group reads its own input group: not cut apart
            b.pin(*op.in_keys, *op.out_keys,
                  reason=f"grouped {type(layer).__name__} (groups={groups})")
        elif activation := mixing_activation(layer):
            b.pin(*op.out_keys, reason=f"{activation} activation")
        b.consume(op, op.in_keys[0])


class Channelwise(Rule):
    """One output channel per input channel (BatchNorm, activations, pooling, resizing ...)."""

    inputs, outputs = 1, 1

    def __init__(self, weights=None, axis_attr=None):
        self.weights = weights or {}
        self.axis_attr = axis_attr

    def couple(self, op, b):
        layer = op.layer
        masks = keras_mask_keys(op)
        if masks:  # a Keras mask (sequence padding) holds no channels
            b.pin(*masks, reason="Keras mask")
        axis = getattr(layer, self.axis_attr, -1) if self.axis_attr else -1
        rank = len(op.in_shapes[0])
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else None
        bad_axis = axis is None or (axis % rank) != rank - 1
        if _channels_first(layer) or bad_axis:
            b.pin(*op.in_keys, *op.out_keys, reason=f"{type(layer).__name__} axis")
            return
        if isinstance(layer, layers.Activation) and (activation := mixing_activation(layer)):
            b.pin(*op.in_keys, *op.out_keys, reason=f"{activation} activation")
            return
        self._check_weights(op)
        b.identity(op.in_keys[0], op.out_keys[0])

    def _check_weights(self, op):
        """Raises when the layer holds a weight with one entry per channel that this rule
        does not name: `strip` would cut the channels and not the weight (then fail to
        load it, or worse). `{"name": (None, None)}` says a weight is not per channel."""
        layer, channels = op.layer, op.in_shapes[0][-1]
        named = self.weight_axes(layer)
        unmapped = [w.path for w in channel_sized_weights(layer, {channels})
                    if w.name not in named]
        if unmapped:
            raise ValueError(
                f"The rule Channelwise() of layer '{layer.name}' ({type(layer).__name__}) "
                f"names none of its weights {unmapped}, which hold one entry per channel "
                f"({channels}): strip would cut the channels and leave the weights whole. "
                "Name each weight's channel axis, e.g. Channelwise({'scale': (None, -1)}) as "
                "PReLU's {'alpha': (None, -1)} (or (None, None) for a weight not per channel), "
                f"or leave the layer alone with exclude=['{layer.name}']."
            )


class Rescale(Channelwise):
    """Rescaling (`x * scale + offset`): channelwise while `scale` and `offset` are scalars
    (or of width 1 along the channels); one with an entry per channel pins the channels it
    is applied to, as Normalization's: the compact layer would keep the whole vector."""

    def couple(self, op, b):
        for name in ("scale", "offset"):
            shape = tuple(np.shape(getattr(op.layer, name, 0.0)))
            if shape and shape[-1] != 1:
                reason = f"Rescaling with a per-channel {name} of shape {shape}"
                b.pin(*op.in_keys, *op.out_keys, reason=reason)
                break
        super().couple(op, b)


class ScalesEachChannel(Channelwise):
    """Channelwise, every weight one factor per channel (axis 0), whatever its name:
    ConvNeXt's LayerScale, whose `add_weight` names none (Keras 3.15 calls it
    "variable", "variable_1", ... by a process-wide count)."""

    def weight_axes(self, layer):
        return {w.name: (None, 0) for w in layer.weights}


class PReLU(Channelwise):
    """PReLU: `alpha` holds one slope per channel, unless `shared_axes` shares it over the
    channel axis (its last axis is then of size 1, the same slope for every channel:
    copied whole; slicing it failed in strip with an IndexError)."""

    def __init__(self):
        super().__init__({"alpha": (None, -1)})

    def weight_axes(self, layer):
        alpha = getattr(layer, "alpha", None)
        shared = alpha is not None and alpha.shape[-1] == 1
        return {"alpha": (None, None)} if shared else self.weights


class Depthwise(Rule):
    """DepthwiseConv: output channel c*m + j comes from input channel c."""

    weights = {"kernel": (-2, None), "bias": (None, 0)}
    inputs, outputs = 1, 1

    def couple(self, op, b):
        if _channels_first(op.layer):
            b.pin(*op.in_keys, *op.out_keys, reason="channels_first")
            return
        if activation := mixing_activation(op.layer):  # out channel c*m + j: its input c too
            b.pin(*op.in_keys, *op.out_keys, reason=f"{activation} activation")
            return
        b.expand(op.in_keys[0], op.out_keys[0], int(op.layer.depth_multiplier))


class Merge(Rule):
    """Add/Multiply/... (and layers registered as such): `couple_broadcast`, as the
    elementwise keras.ops (`op_rules.Broadcast`): an input as wide as the output holds its
    channels, one of width 1 or rank 0 broadcasts and is left alone, any other pins."""

    outputs = 1

    def couple(self, op, b):
        couple_broadcast(op, b)


class Concat(Rule):
    """Concatenate: along channels, input i lands at an offset; along other axes, identity."""

    outputs = 1

    def couple(self, op, b):
        rank = len(op.out_shapes[0])
        axis = op.layer.axis % rank
        if axis != rank - 1:
            for k in op.in_keys:
                b.identity(k, op.out_keys[0])
            return
        offset = 0
        for k, shape in zip(op.in_keys, op.in_shapes):
            b.offset(k, op.out_keys[0], offset)
            offset += shape[-1]


class Modulo(Rule):
    """Flatten / SpaceToDepth: output feature f holds input channel f % C."""

    inputs, outputs = 1, 1

    def couple(self, op, b):
        if _channels_first(op.layer):
            b.pin(*op.in_keys, *op.out_keys, reason="channels_first")
            return
        b.modulo(op.in_keys[0], op.out_keys[0])


class SpaceToDepth(Modulo):
    """`tfcompress.layers.SpaceToDepth`: Modulo; the compact model builds it from standard
    layers (Reshape -> Permute -> Reshape), so it loads without tfcompress."""

    def compact(self, op, keep_of, scale_of=None):
        from tfcompress.layers.space_to_depth import space_to_depth

        block, name = op.layer.block_size, op.layer.name
        if None in op.in_shapes[0][1:]:
            return None  # the standard layers need static shapes: keep the layer

        def standard_layers(x):
            return space_to_depth(x, block, name=name)

        return standard_layers


class Reshape(Rule):
    """Reshape keeping the channel axis last (identity) or folding trailing axes (modulo)."""

    inputs, outputs = 1, 1

    def couple(self, op, b):
        kind = _reshape_kind(op.in_shapes[0], op.out_shapes[0])
        if kind == "identity":
            b.identity(op.in_keys[0], op.out_keys[0])
        elif kind == "modulo":
            b.modulo(op.in_keys[0], op.out_keys[0])
        else:
            b.pin(*op.in_keys, *op.out_keys, reason="reshape moves the channel axis")

    def edit_config(self, config, op, in_keep, out_keep):
        target = list(config["target_shape"])
        target[-1] = int(len(out_keep))
        config["target_shape"] = tuple(target)
        return config


def _reshape_kind(in_shape, out_shape):
    c_in, c_out = in_shape[-1], out_shape[-1]
    if None in (c_in, c_out):
        return "pin"
    if c_in == c_out:
        return "identity"
    trailing = 1
    for d in reversed(in_shape[1:]):
        if d is None:
            return "pin"
        trailing *= d
        if trailing == c_out:
            return "modulo"
    return "pin"


class Permute(Rule):
    """Permute: identity while the channel axis stays last, pinned when it moves."""

    inputs, outputs = 1, 1

    def couple(self, op, b):
        dims = tuple(op.layer.dims)
        if dims and dims[-1] == len(dims):
            b.identity(op.in_keys[0], op.out_keys[0])
        else:
            b.pin(*op.in_keys, *op.out_keys, reason="permute moves the channel axis")


class Pin(Rule):
    """Layers whose output depends on all channels together (LayerNorm, Softmax ...)."""

    def couple(self, op, b):
        b.pin(*op.in_keys, *op.out_keys, reason=type(op.layer).__name__)


class Identity(Rule):
    """tfcompress's own mask/gate layers: output channel c is input channel c."""

    inputs, outputs = 1, 1

    def couple(self, op, b):
        b.identity(op.in_keys[0], op.out_keys[0])

    def couple_calls(self, first, other, b):
        """A mask is called on every tensor its group touches, each call through its own
        channel map: the channels it shares across calls are the group's already, and
        position c of one call's input need not be position c of another's."""


class Wrapped(Rule):
    """A wrapper (WeightMask, MaskedKernel, MaskedAttention, MaskedLayerNormalization)
    that computes what its inner layer computes."""

    def __init__(self, inner):
        self.inner = inner
        self.is_mixing = inner.is_mixing
        self.width_key = inner.width_key
        self.kernel_takes_masks = inner.kernel_takes_masks
        self.inputs, self.outputs = inner.inputs, inner.outputs

    def couple(self, op, b):
        self.inner.couple(dataclasses.replace(op, layer=op.layer.layer), b)

    def couple_calls(self, first, other, b):
        self.inner.couple_calls(first, other, b)

    def weight_axes(self, layer):
        return self.inner.weight_axes(layer)

    def input_weights(self, layer):
        return self.inner.input_weights(layer)

    def compact(self, op, keep_of, scale_of=None):
        inner_op = dataclasses.replace(op, layer=op.layer.layer)
        return self.inner.compact(inner_op, keep_of, scale_of)

    def internal_axes(self, layer):
        return self.inner.internal_axes(layer.layer)

    def internal_input(self, op):
        return self.inner.internal_input(dataclasses.replace(op, layer=op.layer.layer))

    def scored_kernels(self, layer, internal=None):
        return self.inner.scored_kernels(layer.layer, internal)

    def param_count(self, layer, op, keep_of):
        inner_op = dataclasses.replace(op, layer=op.layer.layer)
        return self.inner.param_count(layer.layer, inner_op, keep_of)

    def edit_config(self, config, op, in_keep, out_keep):
        return self.inner.edit_config(config, op, in_keep, out_keep)

    def slice_weights(self, layer, values, in_keep, out_keep):
        return self.inner.slice_weights(layer, values, in_keep, out_keep)

    def masked_layer(self, layer):
        return self.inner.masked_layer(layer)


_CONV_W = {"kernel": (-2, -1), "bias": (None, 0)}
_BN_W = {n: (None, 0) for n in ("gamma", "beta", "moving_mean", "moving_variance")}

RULES = {
    layers.Conv1D: Mixing("filters", _CONV_W),
    layers.Conv2D: Mixing("filters", _CONV_W),
    layers.Conv3D: Mixing("filters", _CONV_W),
    layers.Conv1DTranspose: Mixing("filters", {"kernel": (-1, -2), "bias": (None, 0)}),
    layers.Conv2DTranspose: Mixing("filters", {"kernel": (-1, -2), "bias": (None, 0)}),
    layers.Conv3DTranspose: Mixing("filters", {"kernel": (-1, -2), "bias": (None, 0)}),
    layers.SeparableConv1D: Mixing(
        "filters",
        {"depthwise_kernel": (-2, None), "pointwise_kernel": (-2, -1), "bias": (None, 0)},
    ),
    layers.SeparableConv2D: Mixing(
        "filters",
        {"depthwise_kernel": (-2, None), "pointwise_kernel": (-2, -1), "bias": (None, 0)},
    ),
    layers.Dense: Mixing("units", {"kernel": (0, 1), "bias": (None, 0)}),
    layers.EinsumDense: EinsumDense(),
    layers.MultiHeadAttention: Attention(),
    layers.DepthwiseConv1D: Depthwise(),
    layers.DepthwiseConv2D: Depthwise(),
    layers.BatchNormalization: Channelwise(_BN_W, axis_attr="axis"),
    layers.LayerNormalization: LayerNorm(),
    layers.GroupNormalization: Pin(),
    layers.UnitNormalization: Pin(),
    layers.Normalization: Pin(),
    layers.Softmax: Pin(),
    layers.Permute: Permute(),
    layers.RepeatVector: Pin(),
    layers.Embedding: Embedding(),
    layers.Activation: Channelwise(),
    layers.ReLU: Channelwise(),
    layers.LeakyReLU: Channelwise(),
    layers.ELU: Channelwise(),
    layers.PReLU: PReLU(),
    layers.Identity: Channelwise(),
    layers.Rescaling: Rescale(),
    layers.Dropout: Channelwise(),
    layers.SpatialDropout1D: Channelwise(),
    layers.SpatialDropout2D: Channelwise(),
    layers.SpatialDropout3D: Channelwise(),
    layers.GaussianNoise: Channelwise(),
    layers.GaussianDropout: Channelwise(),
    layers.AlphaDropout: Channelwise(),
    layers.ActivityRegularization: Channelwise(),
    layers.MaxPooling1D: Channelwise(),
    layers.MaxPooling2D: Channelwise(),
    layers.MaxPooling3D: Channelwise(),
    layers.AveragePooling1D: Channelwise(),
    layers.AveragePooling2D: Channelwise(),
    layers.AveragePooling3D: Channelwise(),
    layers.GlobalMaxPooling1D: Channelwise(),
    layers.GlobalMaxPooling2D: Channelwise(),
    layers.GlobalMaxPooling3D: Channelwise(),
    layers.GlobalAveragePooling1D: Channelwise(),
    layers.GlobalAveragePooling2D: Channelwise(),
    layers.GlobalAveragePooling3D: Channelwise(),
    layers.ZeroPadding1D: Channelwise(),
    layers.ZeroPadding2D: Channelwise(),
    layers.ZeroPadding3D: Channelwise(),
    layers.Cropping1D: Channelwise(),
    layers.Cropping2D: Channelwise(),
    layers.Cropping3D: Channelwise(),
    layers.UpSampling1D: Channelwise(),
    layers.UpSampling2D: Channelwise(),
    layers.UpSampling3D: Channelwise(),
    layers.Resizing: Channelwise(),
    layers.Add: Merge(),
    layers.Subtract: Merge(),
    layers.Multiply: Merge(),
    layers.Average: Merge(),
    layers.Maximum: Merge(),
    layers.Minimum: Merge(),
    layers.Concatenate: Concat(),
    layers.Flatten: Modulo(),
    layers.Reshape: Reshape(),
    # Layers defined inside keras.applications, by qualified name.
    "keras.src.applications.convnext.LayerScale": ScalesEachChannel(),
    "keras.src.applications.convnext.StochasticDepth": Channelwise(),
    "keras.src.applications.inception_resnet_v2.CustomScaleLayer": Merge(),
    "tfcompress.layers.space_to_depth.SpaceToDepth": SpaceToDepth(),
    "tfcompress.layers.channel_mask.ChannelMask": Identity(),
    POSITION_EMBEDDING: Channelwise({"embeddings": (None, -1)}),
    **RECURRENT_RULES,  # LSTM, GRU, SimpleRNN, ConvLSTM*D, Bidirectional
    # keras.ops operations: tfcompress.graph.op_table (merged into RULES on import)
}


_MERGE_BASE = KerasMerge


def register_rule(layer_class, rule):
    """Teaches the dependency graph a layer class (a class or its qualified name).

    A rule coupling one input (`Channelwise`, `Mixing` ...) is refused here for a class
    known to take several tensors (a Keras merge layer, or a `call` with two or more
    required positional arguments); for other classes the graph checks each call
    (`Rule.check_arity`).
    """
    if not isinstance(rule, Rule):
        raise TypeError(
            f"register_rule expects a tfcompress.graph.rules.Rule. Received: rule={rule!r}"
        )
    if layer_class in generic_classes():
        name = _qualname(layer_class)
        raise ValueError(
            f"register_rule: {name} is a generic Keras class (each instance computes the "
            "function or layer it is given): a rule for it would hold for every one of "
            "every model, and silently mis-handle those that compute something else. "
            "Leave the layer alone with exclude=[...], write a Lambda's function with "
            "keras.ops (tfcompress sees through it), or make it a class of your own and "
            f"register the rule for that. Received: layer_class={name}"
        )
    if rule.inputs == 1 and _takes_several_tensors(layer_class):
        name = _qualname(layer_class)
        raise RuleArityError(
            f"register_rule: {name} takes several input tensors, but the rule "
            f"{type(rule).__name__} couples only the first input with the output: the "
            "channels of the other inputs would be pruned apart. Register a rule that "
            "couples every input, e.g. tfcompress.graph.rules.Merge() (as Add's), or "
            f"leave the layer alone with exclude=[...]. Received: layer_class={name}, "
            f"rule={type(rule).__name__}"
        )
    RULES[layer_class] = rule


def _takes_several_tensors(layer_class):
    """True when `layer_class` is known to be called on several tensors."""
    if not isinstance(layer_class, type):
        return False
    if issubclass(layer_class, _MERGE_BASE):
        return True
    try:
        params = list(inspect.signature(layer_class.call).parameters.values())[1:]
    except (AttributeError, TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) >= 2


@contextlib.contextmanager
def registered_rule(layer_class, rule):
    """`register_rule` for the length of a `with` block: on exit the table holds again
    what it held for `layer_class` before (its old rule, or none)."""
    missing = object()
    previous = RULES.get(layer_class, missing)
    register_rule(layer_class, rule)
    try:
        yield rule
    finally:
        if previous is missing:
            RULES.pop(layer_class, None)
        else:
            RULES[layer_class] = previous


def unwrap(layer):
    """The layer a tfcompress wrapper (WeightMask, MaskedKernel, MaskedAttention,
    MaskedLayerNormalization) wraps, or the layer itself."""
    return layer.layer if _qualname(type(layer)) in _WRAPPERS else layer


_WRAPPERS = (
    "tfcompress.layers.weight_mask.WeightMask",
    "tfcompress.layers.masked_kernel.MaskedKernel",
    "tfcompress.layers.masked_attention.MaskedAttention",
    "tfcompress.layers.masked_layer_norm.MaskedLayerNormalization",
)


def find_rule(layer):
    """The rule for `layer`'s class or its nearest registered base class, else None (a
    TimeDistributed: its layer's rule per step, `time_distributed_rules`)."""
    if _qualname(type(layer)) in _WRAPPERS:
        inner = find_rule(layer.layer)
        return None if inner is None else Wrapped(inner)
    if type(layer) is layers.TimeDistributed:  # (a generic class: never in RULES)
        inner = find_rule(layer.layer)
        if inner is None or inner.internal_axes(layer.layer):
            return None
        return TimeDistributed(inner)
    for cls in type(layer).__mro__:
        rule = RULES.get(cls) or RULES.get(_qualname(cls))
        if rule is not None:
            return rule
    return None
