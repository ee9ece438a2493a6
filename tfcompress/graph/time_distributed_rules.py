"""`TimeDistributed(layer)`: the rule of the layer it wraps, applied to every step.

TimeDistributed calls its layer on each step of a sequence (`(batch, time, ...)` as
`time` calls on `(batch, ...)`), so its channels (the last axis) are coupled as the
layer's are: a `TimeDistributed(Conv2D)` makes new channels and consumes its input's, a
`TimeDistributed(BatchNormalization)` or `TimeDistributed(Flatten)` maps them as the layer
does. With `recurrent_rules`, a CNN-RNN net (per-frame convs, then an LSTM) prunes its convs.

`TimeDistributed` is a generic class: it gets this rule only for a layer that has a rule
(`rules.find_rule`) and no internal axis (attention heads); any other stays a layer
without a rule (refused by name, or `exclude=[...]`). The masks in front of it scale
activations, not its kernel: its call takes a Keras mask and `training`.
"""

import dataclasses

from tfcompress.graph.rule_base import Rule


def _per_step(op):
    """`op` as its layer's call on one step: the wrapped layer, shapes without time."""
    drop = lambda shapes: [tuple(s[:1]) + tuple(s[2:]) for s in shapes]  # noqa: E731
    return dataclasses.replace(
        op, layer=op.layer.layer, in_shapes=drop(op.in_shapes), out_shapes=drop(op.out_shapes)
    )


class _Consumer:
    """The coupler `b` seen by the wrapped layer's rule: what that rule consumes, the
    TimeDistributed op consumes (the graph knows the op, not the wrapped layer)."""

    def __init__(self, b, op):
        self._b, self._op = b, op

    def consume(self, op, key):
        self._b.consume(self._op, key)

    def __getattr__(self, name):
        return getattr(self._b, name)


class TimeDistributed(Rule):
    """The wrapped layer's rule `inner`, per step (module docstring)."""

    kernel_takes_masks = False

    def __init__(self, inner):
        self.inner = inner
        self.is_mixing = inner.is_mixing
        self.inputs, self.outputs = inner.inputs, inner.outputs

    def couple(self, op, b):
        self.inner.couple(_per_step(op), _Consumer(b, op))

    def couple_calls(self, first, other, b):
        self.inner.couple_calls(_per_step(first), _per_step(other), _Consumer(b, first))

    def weight_axes(self, layer):
        return self.inner.weight_axes(layer.layer)

    def input_weights(self, layer):
        return self.inner.input_weights(layer.layer)

    def scored_kernels(self, layer, internal=None):
        return self.inner.scored_kernels(layer.layer, internal)

    def param_count(self, layer, op, keep_of):
        return self.inner.param_count(layer.layer, _per_step(op), keep_of)

    def edit_config(self, config, op, in_keep, out_keep):
        """The wrapped layer's config, edited by its rule."""
        inner = dict(config["layer"])
        inner["config"] = self.inner.edit_config(
            dict(inner["config"]), _per_step(op), in_keep, out_keep
        )
        return {**config, "layer": inner}

    def slice_weights(self, layer, values, in_keep, out_keep):
        return self.inner.slice_weights(layer.layer, values, in_keep, out_keep)
