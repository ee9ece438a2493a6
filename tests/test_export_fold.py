"""BatchNorm folding at export: same inference outputs, BatchNorms gone where foldable."""

import re

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tests.topologies import randomize_bn


def _x(shape=(4, 10, 10, 3)):
    return np.random.default_rng(0).uniform(size=shape).astype("float32")


def _bns(model):
    return [m for m in model.layers if isinstance(m, layers.BatchNormalization)]


def test_fold_conv_dense_and_skips_parity():
    inp = keras.Input((10, 10, 3), name="image")
    a = layers.Conv2D(6, 3, padding="same", use_bias=False, name="c0")(inp)
    a = layers.BatchNormalization(name="bn0")(a)
    a = layers.ReLU()(a)
    b = layers.Conv2D(6, 3, padding="same", name="c1")(a)  # with its own bias
    b = layers.BatchNormalization(name="bn1", center=False)(b)
    c = layers.Add()([a, b])  # bn2 follows an Add: not foldable
    c = layers.BatchNormalization(name="bn2")(c)
    d = layers.Conv2D(4, 1, name="c2")(c)  # c2 feeds two layers: not foldable
    e = layers.BatchNormalization(name="bn3", scale=False)(d)
    f = layers.Concatenate()([d, e])
    g = layers.GlobalAveragePooling2D()(f)
    g = layers.Dense(5, name="d0")(g)
    g = layers.BatchNormalization(name="bn4")(g)
    model = randomize_bn(keras.Model(inp, g))
    before = [w.copy() for w in model.get_weights()]
    assert sorted(tfc.export.fold.foldable_pairs(model)) == ["bn0", "bn1", "bn4"]
    folded = tfc.export.fold_batchnorm(model)
    assert sorted(b.name for b in _bns(folded)) == ["bn2", "bn3"]
    np.testing.assert_allclose(folded(_x()), model(_x(), training=False), rtol=1e-5, atol=1e-5)
    for w0, w1 in zip(before, model.get_weights()):  # the caller's model is unchanged
        np.testing.assert_array_equal(w0, w1)


def test_fold_sequential_conv1d_parity():
    model = randomize_bn(keras.Sequential([
        keras.Input((12, 3)),
        layers.Conv1D(4, 3, use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Flatten(),
        layers.Dense(3),
    ]))
    folded = tfc.export.fold_batchnorm(model)
    assert not _bns(folded)
    x = _x((2, 12, 3))
    np.testing.assert_allclose(folded(x), model(x, training=False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "conv",
    [
        lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False),
        lambda: layers.DepthwiseConv2D(3, padding="same"),  # with its own bias
        lambda: layers.SeparableConv2D(5, 3, depth_multiplier=2, padding="same"),
        lambda: layers.Conv2DTranspose(5, 3, strides=2, use_bias=False),
    ],
    ids=["depthwise_x2", "depthwise_bias", "separable", "transposed"],
)
def test_fold_depthwise_separable_and_transposed_parity(conv):
    inp = keras.Input((10, 10, 3), name="image")
    x = layers.BatchNormalization()(conv()(inp))
    model = randomize_bn(keras.Model(inp, layers.ReLU()(x)))
    assert len(tfc.export.fold.foldable_pairs(model)) == 1
    folded = tfc.export.fold_batchnorm(model)
    assert not _bns(folded)
    np.testing.assert_allclose(folded(_x()), model(_x(), training=False), rtol=1e-5, atol=1e-5)


def test_fold_depthwise_1d_and_separable_1d_parity():
    model = randomize_bn(keras.Sequential([
        keras.Input((12, 3)),
        layers.DepthwiseConv1D(3, depth_multiplier=3, use_bias=False),
        layers.BatchNormalization(),
        layers.SeparableConv1D(4, 3),
        layers.BatchNormalization(),
    ]))
    folded = tfc.export.fold_batchnorm(model)
    assert not _bns(folded)
    x = _x((2, 12, 3))
    np.testing.assert_allclose(folded(x), model(x, training=False), rtol=1e-5, atol=1e-5)


def test_saved_model_fold_option_parity(tmp_path):
    inp = keras.Input((10, 10, 3), name="image")
    x = layers.Conv2D(8, 3, use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
    model = randomize_bn(keras.Model(inp, layers.Dense(4)(x)))
    path = tfc.export.saved_model(model, str(tmp_path / "sm"), fold_batchnorm=True)
    out = tfc.export.serve(path, _x())
    np.testing.assert_allclose(out[0], model(_x(), training=False), rtol=1e-5, atol=1e-5)


def test_fold_rejects_non_models():
    with pytest.raises(TypeError, match="Received"):
        tfc.export.fold_batchnorm(layers.Dense(3))


def test_a_bn_after_an_activation_or_on_a_model_output_is_left_alone():
    """BN(relu(conv(x))) is not a conv of its own (folding it was 5.3 off), and a conv
    output that is also a model output must keep its values (it got the BN folded in)."""
    inp = keras.Input((10, 10, 3), name="image")
    activated = layers.Conv2D(4, 3, activation="relu", name="c_relu")(inp)
    a = layers.BatchNormalization(name="bn_after_relu")(activated)
    d = layers.Dense(3, activation="tanh", name="d_tanh")(layers.GlobalAveragePooling2D()(a))
    b = layers.BatchNormalization(name="bn_after_tanh")(d)
    raw = layers.Conv2D(4, 1, name="c_out")(a)
    c = layers.BatchNormalization(name="bn_of_output")(raw)
    model = randomize_bn(keras.Model(inp, [b, c, raw]))
    for bn in _bns(model):
        bn.gamma.assign(-2 * np.ones(bn.gamma.shape))
    assert tfc.export.fold.foldable_pairs(model) == {}
    folded = tfc.export.fold_batchnorm(model)
    for got, want in zip(folded(_x()), model(_x(), training=False), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Layer .* does not have a `quantize` method")  # Keras's
@pytest.mark.parametrize("edit", ["int8", "lora"])
def test_a_quantized_or_lora_dense_is_left_unfolded(edit):
    """model.quantize("int8") or enable_lora: the Dense's kernel is not the float kernel
    the fold scales ("weight shape (6,) is not compatible with (8, 6)")."""
    inp = keras.Input((8,))
    h = layers.BatchNormalization(name="bn")(layers.Dense(6, name="fc")(inp))
    model = randomize_bn(keras.Model(inp, layers.Dense(3, name="head")(h)))
    if edit == "int8":
        model.quantize("int8")
    else:
        model.get_layer("fc").enable_lora(2)
    assert tfc.export.fold.foldable_pairs(model) == {}
    x = _x((4, 8))
    folded = tfc.export.fold_batchnorm(model)
    np.testing.assert_allclose(folded(x), model(x, training=False), rtol=1e-5, atol=1e-5)


def test_an_unbuilt_sequential_is_refused_by_name():
    model = keras.Sequential([layers.Dense(3)], name="seq")  # was: 'NoneType' object ...
    with pytest.raises(ValueError, match=re.escape(
            "fold_batchnorm needs a built model: Sequential model 'seq' has no inputs yet.")):
        tfc.export.fold_batchnorm(model)
