"""Rules for keras.ops called on KerasTensors in functional models whose channel map depends
on their arguments: `keras.ops.pad`, `keras.ops.split` and `x[...]` (Pad, Split, GetItem),
elementwise ops on several tensors (Broadcast), ops along an `axis` (Reduce: `mean`,
`sort`, `cumsum` ...), ops that add or move axes (KeepsLastAxis: `expand_dims`,
`transpose`, `stack` ...). Split and GetItem name channels in their call arguments, so they
also give the compact model its call (`Rule.compact`).
Which keras.ops operation takes which rule (or is refused, and why): `op_table`."""

import numpy as np
from keras import ops

from tfcompress.graph.rule_base import Rule, couple_broadcast


class Pad(Rule):
    """`keras.ops.pad`: channelwise when the channel axis is not padded, else pinned."""

    inputs, outputs = 1, 1

    def couple(self, op, b):
        rank = len(op.in_shapes[0])
        try:
            widths = np.broadcast_to(np.asarray(op.layer.pad_width), (rank, 2))
        except (TypeError, ValueError):
            widths = None
        if widths is None or np.any(widths[-1] != 0):
            b.pin(*op.in_keys, *op.out_keys, reason="pad along the channel axis")
            return
        b.identity(op.in_keys[0], op.out_keys[0])


class Split(Rule):
    """`keras.ops.split`: along channels, output i is the input's channels from its offset
    on (as Concatenate's inputs, inverted); along other axes, each output is the input's
    channels."""

    inputs, outputs = 1, None

    def couple(self, op, b):
        if not _splits_channels(op):
            for k in op.out_keys:
                b.identity(op.in_keys[0], k)
            return
        offset = 0
        for k, shape in zip(op.out_keys, op.out_shapes):
            b.offset(k, op.in_keys[0], offset)
            offset += shape[-1]

    def compact(self, op, keep_of, scale_of=None):
        keep = keep_of(op.in_keys[0])
        if keep is None or not _splits_channels(op):
            return None
        ends = np.cumsum([shape[-1] for shape in op.out_shapes])[:-1]
        indices = [int(n) for n in np.searchsorted(keep, ends)]
        axis = op.layer.axis

        def split(x):
            return ops.split(x, indices, axis=axis)

        return split


def _splits_channels(op):
    rank = len(op.in_shapes[0])
    return op.layer.axis is not None and op.layer.axis % rank == rank - 1


class GetItem(Rule):
    """`x[key]` on a KerasTensor: slices of other axes are channelwise; a step-1 slice of
    the channel axis keeps channels `start .. stop - 1` (output channel c is input channel
    start + c); any other channel index (an int, a step, a list, a new axis) pins."""

    inputs, outputs = 1, 1

    def couple(self, op, b):
        found = _channel_slice(op)
        if found is None:
            b.pin(*op.in_keys, *op.out_keys, reason="index along the channel axis")
            return
        b.offset(op.out_keys[0], op.in_keys[0], found[2])

    def compact(self, op, keep_of, scale_of=None):
        keep = keep_of(op.in_keys[0])
        found = _channel_slice(op)
        if keep is None or found is None or found[1] is None:
            return None
        key, position, start, stop = found
        key = list(key)
        key[position] = slice(*(int(n) for n in np.searchsorted(keep, [start, stop])))
        key = tuple(key)

        def get_item(x, _key):
            return x[key]

        return get_item


def _channel_slice(op):
    """`(key as a tuple, position of the channel entry in it or None, start, stop)` of
    `x[key]`'s channel range, or None when the channel axis is not kept as a step-1 range."""
    args = op.node.arguments.args
    key = args[1] if len(args) > 1 else op.node.arguments.kwargs.get("key")
    if isinstance(key, list) and any(k is Ellipsis or k is None or isinstance(k, slice)
                                     for k in key):  # fmt: skip
        key = tuple(key)  # as Keras loads a saved `x[..., a:b]`: its key read back as a list
    key = key if isinstance(key, tuple) else (key,)
    rank, c = len(op.in_shapes[0]), op.in_shapes[0][-1]
    plain = all(k is Ellipsis or isinstance(k, (int, slice)) for k in key)
    if c is None or not plain or sum(k is Ellipsis for k in key) > 1:
        return None
    if Ellipsis in key:
        position = key.index(Ellipsis)
        if position < len(key) - 1:
            position = len(key) - 1  # the last entry indexes the channel axis
        else:
            return (key, None, 0, c)  # x[a, ...]: channels untouched
    elif len(key) < rank:
        return (key, None, 0, c)  # trailing axes (the channel axis) are not indexed
    else:
        position = len(key) - 1
    if len(key) > rank + (Ellipsis in key):
        return None
    entry = key[position]
    if not isinstance(entry, slice) or isinstance(entry.start, bool):
        return None
    start, stop, step = entry.indices(c)
    if step != 1 or stop <= start or op.out_shapes[0][-1] != stop - start:
        return None
    return (key, position, start, stop)


