"""Parameters and multiply-accumulates (MACs) per layer, from the traced graph."""

import dataclasses

import numpy as np
from keras import layers

from tfcompress.graph.attention_rules import call_inputs
from tfcompress.graph.rules import unwrap
from tfcompress.graph.trace import trace
from tfcompress.layers import ChannelMask, WeightMask
from tfcompress.numbers import check_count


def _prod(xs):
    return int(np.prod([int(x) for x in xs])) if len(xs) else 1


def _channels_last(layer, shape):
    """`shape` with the channels last (a channels_first layer's moved from axis 1)."""
    if getattr(layer, "data_format", "channels_last") == "channels_first" and len(shape) > 2:
        return (shape[0], *shape[2:], shape[1])
    return tuple(shape)


def _conv_macs(layer, in_shape, out_shape):
    in_shape, out_shape = _channels_last(layer, in_shape), _channels_last(layer, out_shape)
    k = _prod(layer.kernel_size)
    cin, cout = in_shape[-1], out_shape[-1]
    if isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)):
        return _prod(in_shape[1:-1]) * k * cin * cout
    spatial = _prod(out_shape[1:-1])
    if isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
        return spatial * k * cout
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        mid = cin * layer.depth_multiplier
        return spatial * k * mid + spatial * mid * cout
    return spatial * k * cin * cout // getattr(layer, "groups", 1)


def _einsum_macs(layer, out_shape):
    """Every output element sums over the letters the equation contracts (in the kernel,
    not in the output)."""
    x_k, out = layer.equation.split("->")
    kernel = x_k.split(",")[1].replace("...", "")
    shape = layer.kernel.shape
    contracted = [shape[i] for i, c in enumerate(kernel) if c not in out]
    return _prod(out_shape[1:]) * _prod(contracted)


def _attention_macs(layer, q_shape, v_shape, out_shape, k_shape=None):
    """Projections, scores and weighted values of a MultiHeadAttention: the key projected
    from `k_shape` (default: the value), each query position scored against the value
    positions along `attention_axes` (default: all inner axes; the others are batch-like)."""
    heads, key_dim, value_dim = layer.num_heads, layer.key_dim, layer.value_dim
    k_shape = v_shape if k_shape is None else k_shape
    t, s = _prod(q_shape[1:-1]), _prod(v_shape[1:-1])
    axes = layer.get_config().get("attention_axes")
    if axes is None:
        attended = s
    else:
        rank = len(v_shape)
        axes = (axes,) if isinstance(axes, int) else axes
        attended = _prod([v_shape[a % rank] for a in axes])
    macs = t * q_shape[-1] * heads * key_dim  # query
    macs += _prod(k_shape[1:-1]) * k_shape[-1] * heads * key_dim  # key
    macs += s * v_shape[-1] * heads * value_dim  # value
    macs += t * heads * value_dim * out_shape[-1]  # output projection
    if getattr(layer, "_use_gate", False):
        macs += t * q_shape[-1] * heads * value_dim
    return macs + t * attended * heads * (key_dim + value_dim)  # q.k and scores.v


def _grouped_attention_macs(layer, q_shape, v_shape):
    """A GroupQueryAttention's projections (key and value with the key/value heads; query,
    gate and output with the query heads), scores and weighted values (every query head)."""
    hq, hkv, dim = layer.num_query_heads, layer.num_key_value_heads, layer.head_dim
    t, s, d = _prod(q_shape[1:-1]), _prod(v_shape[1:-1]), q_shape[-1]
    macs = t * d * hq * dim * (3 if layer.use_gate else 2)  # query, (gate,) output
    macs += 2 * s * v_shape[-1] * hkv * dim  # key, value
    return macs + 2 * t * s * hq * dim  # q.k and scores.v


# Keras's recurrent layers: the products of each gate per unit and step (their input by
# the kernel, their state by the recurrent kernel). An RNN of another cell is not modelled
# (it counts 0): the report names it rather than let a total look complete.
GATES = {layers.SimpleRNN: 1, layers.GRU: 3, layers.LSTM: 4,
         layers.ConvLSTM1D: 4, layers.ConvLSTM2D: 4, layers.ConvLSTM3D: 4}  # fmt: skip


def macs_counted(layer):
    """False for a layer whose multiply-accumulates `layer_macs` leaves out: an RNN of a
    cell of its own (a TimeDistributed or Bidirectional of one too)."""
    layer = unwrap(layer)
    if isinstance(layer, layers.TimeDistributed):
        return macs_counted(layer.layer)
    if isinstance(layer, layers.Bidirectional):
        return macs_counted(layer.forward_layer) and macs_counted(layer.backward_layer)
    return not isinstance(layer, layers.RNN) or type(layer) in GATES


def _recurrent_macs(layer, in_shape, out_shape):
    """Each step: every gate multiplies the input by its kernel and the state by its
    recurrent kernel; a ConvLSTM convolves both (its state "same"-padded) at every output
    position."""
    gates, steps, width = GATES[type(layer)], in_shape[1], in_shape[-1]
    if hasattr(layer, "kernel_size"):  # output (batch, [time,] *positions, filters)
        rank, f = len(layer.kernel_size), layer.filters
        positions = _prod(out_shape[-1 - rank : -1])
        return steps * positions * _prod(layer.kernel_size) * gates * f * (width + f)
    return steps * gates * layer.units * (width + layer.units)


