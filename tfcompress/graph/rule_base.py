"""The rule base class: the two questions a channel rule answers about a layer, its arity
(how many input and output tensors it couples) and the fix to suggest for a layer without
a fitting rule; and `InternalAxis`, a channel axis inside a layer (an attention layer's
heads). Concrete rules: `tfcompress.graph.rules` (layers), `tfcompress.graph.op_rules`
(keras.ops called on KerasTensors) and `tfcompress.graph.attention_rules`."""

import dataclasses

import numpy as np

from tfcompress.graph.sublayers import sublayers

# keras.activations functions (by `__name__`) that act on each channel alone. Any other
# activation pins the channels it is applied to: softmax, log_softmax and sparsemax
# normalise over the channel axis and glu halves it (CHANNEL_MIXING_ACTIVATIONS), and what a
# function of the user's does is not known (`register_elementwise_activation` declares one
# element-wise). tests/test_graph_activations.py checks every keras.activations function is
# in one of the two sets.
ELEMENTWISE_ACTIVATIONS = frozenset("""celu elu exponential gelu hard_shrink hard_sigmoid
    hard_silu hard_tanh leaky_relu linear log_sigmoid mish relu relu6 selu sigmoid silu
    soft_shrink softplus softsign sparse_plus sparse_sigmoid squareplus tanh tanh_shrink
    threshold""".split()) | {
    "gelu_approximate",  # keras_hub's (BERT, ELECTRA, GPT-2 ... feed-forward blocks)
    "quick_gelu",  # keras_hub's CLIP / MetaCLIP: x * sigmoid(1.702 x)
}
CHANNEL_MIXING_ACTIVATIONS = frozenset({"softmax", "log_softmax", "sparsemax", "glu"})
_registered_elementwise = set()  # names given to register_elementwise_activation


def activation_name(layer):
    """The name of `layer`'s activation function ("linear" when it has none)."""
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act)) if act is not None else "linear"


def mixing_activation(layer):
    """The name of `layer`'s activation when it may mix channels (then the channels it is
    applied to are pinned), None when it acts on each channel alone (or there is none)."""
    name = activation_name(layer)
    if name in ELEMENTWISE_ACTIVATIONS or name in _registered_elementwise:
        return None
    return name


def activation_state():
    """What `mixing_activation` answers from (a graph built before a registration is
    stale: `tfcompress.graph.memo` compares this)."""
    return frozenset(_registered_elementwise)


def register_elementwise_activation(activation):
    """Declares an activation function of your own element-wise (it computes each channel
    from that channel alone), so the channels of the layers using it can be pruned.

    Args:
        activation: the function (e.g. registered with
            `keras.saving.register_keras_serializable`) or its `__name__`.

    A layer whose activation is neither one of `keras.activations`' element-wise
    functions nor declared here keeps the channels it is applied to (they are pinned,
    the graph naming the activation): removing a channel under softmax-like functions
    changes every other channel's value.
    """
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            "register_elementwise_activation takes a named function or its name (a lambda "
            "or a callable object has none: define it with def). Received: "
            f"activation={activation!r}"
        )
    if name in CHANNEL_MIXING_ACTIVATIONS:
        raise ValueError(
            f"The activation '{name}' mixes channels (it normalises over or splits the "
            f"channel axis); it cannot be declared element-wise. Received: activation={name!r}"
        )
    _registered_elementwise.add(name)


@dataclasses.dataclass(frozen=True)
class InternalAxis:
    """A channel axis inside one layer that no tensor of the model holds (an attention
    layer's heads): its channels are a group of their own (`internal_key`), masked by
    scaling the layer's own weights.

    Args:
        size: channels along the axis.
        scaled: `((weight path, axis), ...)`: the weights a mask multiplies along `axis`
            (channel c zeroed there is channel c removed: e.g. a head's slice of the
            output projection).
        scored: `((weight path, axis), ...)`: the kernels whose magnitudes along `axis`
            score channel c (`l1_filter` sums them).

    A weight path is the variable's path inside the layer, e.g. "query/kernel"
    (`find_weight`).
    """

    size: int
    scaled: tuple
    scored: tuple


def internal_key(layer, name):
    """The dependency graph's key for internal axis `name` of `layer` (the layer itself,
    not a tfcompress wrapper of it)."""
    return ("internal", id(layer), name)


def find_weight(layer, path):
    """The index in `layer.weights` of the variable whose path ends with `path`."""
    for i, var in enumerate(layer.weights):
        if var.path == path or var.path.endswith("/" + path):
            return i
    names = [v.path for v in layer.weights]
    raise ValueError(f"Layer '{layer.name}' has no weight {path!r}. Its weights are {names}.")


