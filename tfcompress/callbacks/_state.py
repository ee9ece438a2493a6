"""Helpers the pruning callbacks share: the training step and the model's mask layers."""

import keras


def current_step(model):
    """The optimizer's step counter: restored with checkpoints, so schedules resume."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            f"Model '{model.name}' is not compiled: pruning callbacks read the optimizer's "
            "step counter. Compile the wrapped model before fit."
        )
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def layers_of(model, cls):
    """Every layer of class `cls` in `model`, nested models included."""
    out = []
    for layer in model.layers:
        if isinstance(layer, cls):
            out.append(layer)
        elif hasattr(layer, "layers"):
            out.extend(layers_of(layer, cls))
    return out
