"""Recurrent layers unrolled for TFLite.

A Keras 3 recurrent layer runs a `while` loop that reads its weights inside the loop: the
TFLite converter either stops at the loop's `tf.TensorListReserve` (batch of unknown
size: it asks for Select TF ops, which LiteRT's builtin interpreter lacks) or writes a
file that fails in LiteRT (`READ_VARIABLE ... failed to invoke`, batch fixed). The same
layer with `unroll=True` is one step's ops per time step, which TFLite runs: a compact
LSTM / GRU / Bidirectional model then exports with a dynamic batch and matches the Keras
model (`tests/test_export_recurrent.py`). Unrolling needs the sequence length.
"""

import keras

from tfcompress.export.saved_model import clone_with
from tfcompress.graph.trace import layers_of


def _rolled(layer):
    """True for a recurrent layer (or a Bidirectional of one) that runs a loop."""
    if isinstance(layer, keras.layers.Bidirectional):
        return _rolled(layer.forward_layer) or _rolled(layer.backward_layer)
    return isinstance(layer, keras.layers.RNN) and not layer.unroll


def _steps(layer):
    """The number of time steps `layer` is called on, None when unknown (or several)."""
    try:
        inputs = layer.input
    except (AttributeError, ValueError):  # never called, or called several times
        return None
    first = keras.tree.flatten(inputs)[0]
    return first.shape[1] if len(first.shape) > 1 else None


def _unrolled_config(layer, config):
    if isinstance(layer, keras.layers.Bidirectional):
        for key in ("layer", "backward_layer"):
            if isinstance(config.get(key), dict):
                inner = dict(config[key])
                inner["config"] = {**inner["config"], "unroll": True}
                config[key] = inner
        return config
    return {**config, "unroll": True}


def unrolled_copy(model):
    """`model` itself when none of its recurrent layers runs a loop, else a copy of it (the
    same weights) whose recurrent layers are unrolled (module docstring).

    Raises:
        ValueError: naming the recurrent layers whose sequence length is not known.
    """
    rolled = [layer for layer in layers_of(model) if _rolled(layer)]
    if not rolled:
        return model
    unknown = [layer.name for layer in rolled if _steps(layer) is None]
    if unknown:
        raise ValueError(
            f"TFLite cannot run the recurrent layer(s) {unknown} of '{model.name}' as they "
            "are (a loop over time steps reading its weights), and they are unrolled for "
            "it only over a known sequence length: build the model on inputs of a fixed "
            "length (keras.Input((steps, features))), or export it as a SavedModel."
        )

    def unrolled(layer):
        config = layer.get_config()
        if _rolled(layer):
            config = _unrolled_config(layer, config)
        return type(layer).from_config(config)

    return clone_with(model, unrolled)