class Rule:
    """Base rule. `weights` maps a variable name to `(in_axis, out_axis)` (None: not sliced)."""

    is_mixing = False  # outputs are new channels (conv, dense): the group's "producers"
    # wrap may run a mixing layer reading masked channels as a `MaskedKernel`, the masks
    # scaling its `input_weight` (its call must then take its input alone)
    kernel_takes_masks = True
    weights = {}
    width_key = None  # config key holding the output width (e.g. "filters")
    inputs = None  # number of input tensors the rule couples (None: any)
    outputs = None  # number of output tensors the rule couples (None: any)

    def couple(self, op, b):
        raise NotImplementedError

    def check_arity(self, op):
        """Raises `RuleArityError` unless the rule couples every input and output of `op`
        (a Keras mask passed as `mask=` is not a channel input: `keras_mask_keys`)."""
        n_in, n_out = len(op.in_keys) - len(keras_mask_keys(op)), len(op.out_keys)
        if self.inputs not in (None, n_in) or self.outputs not in (None, n_out):
            raise RuleArityError(
                f"Layer '{op.layer.name}' ({_qualname(type(op.layer))}) is called on {n_in} "
                f"input tensor(s) with {n_out} output(s), but its rule {type(self).__name__} "
                f"couples {_count(self.inputs)} input(s) with {_count(self.outputs)} "
                "output(s): the channels of the others would be pruned apart and the compact "
                f"model would not build. {suggest_rule(op)}"
            )

    def compact(self, op, keep_of, scale_of=None):
        """What the compact model calls in place of `op`, given `keep_of(key)` (the kept
        channel positions of a tensor or internal axis, None: all) and `scale_of(key)`
        (the factor masks or gates apply to the channels the layer reads, None: none): a
        callable taking `op`'s arguments, or None for the default (a clone of the layer
        through `edit_config`, weights sliced)."""
        return None

    def masked_layer(self, layer):
        """What `wrap` calls in place of `layer` (a fresh copy of a layer of this rule)
        when the layer reads a masked tensor through something a mask cannot be folded
        into (a LayerNormalization's statistics): a wrapper that finds the masks in front
        of it, or (the default) the copy itself."""
        return layer

    def internal_axes(self, layer):
        """`{name: InternalAxis}`: channel axes inside `layer` (none by default)."""
        return {}

    def internal_input(self, op):
        """The input key the masks of `op`'s internal axes are called on (folded: they
        pass it through, and the layer reads them from it): the first input."""
        return op.in_keys[0]

    def scored_kernels(self, layer, internal=None):
        """`(values, axis)` of the kernels whose magnitudes score the channels `layer`
        makes: along its output (`internal` None) or along an internal axis."""
        if internal is not None:
            for path, axis in self.internal_axes(layer)[internal].scored:
                yield np.asarray(layer.weights[find_weight(layer, path)]), axis
            return
        axes = self.weight_axes(layer)
        for var in layer.weights:
            out_axis = axes.get(var.name, (None, None))[1]
            if out_axis is not None and "kernel" in var.name:
                yield np.asarray(var), out_axis

    def couple_calls(self, first, other, b):
        """Two calls of one layer share its weights: channel c of `other`'s input (output)
        is channel c of `first`'s."""
        b.identity(first.in_keys[0], other.in_keys[0])
        b.identity(first.out_keys[0], other.out_keys[0])

    def weight_axes(self, layer):
        return self.weights

    def input_weight(self, layer):
        """`(index, name, axis)` of the weight that takes a scale of the input channels
        (conv(x * s, K) == conv(x, K * s)): the first weight with an input axis; or None."""
        axes = self.weight_axes(layer)
        for i, var in enumerate(layer.weights):
            in_axis = axes.get(var.name, (None, None))[0]
            if in_axis is not None:
                return i, var.name, in_axis
        return None

    def input_weights(self, layer):
        """Every `(index, name, axis)` that takes a scale of the input channels: the
        `input_weight` (a Bidirectional RNN has two kernels of one name, each takes it)."""
        found = self.input_weight(layer)
        return [] if found is None else [found]

    def param_count(self, layer, op, keep_of):
        """Parameters `layer` keeps in the compact model, given `keep_of(key)` (the kept
        channel positions of a tensor or internal axis, None: all)."""
        axes = self.weight_axes(layer)
        in_keep = keep_of(op.in_keys[0]) if op.in_keys else None
        out_keep = keep_of(op.out_keys[0])
        full_in = op.in_shapes[0][-1] if op.in_keys else None
        total = 0
        for var in layer.weights:
            shape = list(var.shape)
            in_axis, out_axis = axes.get(var.name, (None, None))
            if in_axis is not None and in_keep is not None and full_in:
                shape[in_axis] = shape[in_axis] * len(in_keep) // full_in
            if out_axis is not None and out_keep is not None:
                shape[out_axis] = len(out_keep)
            total += int(np.prod(shape))
        return total

    def edit_config(self, config, op, in_keep, out_keep):
        if self.width_key is not None:
            config[self.width_key] = int(len(out_keep))
        return config

    def slice_weights(self, layer, values, in_keep, out_keep):
        """Slices each of `layer.weights` (numpy `values`) to the kept channels."""
        axes = self.weight_axes(layer)
        out = []
        for var, value in zip(layer.weights, values):
            in_axis, out_axis = axes.get(var.name, (None, None))
            if in_axis is not None and in_keep is not None:
                keep = in_keep
                m = _expand_factor(layer, var.name)
                if m > 1:
                    keep = (np.asarray(in_keep)[:, None] * m + np.arange(m)).reshape(-1)
                value = np.take(value, keep, axis=in_axis)
            if out_axis is not None and out_keep is not None:
                value = np.take(value, out_keep, axis=out_axis)
            out.append(value)
        return out