def layer_macs(layer, in_shape, out_shape, value_shape=None, key_shape=None):
    """MACs of one call (batch 1) of a conv/dense/attention layer; 0 for other layers.
    `value_shape`, `key_shape`: an attention layer's value and key inputs (default: the
    query, and the value)."""
    layer = unwrap(layer)
    if any(d is None for d in (*in_shape[1:], *out_shape[1:])):
        return 0
    if isinstance(layer, layers.Dense):
        return _prod(in_shape[1:]) * out_shape[-1]
    if isinstance(layer, layers.EinsumDense):
        return _einsum_macs(layer, out_shape)
    if isinstance(layer, layers.MultiHeadAttention):
        v = in_shape if value_shape is None or None in value_shape[1:] else value_shape
        k = None if key_shape is None or None in key_shape[1:] else key_shape
        return _attention_macs(layer, in_shape, v, out_shape, k)
    if isinstance(layer, layers.GroupQueryAttention):
        v = in_shape if value_shape is None or None in value_shape[1:] else value_shape
        return _grouped_attention_macs(layer, in_shape, v)
    if type(layer) in GATES:
        return _recurrent_macs(layer, in_shape, out_shape)
    if isinstance(layer, layers.Bidirectional):
        return sum(layer_macs(sub, in_shape, out_shape)
                   for sub in (layer.forward_layer, layer.backward_layer))  # fmt: skip
    if isinstance(layer, layers.TimeDistributed):  # its layer, once per step
        step_in, step_out = (in_shape[0], *in_shape[2:]), (out_shape[0], *out_shape[2:])
        return in_shape[1] * layer_macs(layer.layer, step_in, step_out)
    if isinstance(layer, layers.RNN):  # of a cell of its own: not modelled
        return 0
    if hasattr(layer, "kernel_size"):
        return _conv_macs(layer, in_shape, out_shape)
    return 0


def _nonzero(layer):
    if isinstance(layer, WeightMask):
        total = 0
        for var in layer.layer.weights:
            value = np.asarray(var)
            if var.name in layer.masks:
                value = value * np.asarray(layer.masks[var.name])
            total += int(np.count_nonzero(value))
        return total
    return int(sum(np.count_nonzero(np.asarray(v)) for v in getattr(layer, "weights", [])))


@dataclasses.dataclass
class LayerStats:
    name: str
    class_name: str
    output_shape: tuple
    params: int
    nonzero_params: int
    macs: int
    macs_counted: bool = True  # False: a layer `layer_macs` does not model (`macs_counted`)


def with_length(shape, length):
    """`shape` with its unknown inner sizes (not the batch, not the channels) set to
    `length` (None: unchanged)."""
    if length is None or len(shape) < 3:
        return shape
    inner = tuple(length if d is None else d for d in shape[1:-1])
    return (shape[0], *inner, shape[-1])


def _attention_shapes(op, sequence_length):
    """`(query, value, key)` shapes of an attention layer's call, read by argument name
    (`attention_rules.call_inputs`: a mask among its inputs is none of them; the key is
    the value when not given); None for other calls."""
    if getattr(op, "node", None) is None or not isinstance(
        unwrap(op.layer), (layers.MultiHeadAttention, layers.GroupQueryAttention)
    ):
        return None
    shape_of = dict(zip(op.in_keys, op.in_shapes))
    found = call_inputs(op)
    return tuple(
        None if found.get(name) is None else with_length(tuple(shape_of[found[name]]),
                                                         sequence_length)
        for name in ("query", "value", "key")
    )  # fmt: skip


def layer_stats(model, sequence_length=None):
    """One `LayerStats` per layer (mask layers left out), in topological order.

    `sequence_length`: the size MACs are counted at along inner axes of unknown size (a
    sequence's length; an integer >= 1); None: a layer with such an axis counts 0 MACs."""
    check_count("sequence_length", sequence_length, none=True)
    sequence_length = None if sequence_length is None else int(sequence_length)  # np.int64
    traced = trace(model)
    stats, seen = [], {}
    for op in traced.ops:
        layer = op.layer
        if isinstance(layer, ChannelMask):
            continue
        shapes = [with_length(shape, sequence_length) for shape in op.in_shapes]
        value = key = None
        attention = _attention_shapes(op, sequence_length)
        if attention is not None:
            shapes[0], value, key = attention
        out_shape = with_length(op.out_shapes[0], sequence_length)
        macs = layer_macs(layer, shapes[0], out_shape, value, key) if shapes else 0
        if layer in seen:  # a shared layer: its weights count once, its calls each
            seen[layer].macs += macs
            continue
        inner = unwrap(layer)
        row = LayerStats(
            name=layer.name,
            class_name=type(inner).__name__,
            output_shape=tuple(op.out_shapes[0]),
            params=int(inner.count_params()) if getattr(inner, "built", False) else 0,
            nonzero_params=_nonzero(layer),
            macs=macs,
            macs_counted=macs_counted(layer),
        )
        seen[layer] = row  # keyed by the layer itself (it outlives the dict)
        stats.append(row)
    return stats


def count_params(model):
    return sum(s.params for s in layer_stats(model))


def count_macs(model, sequence_length=None):
    return sum(s.macs for s in layer_stats(model, sequence_length))
