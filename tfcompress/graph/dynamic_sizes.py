"""Sizes unknown while a composite layer is traced into its parts.

A decoder block builds its causal mask from the sequence's length, `ops.shape(x)[1]`: on the
fresh `keras.Input`s `decompose` calls the block with, that length is None, and
`ops.arange(None)` fails, so the block stayed opaque. When a call fails so, `decompose`
calls it again in `symbolic_sizes()`, where an unknown size is a scalar tensor of the
graph instead:

- `keras.ops.shape(x)` gives, for each unknown size, the output of `SizeOf(axis)(x)` (the
  size of `x` along `axis` when the model runs);
- `keras.ops.arange` and `keras.ops.broadcast_to` given such a size record `DynamicArange`
  and `DynamicBroadcastTo`, whose sizes are inputs of the node, not constants of its
  config (Keras' own `Arange` and `BroadcastTo` need known sizes);
- `keras.ops.reshape` is given None for such a size, as in the first call (one unknown
  size of a reshape becomes -1: `decompose`); with two or more unknown sizes (batch and
  length: keras_hub's Llama attention) the call fails, and the layer stays opaque;
- a sublayer called with a keyword argument equal to its default None is called without
  it, which computes the same (keras_hub's `CachedMultiHeadAttention` is passed
  `cache=None`, a keyword `MultiHeadAttention.compute_output_spec` does not take).

Outside `symbolic_sizes()` nothing changes. `SizeOf` reads only a size of its input: it
couples no channels (`ReadsSize`).
`DynamicArange` and `DynamicBroadcastTo` make positions (a causal mask), never channels:
`Pin`. Their rules are merged into `tfcompress.graph.rules.RULES` on import.
"""

import contextlib
import inspect

import keras
from keras.src.ops import core as keras_core
from keras.src.ops import numpy as keras_numpy
from keras.src.ops.operation import Operation

from tfcompress.graph.rule_base import Rule
from tfcompress.graph.rules import RULES, Pin


@keras.saving.register_keras_serializable(package="tfcompress")
class SizeOf(Operation):
    """The size of a tensor along `axis`, as an int32 scalar (known when the model runs)."""

    def __init__(self, axis, name=None):
        super().__init__(name=name)
        self.axis = int(axis)

    def call(self, x):
        return keras_core.shape(x)[self.axis]

    def compute_output_spec(self, x):
        return keras.KerasTensor((), dtype="int32")

    def get_config(self):
        return {"axis": self.axis, "name": self.name}


@keras.saving.register_keras_serializable(package="tfcompress")
class DynamicArange(Operation):
    """`keras.ops.arange(start, stop, step)` whose bounds may be tensors (`SizeOf`)."""

    def __init__(self, dtype=None, name=None):
        super().__init__(name=name)
        self.dtype = dtype

    def call(self, start, stop=None, step=None):
        return keras_numpy.arange(start, stop, step, dtype=self.dtype)

    def compute_output_spec(self, start, stop=None, step=None):
        return keras.KerasTensor((None,), dtype=self.dtype or "int32")

    def get_config(self):
        return {"dtype": self.dtype, "name": self.name}


@keras.saving.register_keras_serializable(package="tfcompress")
class DynamicBroadcastTo(Operation):
    """`keras.ops.broadcast_to(x, shape)` with the sizes of `shape` as inputs (ints or
    `SizeOf` scalars)."""

    def call(self, x, *shape):
        return keras_numpy.broadcast_to(x, shape)

    def compute_output_spec(self, x, *shape):
        sizes = tuple(s if isinstance(s, int) else None for s in shape)
        return keras.KerasTensor(sizes, dtype=x.dtype)

    def get_config(self):
        return {"name": self.name}


class ReadsSize(Rule):
    """`SizeOf`: its output holds no channels, and the size it reads is not a channel axis
    (a size unknown when traced is never one: a tensor whose last size is unknown has no
    channels), so it couples nothing and its input's channels stay free."""

    def couple(self, op, b):
        """Nothing to couple."""


def _symbolic(*values):
    return any(isinstance(v, keras.KerasTensor) for v in values)


def _shape(x):
    shape = keras_core.shape(x)
    if not isinstance(x, keras.KerasTensor):
        return shape
    return tuple(SizeOf(axis)(x) if size is None else size for axis, size in enumerate(shape))


def _arange(start, stop=None, step=None, dtype=None):
    if _symbolic(start, stop, step):
        return DynamicArange(dtype)(start, stop, step)
    return keras_numpy.arange(start, stop, step, dtype=dtype)


def _broadcast_to(x, shape):
    if _symbolic(*shape):
        return DynamicBroadcastTo()(x, *shape)
    return keras_numpy.broadcast_to(x, shape)


def _reshape(x, newshape):
    if isinstance(newshape, (tuple, list)):
        newshape = tuple(None if isinstance(d, keras.KerasTensor) else d for d in newshape)
        if sum(d is None for d in newshape) > 1:
            raise ValueError(
                f"keras.ops.reshape to {newshape}: more than one size unknown when traced "
                "(a reshape whose sizes are tensors of the graph has no rule yet)"
            )
    return keras_numpy.reshape(x, newshape)


def _without_none_defaults(layer_call):
    def call(layer, *args, **kwargs):
        try:
            params = inspect.signature(layer.call).parameters
        except (TypeError, ValueError):
            params = {}
        kwargs = {
            k: v
            for k, v in kwargs.items()
            if not (v is None and k in params and params[k].default is None)
        }
        return layer_call(layer, *args, **kwargs)

    return call


@contextlib.contextmanager
def symbolic_sizes():
    """While in this context, unknown sizes are `SizeOf` tensors (module docstring)."""
    ops = {"shape": _shape, "arange": _arange, "broadcast_to": _broadcast_to, "reshape": _reshape}
    saved = {name: getattr(keras.ops, name) for name in ops}
    layer_call = keras.Layer.__call__
    for name, function in ops.items():
        setattr(keras.ops, name, function)
    keras.Layer.__call__ = _without_none_defaults(layer_call)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(keras.ops, name, function)
        keras.Layer.__call__ = layer_call


RULES.update({SizeOf: ReadsSize(), DynamicArange: Pin(), DynamicBroadcastTo: Pin()})