def keras_mask_keys(op):
    """The input keys of `op` passed as its call's `mask=` argument (a Keras mask: which
    steps of a sequence are padding, e.g. GlobalAveragePooling1D after an Embedding with
    `mask_zero=True`): they hold no channels."""
    node = getattr(op, "node", None)
    mask = None if node is None else node.arguments.kwargs.get("mask")
    if mask is None:
        return []
    ids = {id(t) for t in (mask if isinstance(mask, (list, tuple)) else [mask])}
    return [k for t, k in zip(node.input_tensors, op.in_keys) if id(t) in ids]


def couple_broadcast(op, b):
    """The coupling of an elementwise op on several tensors (the Merge layers, elementwise
    keras.ops: `rules.Merge`, `op_rules.Broadcast`): every input as wide as the output
    holds its channels; an input of width 1 or a scalar (a rank-0 tensor: `x - ops.mean(x)`)
    broadcasts and is left alone; an input of any other width is pinned with the output.
    A constant argument with more than one entry along the channel axis (`x * np_vector`:
    one factor per channel) pins every input with the output: the compact model calls the
    op on the same constant, which no longer broadcasts against fewer channels.
    A scalar output has no channels: nothing is coupled."""
    out_shape = op.out_shapes[0]
    if not out_shape:
        return
    for shape in constant_shapes(op):
        if shape and shape[-1] != 1:
            reason = f"{type(op.layer).__name__} with a constant of shape {shape}"
            b.pin(*op.in_keys, *op.out_keys, reason=reason)
            break
    for k, shape in zip(op.in_keys, op.in_shapes):
        if shape and shape[-1] == out_shape[-1]:
            b.identity(k, op.out_keys[0])
        elif shape and shape[-1] != 1:
            b.pin(k, op.out_keys[0], reason="broadcast merge")


def constant_shapes(op):
    """The shapes (tuples) of the arguments of `op`'s call that are not Keras tensors: the
    constants it is called on (`x * np.ones(8)`: `(8,)`; `x + 1.0`: `()`)."""
    from keras import KerasTensor, tree

    node = getattr(op, "node", None)
    if node is None:
        return []
    shapes = []

    def visit(value):
        if isinstance(value, KerasTensor) or value is None:
            return
        if isinstance(value, (list, tuple, dict)) and any(
            isinstance(v, KerasTensor) for v in tree.flatten(value)
        ):
            for v in value.values() if isinstance(value, dict) else value:
                visit(v)
            return
        shape = getattr(value, "shape", None)
        try:
            shape = tuple(np.shape(value)) if shape is None else tuple(shape)
        except (TypeError, ValueError):  # not array-like (a dtype, a string ...)
            return
        shapes.append(tuple(None if d is None else int(d) for d in shape))

    for value in (*node.arguments.args, *node.arguments.kwargs.values()):
        visit(value)
    return shapes


class RuleArityError(ValueError):
    """A rule that cannot couple every input and output of a layer."""


def _count(n):
    return "any number of" if n is None else str(n)


def _expand_factor(layer, name):
    """Channels per input channel on a weight's input axis (separable pointwise kernels)."""
    if name == "pointwise_kernel":
        return int(getattr(layer, "depth_multiplier", 1))
    return 1