class Reduce(Rule):
    """`keras.ops.mean`, `max`, `sum` ... over some axes, or `sort`, `cumsum`, `flip` ...
    along them (each channel on its own): channelwise while the channel axis is not among
    `op.layer.axis` (a squeeze-and-excite's spatial mean), else pinned (None: all axes)."""

    inputs, outputs = 1, 1

    def couple(self, op, b):
        rank = len(op.in_shapes[0])
        axis = op.layer.axis
        axes = range(rank) if axis is None else np.atleast_1d(axis).tolist()
        if any(int(a) % rank == rank - 1 for a in axes):
            b.pin(*op.in_keys, *op.out_keys, reason=f"{type(op.layer).__name__} over channels")
            return
        b.identity(op.in_keys[0], op.out_keys[0])


class ReshapeOp(Rule):
    """`keras.ops.reshape`: as the Reshape layer (`rules.Reshape`: channel axis kept last,
    or trailing axes folded into it); the compact model reshapes to the kept width."""

    inputs, outputs = 1, 1

    def couple(self, op, b):
        from tfcompress.graph.rules import Reshape

        Reshape().couple(op, b)

    def compact(self, op, keep_of, scale_of=None):
        keep = keep_of(op.out_keys[0])
        if keep is None:
            return None
        shape = list(op.layer.newshape)
        shape[-1] = int(len(keep))

        def reshape(x):
            return ops.reshape(x, shape)

        return reshape


class Broadcast(Rule):
    """Elementwise keras.ops on several tensors (`add`, `greater`, `where` ...), as the
    Merge layers (`rule_base.couple_broadcast`): every input as wide as the output holds
    its channels; an input of width 1 or a scalar (a rank-0 tensor: `x > ops.mean(x)`)
    broadcasts and is left alone; any other width pins."""

    outputs = 1

    def couple(self, op, b):
        couple_broadcast(op, b)


class KeepsLastAxis(Rule):
    """Ops that add, drop or move axes (`keras.ops.expand_dims`, `squeeze`, `transpose`,
    `stack` ...): every input's channel c is output channel c while the channel axis stays
    last, as `keeps(op)` tells from the op's arguments; otherwise pinned. The compact model
    calls the op with the same arguments (none of them counts channels)."""

    outputs = 1

    def __init__(self, keeps):
        self.keeps = keeps

    def couple(self, op, b):
        if not self.keeps(op):
            b.pin(*op.in_keys, *op.out_keys, reason=f"{type(op.layer).__name__} moves channels")
            return
        for k in op.in_keys:
            b.identity(k, op.out_keys[0])


def _axes(axis, rank):
    return [int(a) % rank for a in np.atleast_1d(axis).tolist()]


def expand_dims_keeps(op):
    rank = len(op.out_shapes[0])
    return rank - 1 not in _axes(op.layer.axis, rank)


def squeeze_keeps(op):
    return op.in_shapes[0][-1] != 1  # only a channel axis of size 1 can be squeezed


def transpose_keeps(op):
    axes = op.layer.axes
    rank = len(op.in_shapes[0])
    return axes is not None and int(axes[-1]) % rank == rank - 1


def stack_keeps(op):
    rank = len(op.out_shapes[0])
    return op.layer.axis % rank != rank - 1


def swapaxes_keeps(op):
    rank = len(op.in_shapes[0])
    return rank - 1 not in _axes((op.layer.axis1, op.layer.axis2), rank)


def moveaxis_keeps(op):
    rank = len(op.in_shapes[0])
    moved = _axes(op.layer.source, rank) + _axes(op.layer.destination, rank)
    return rank - 1 not in moved


def tile_keeps(op):
    return int(np.atleast_1d(op.layer.repeats)[-1]) == 1


def append_keeps(op):
    rank = len(op.out_shapes[0])
    return op.layer.axis is not None and op.layer.axis % rank != rank - 1
