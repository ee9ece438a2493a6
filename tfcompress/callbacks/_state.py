"""Helpers the pruning callbacks share: the training step and the model's mask layers."""

import keras

from tfcompress.graph.trace import layers_of  # noqa: F401 (re-exported for callbacks)


def current_step(model):
    """The optimizer's step counter: restored with checkpoints, so schedules resume."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(
            f"Model '{model.name}' is not compiled: pruning callbacks read the optimizer's "
            "step counter. Compile the wrapped model before fit."
        )
    return int(keras.ops.convert_to_numpy(optimizer.iterations))