def _qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def channel_sized_weights(layer, widths):
    """The weights of `layer` with an axis of one of the channel counts `widths`: those a
    channelwise rule must name (and slice)."""
    return [w for w in getattr(layer, "weights", []) if set(w.shape) & set(widths)]


def suggest_rule(op):
    """What to do about a layer without a (fitting) rule, fitted to the call `op`: one
    input and one output -> Channelwise; several inputs, one output -> Merge (every input
    the same channels, as Add's); otherwise, or for an op refused by name
    (`opaque.Refused`: no built-in rule is right for it), only `exclude`. A generic Keras
    class (Lambda, TFSMLayer, TimeDistributed ...: `_generic`) gets no rule to register:
    one for the class would hold for all its instances, whatever they compute."""
    from tfcompress.graph.opaque import Refused
    from tfcompress.graph.rules import find_rule

    layer = op.layer
    cls = type(layer).__qualname__
    exclude = f"exclude=['{layer.name}']"
    if isinstance(find_rule(layer), Refused):
        return f"Leave it alone with `{exclude}` (or write a Rule for it)."
    if _generic(layer):
        how = (
            "Write its function with keras.ops only (`keras.ops.relu6`, not "
            "`tf.nn.relu6`): tfcompress sees through such a Lambda. "
            if _generic(layer) == "Lambda" else ""
        )
        return (
            f"{cls} is a generic Keras class (each instance computes the function, model or "
            "layer it is given): a rule registered for it would hold for every "
            f"{cls} of every model, and silently mis-handle those that compute something "
            f"else. {how}Leave it alone with `{exclude}`, or make it a class of your own "
            "(a subclass) and register a rule for that class."
        )
    n_in, n_out = len(op.in_keys), len(op.out_keys)
    if n_in == 1 and n_out == 1 and _holds_embedding(layer):
        return (
            f"If it embeds its input ids (a token and position embedding), register "
            f"`tfcompress.graph.register_rule({cls}, tfcompress.graph.rules.Embedding("
            "width_key=<its config key of the embedding dimension>))`; otherwise leave it "
            f"alone with `{exclude}`."
        )
    widths = {s[-1] for s in (*op.in_shapes, *op.out_shapes) if s} - {None}
    sized = [w.path for w in channel_sized_weights(layer, widths)]
    if n_in == 1 and n_out == 1 and sized:
        # Channelwise() slices none of them: strip would then fail to load them
        weights = sized[:4]
        return (
            f"It holds weights ({weights}), which a rule must slice along their channel "
            f"axes: leave it alone with `{exclude}` (a recurrent layer of your own: always), "
            "or, if output channel c is input channel c and each weight holds one entry per "
            f"channel, register `tfcompress.graph.register_rule({cls}, "
            "tfcompress.graph.rules.Channelwise({'<weight>': (None, <its channel "
            "axis>)}))`, as PReLU's `{'alpha': (None, -1)}`."
        )
    if n_in == 1 and n_out == 1:
        return (
            f"If output channel c is input channel c, register `tfcompress.graph."
            f"register_rule({cls}, tfcompress.graph.rules.Channelwise())`; otherwise (or "
            f"to keep it as it is) leave it alone with `{exclude}`."
        )
    if n_in > 1 and n_out == 1:
        return (
            f"It takes {n_in} input tensors: if they and its output are the same channels "
            f"(as Add's), register `tfcompress.graph.register_rule({cls}, "
            "tfcompress.graph.rules.Merge())`; otherwise leave it alone with "
            f"`{exclude}`."
        )
    return (
        f"It is called on {n_in} input(s) with {n_out} outputs, which no built-in rule "
        f"couples: leave it alone with `{exclude}` (or write a Rule for it)."
    )


def generic_classes():
    """Keras's generic layer classes, whose instances compute whatever they are given (a
    function, a SavedModel, a JAX or torch module, an RNN cell, an inner layer or a list
    of layers): no rule holds for all their instances. Their subclasses (LSTM is an RNN)
    are specific."""
    from keras import layers

    return (
        layers.Layer, layers.Lambda, layers.TFSMLayer, layers.JaxLayer, layers.FlaxLayer,
        layers.TorchModuleWrapper, layers.Wrapper, layers.TimeDistributed,
        layers.Bidirectional, layers.RNN, layers.Pipeline,
    )


def _generic(layer):
    """The name of `layer`'s class when it is one of `generic_classes()`, else None."""
    return type(layer).__name__ if type(layer) in generic_classes() else None


def _holds_embedding(layer):
    """True when `layer` holds a `keras.layers.Embedding` among its sublayers."""
    from keras import layers

    return any(isinstance(sub, layers.Embedding) for sub in sublayers(layer))
