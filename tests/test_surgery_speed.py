"""The shortcuts that make wrap / strip fast change nothing a user sees: the copies'
weights are the originals' (not the zeros they are created as), their configs keep the
original initializers, and a wrapper's own weights keep theirs. Timings are in
benchmarks/prune_time.py, not here."""

import keras
import numpy as np
from keras import layers

import tfcompress as tfc
from tfcompress.graph.rules import unwrap


def _model():
    inp = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(8, 3, kernel_initializer="he_normal", bias_initializer="ones")(inp)
    x = layers.BatchNormalization(gamma_initializer="random_uniform")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(6, 3, name="conv_b")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(4, kernel_initializer="orthogonal")(x))


def _by_name(model):
    return {unwrap(layer).name: layer for layer in model.layers}


def test_copies_keep_weights_and_initializer_configs():
    model = _model()
    for method in ("l1_filter", "magnitude"):
        copies = _by_name(tfc.wrap(model, method))
        for layer in model.layers[1:]:
            copy = unwrap(copies[layer.name])
            assert copy.get_config() == layer.get_config(), layer.name
            for a, b in zip(layer.get_weights(), copy.get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)
    masked = tfc.wrap(model, "magnitude")
    for layer in masked.layers:
        if isinstance(layer, tfc.layers.WeightMask):  # the wrapper's own masks: ones
            assert all(np.all(np.asarray(m) == 1) for m in layer.masks.values())
    masked = tfc.wrap(model)
    compact = tfc.strip(masked)  # nothing pruned: the same layers and weights again
    for layer in model.layers[1:]:
        copy = compact.get_layer(layer.name)
        assert copy.get_config() == layer.get_config(), layer.name
        for a, b in zip(layer.get_weights(), copy.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
