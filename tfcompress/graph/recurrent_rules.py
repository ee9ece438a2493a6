"""Rules for recurrent layers: `SimpleRNN`, `GRU`, `LSTM`, `ConvLSTM1D/2D/3D` and a
`Bidirectional` of one of them.

A recurrent layer reads its input channels through its kernel alone (`x @ W`, or a conv
of `x` with `W`, per step): a dropped input channel drops its kernel rows (its slices
along the kernel's input axis), exactly, as for a Dense or a conv. So the layers in front
of it are prunable: a Conv1D -> LSTM -> Dense net prunes the Conv1D's filters.

Its units are kept (pinned): a unit's output is fed back into every unit at the next step
(`h_{t-1} @ U`), so a mask after the layer would leave the unit's influence on the others,
and the compact model, without the unit, would compute something else. Pruning units
needs a mask inside the recurrence; there is none yet. The initial states passed as
`initial_state=` and a Keras mask (`mask=`, from `Embedding(mask_zero=True)`) hold no
input channels: pinned as well.

`Bidirectional` is a generic wrapper: it is seen as its layers only when both are of the
classes above (then the kernels of both are sliced); any other pins every channel it
touches, as does a subclass of one of them (its call may read its input otherwise).
"""

from keras import layers

from tfcompress.graph.rule_base import Rule

# the kernel's input axis per class (its units axis is never cut)
_KERNEL_INPUT_AXIS = {
    layers.SimpleRNN: 0,
    layers.GRU: 0,
    layers.LSTM: 0,
    layers.ConvLSTM1D: -2,
    layers.ConvLSTM2D: -2,
    layers.ConvLSTM3D: -2,
}


def _input_axis(layer):
    """The kernel's input axis of a recurrent `layer` (None for another class)."""
    return _KERNEL_INPUT_AXIS.get(type(layer))


class Recurrent(Rule):
    """A recurrent layer (module docstring): input channels consumed, kernel rows sliced;
    units, states and masks pinned."""

    is_mixing = True  # its outputs (the units) are channels of its own, never its input's
    kernel_takes_masks = False  # its call takes states, a Keras mask, `training`
    inputs, outputs = None, None  # initial states in; sequences and final states out

    def _axis(self, layer):
        if isinstance(layer, layers.Bidirectional):
            axes = {_input_axis(layer.forward_layer), _input_axis(layer.backward_layer)}
            return axes.pop() if len(axes) == 1 else None
        return _input_axis(layer)

    def couple(self, op, b):
        layer = op.layer
        name = type(layer).__name__
        b.pin(*op.out_keys, reason=f"{name} units (fed back into the recurrence)")
        b.pin(*op.in_keys[1:], reason=f"{name} initial states or Keras mask")
        if self._axis(layer) is None:  # a subclass, or a Bidirectional of another RNN
            inner = getattr(layer, "forward_layer", None)
            of = f" of {type(inner).__name__}" if inner is not None else ""
            b.pin(op.in_keys[0], reason=f"{name}{of}: not a known recurrent layer")
        elif getattr(layer, "data_format", "channels_last") == "channels_first":
            b.pin(op.in_keys[0], reason=f"{name} channels_first")
        else:
            b.consume(op, op.in_keys[0])

    def weight_axes(self, layer):
        axis = self._axis(layer)
        return {} if axis is None else {"kernel": (axis, None)}

    def input_weights(self, layer):
        """Each kernel (a Bidirectional's forward and backward one) takes the scale."""
        axis = self._axis(layer)
        if axis is None:
            return []
        return [(i, w.name, axis) for i, w in enumerate(layer.weights) if w.name == "kernel"]


RECURRENT = Recurrent()
RULES = {cls: RECURRENT for cls in (*_KERNEL_INPUT_AXIS, layers.Bidirectional)}
