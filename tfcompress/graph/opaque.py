"""Opaque layers: a layer without a channel rule that the graph cannot see through
(`tfcompress.graph.decompose`) is accepted when every channel it touches is kept anyway.

A layer of one's own that adds a weight to a transformer's hidden width, on a residual
stream a model output holds (a keras_hub backbone's `sequence_output`), cannot block a
pruning that does not reach it. Such a layer is treated as `Pin` (its channels are kept,
its weights copied unchanged). One that touches a channel some group could otherwise remove
is refused by name (`UnknownLayerError`), as every unknown layer was before.
"""

import numpy as np

from tfcompress.graph.rule_base import Rule


class Opaque(Rule):
    """The rule of a layer the graph knows nothing about: it couples nothing; the graph
    checks that every channel it touches is kept for another reason (`blocking`), then
    keeps them."""

    def couple(self, op, b):
        """Nothing yet: `DependencyGraph` pins the op's tensors once `blocking` is empty."""

    def couple_calls(self, first, other, b):
        """Nothing: coupling two calls would spread one call's pins to the other's
        tensors, and `blocking` would then accept what no other layer keeps."""


def blocking(ops, coupler):
    """`[(op, tensor key)]`: for each op of `ops` (opaque layers' calls), its tensors that
    hold a channel no pin keeps (one whose group could be pruned without the layer).

    Args:
        ops: the opaque layers' op nodes.
        coupler: the `Coupler` after every rule has coupled and pinned (components known).
    """
    _, labels = coupler.components()
    pinned = np.zeros(labels.max() + 1 if len(labels) else 0, bool)
    for key in coupler.pins:
        start = coupler.offsets[key]
        pinned[labels[start : start + coupler.size[key]]] = True
    found = []
    for op in ops:
        for key in (*op.in_keys, *op.out_keys):
            start, size = coupler.offsets[key], coupler.size[key]
            if size and not pinned[labels[start : start + size]].all():
                found.append((op, key))
    return found


class Refused(Opaque):
    """An operation tfcompress knows and has no channel rule for, on purpose: opaque (its
    channels are kept when another layer keeps them anyway), and when it would block a
    pruning, refused with `reason` (`tfcompress.graph.op_table`).

    Args:
        name: what the user called, e.g. "keras.ops.map".
        reason: why no rule couples its channels (a clause, lower case).
    """

    def __init__(self, name, reason):
        self.name = name
        self.reason = reason

    def describe(self):
        return f"{self.name} is refused: {self.reason}"

    def __repr__(self):
        return f"Refused({self.name!r})"
