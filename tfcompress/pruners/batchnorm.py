"""Adaptive BatchNorm: re-estimate moving statistics after pruning."""

import keras
import numpy as np


def batch_norm_layers(model):
    """The BatchNormalization layers of `model` (nested models and wrappers included)."""
    out = []
    for layer in model.layers:
        inner = getattr(layer, "layer", None)
        if isinstance(layer, keras.layers.BatchNormalization):
            out.append(layer)
        elif isinstance(inner, keras.layers.BatchNormalization):
            out.append(inner)
        elif hasattr(layer, "layers"):
            out.extend(batch_norm_layers(layer))
    return out


def recalibrate_bn(model, data, steps=None):
    """Replaces every BatchNorm's moving mean and variance with the average of its batch
    statistics over `steps` batches of `data` (the model runs in training mode; no weight
    is trained).

    After pruning, or a short fine-tune with Keras's default momentum (0.99), the moving
    statistics lag behind the weights; a few hundred images fix that.

    Args:
        model: any Keras model (changed in place: only moving statistics).
        data: an iterable of input batches, or of `(x, ...)` tuples.
        steps: number of batches to use (default: all of `data`).

    Returns:
        The number of batches used.
    """
    bns = batch_norm_layers(model)
    if not bns:
        raise ValueError(f"Model '{model.name}' has no BatchNormalization layer to recalibrate.")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(f"steps must be a positive integer or None. Received: steps={steps!r}")
    momenta = [bn.momentum for bn in bns]
    saved = [(np.asarray(bn.moving_mean), np.asarray(bn.moving_variance)) for bn in bns]
    used = 0
    try:
        for batch in data:
            if steps is not None and used >= steps:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            used += 1
            for bn in bns:  # moving = running average of the batch statistics seen so far
                bn.momentum = 1.0 - 1.0 / used
            model(x, training=True)
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
    if used == 0:
        for bn, (mean, var) in zip(bns, saved):
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(var)
        raise ValueError("recalibrate_bn got no batches from data.")
    return used
