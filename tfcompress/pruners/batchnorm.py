"""Adaptive BatchNorm: re-estimate moving statistics after pruning."""

import itertools

import keras
import numpy as np

from tfcompress.batches import input_batches
from tfcompress.numbers import check_count


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
    statistics lag behind the weights; a few hundred images fix that. Frozen BatchNorms
    (`trainable=False`, their own or a containing model's: Keras then runs them in
    inference mode) are recalibrated too: each is made trainable for the passes and
    restored afterwards.

    Args:
        model: any Keras model (changed in place: only moving statistics).
        data: an iterable of input batches, or of `(x, ...)` tuples; or, as `fit` takes
            them, an array `x` or a tuple `(x, y)` of arrays, cut into batches of
            `tfcompress.batches.BATCH_SIZE` (so a tuple of two or three input batches of
            one size reads as `(x, y)`: give several batches as a list).
        steps: number of batches to use (default: all of `data`).

    Returns:
        The number of batches used.
    """
    bns = batch_norm_layers(model)
    if not bns:
        raise ValueError(f"Model '{model.name}' has no BatchNormalization layer to recalibrate.")
    check_count("steps", steps, none=True)  # as taylor's measure checks its steps
    who = "recalibrate_bn's data"
    inputs = input_batches(model, data, who)  # refuses data of another form now
    momenta = [bn.momentum for bn in bns]
    frozen = [(bn, [(v, v.trainable) for v in bn.weights]) for bn in bns if not bn.trainable]
    saved = [(np.asarray(bn.moving_mean), np.asarray(bn.moving_variance)) for bn in bns]
    used = 0
    try:
        for bn, _ in frozen:  # Keras runs a frozen BatchNorm in inference mode
            bn.trainable = True
        for x in itertools.islice(inputs, steps):  # steps batches read, not one more
            used += 1
            for bn in bns:  # moving = running average of the batch statistics seen so far
                bn.momentum = 1.0 - 1.0 / used
            model(x, training=True)
    except BaseException:
        _restore(bns, saved)
        raise
    finally:
        for bn, m in zip(bns, momenta):
            bn.momentum = m
        for bn, flags in frozen:
            bn.trainable = False
            for v, flag in flags:
                v.trainable = flag
    if used == 0:
        _restore(bns, saved)
        raise ValueError("recalibrate_bn got no batches from data.")
    return used


def _restore(bns, saved):
    for bn, (mean, var) in zip(bns, saved):
        bn.moving_mean.assign(mean)
        bn.moving_variance.assign(var)
