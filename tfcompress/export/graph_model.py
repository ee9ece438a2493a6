"""What an exporter takes: a Keras model whose graph of layers is known (functional, or a
built Sequential). One check for `saved_model`, `tflite` and `fold_batchnorm`."""

import keras
from keras.src.models.functional import Functional


def functional(model, who):
    """`model`, or for a built Sequential the functional model of its inputs and outputs
    (the same layers: a Sequential has no `output_names`). Refused, naming `who` (the
    exporter), unless a Keras model, functional or a built Sequential: a subclassed model
    has no inputs to trace a signature on (it failed with AttributeError: 'inputs')."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{who} takes a Keras model. Received: model={model!r}")
    if isinstance(model, keras.Sequential):
        if not model.built or getattr(model, "_functional", None) is None:
            raise ValueError(
                f"{who} needs a built model: Sequential model '{model.name}' has no inputs "
                "yet. Start it with `keras.Input(shape)` or call `model.build(input_shape)`."
            )
        one = lambda ts: ts[0] if len(ts) == 1 else ts  # noqa: E731 - a tensor, not [tensor]
        return keras.Model(one(model.inputs), one(model.outputs), name=model.name)
    if not isinstance(model, Functional):
        raise ValueError(
            f"{who} needs a functional or Sequential model; '{model.name}' "
            f"({type(model).__name__}) is a subclassed model, whose inputs and graph are "
            "Python code. Export `keras.Model(inputs, model(inputs))` built on a "
            "`keras.Input` of its input shape."
        )
    return model
