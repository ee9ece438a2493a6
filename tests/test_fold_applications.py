"""BatchNorm folding on unmodified keras.applications models (built with `input_shape=`,
whose input layer and input tensor have different names) and on models with unnamed
inputs. All 14 families are folded with a parity check by benchmarks/prune_time.py
(`--fold`); here the three the bug was reported on, to keep the test cheap."""

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input
from tests.test_applications import FAMILIES
from tests.topologies import randomize_bn


def _bns(model):
    return [m for m in model.layers if isinstance(m, layers.BatchNormalization)]


@pytest.mark.parametrize("family", ["MobileNetV2", "ResNet50", "VGG16"])
def test_fold_application_parity(family):
    builder, size = FAMILIES[family]
    model = randomize_bn(
        builder(weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None)
    )
    x = sample_input(model)
    foldable = tfc.export.fold.foldable_pairs(model)
    folded = tfc.export.fold_batchnorm(model)
    assert max_rel_error(outputs(model, x), outputs(folded, x)) <= 1e-5
    assert len(_bns(folded)) == len(_bns(model)) - len(foldable)
    assert bool(foldable) == bool(_bns(model))  # VGG16 has none; the others fold some
    assert [m.name for m in folded.layers] == [m.name for m in model.layers]


def test_saved_model_fold_unnamed_inputs(tmp_path):
    """Two unnamed inputs and a keras.ops add (an operation, not a layer, in the graph)."""
    a, b = keras.Input((6, 6, 3)), keras.Input((6, 6, 4))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(a)
    x = layers.BatchNormalization()(x) + b
    y = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    model = randomize_bn(keras.Model([a, b], y))
    rng = np.random.default_rng(0)
    xs = [rng.uniform(size=(2, 6, 6, c)).astype("float32") for c in (3, 4)]
    folded = tfc.export.fold_batchnorm(model)
    names = [t._keras_history.operation.name for t in model.inputs]  # the copy keeps them
    assert [t._keras_history.operation.name for t in folded.inputs] == names
    assert not _bns(folded)
    path = tfc.export.saved_model(model, str(tmp_path / "sm"), fold_batchnorm=True)
    served = tfc.export.serve(path, dict(zip(names, xs)))
    np.testing.assert_allclose(served[0], model(xs, training=False), rtol=1e-5, atol=1e-5)
