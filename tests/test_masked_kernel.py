"""Kernel-side masks (`MaskedKernel`): the same model, Taylor sums and soft top-k
gradients as masks on activations, for a kernel-sized cost."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tfcompress as tfc
from tfcompress.layers import ChannelMask, MaskedKernel, SoftTopKMask, TaylorMask


def _net():
    """Add (two consumers of one tensor), Concatenate and Flatten -> Dense (site maps)."""
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", name="c1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU()(x)
    a = layers.Conv2D(6, 3, padding="same", name="c2")(x)
    b = layers.Conv2D(6, 1, name="c3")(x)
    x = layers.Add()([a, b])
    x = layers.Concatenate()([x, layers.Conv2D(4, 1, name="c4")(x)])
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(3, name="logits")(x))


def _batch():
    rng = np.random.default_rng(0)
    return rng.uniform(size=(4, 8, 8, 3)).astype("float32"), np.array([0, 1, 2, 1])


def _masks(model, cls):
    return sorted((m for m in model.layers if isinstance(m, cls)), key=lambda m: m.name)


def test_config_roundtrip():
    wrapper = MaskedKernel(layers.Conv2D(4, 3), weight_name="kernel", axis=2, name="mk")
    config = wrapper.get_config()
    clone = MaskedKernel.from_config(config)
    assert clone.get_config() == config
    assert (clone.weight_name, clone.axis) == ("kernel", 2)


def test_wrap_scales_consumer_kernels_and_keeps_outputs():
    model = _net()
    masked = tfc.wrap(model, "l1_filter")
    wrappers = [layer for layer in masked.layers if isinstance(layer, MaskedKernel)]
    assert sorted(w.name for w in wrappers) == ["c2", "c3", "c4", "logits"]
    assert all(len(w.masks) >= 1 for w in wrappers)
    x, _ = _batch()
    np.testing.assert_array_equal(masked(x), model(x))


def test_mask_kernels_is_refused_for_a_method_that_masks_weights():
    with pytest.raises(ValueError, match=re.escape(
            "mask_kernels chooses where channel masks scale (kernels or activations); "
            "method 'magnitude' masks weights, element by element. Leave it out. "
            "Received: mask_kernels=False")):  # fmt: skip
        tfc.wrap(_net(), "magnitude", mask_kernels=False)


def test_masks_on_kernels_equal_masks_on_activations():
    model = _net()
    x, y = _batch()
    kernel_side = tfc.wrap(model, "l1_filter")
    activation_side = tfc.wrap(model, "l1_filter", mask_kernels=False)
    assert not any(isinstance(layer, MaskedKernel) for layer in activation_side.layers)
    for masked in (kernel_side, activation_side):
        tfc.prune(masked, 0.5)
    np.testing.assert_allclose(kernel_side(x), activation_side(x), rtol=1e-5, atol=1e-6)
    # and the compact model of either is the same model
    np.testing.assert_allclose(
        tfc.strip(kernel_side)(x), tfc.strip(activation_side)(x), rtol=1e-5, atol=1e-6)


def _taylor_state(mask_kernels):
    keras.utils.set_random_seed(2)
    masked = tfc.wrap(_net(), "taylor", mask_kernels=mask_kernels)
    tfc.prune(masked, 0.25, criterion="l1_filter")  # masks set before any training
    x, y = _batch()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, masked(x, training=True))
    tape.gradient(loss, masked.trainable_variables)
    return [(np.asarray(m.taylor_sum), float(m.taylor_count))
            for m in _masks(masked, TaylorMask)]


def test_taylor_sums_from_kernel_gradients_equal_activation_sums():
    kernel_side, activation_side = _taylor_state(True), _taylor_state(False)
    assert len(kernel_side) == 3
    for (k_sum, k_count), (a_sum, a_count) in zip(kernel_side, activation_side):
        assert k_count == a_count > 0
        assert np.abs(a_sum).max() > 0
        np.testing.assert_allclose(k_sum, a_sum, rtol=1e-4, atol=1e-7)


def _logit_gradients(mask_kernels):
    keras.utils.set_random_seed(3)
    masked = tfc.wrap(_net(), "soft_topk", mask_kernels=mask_kernels)
    for mask in _masks(masked, SoftTopKMask):
        mask.keep.assign(float(mask.units // 2))
        mask.temperature.assign(0.5)
    x, _ = _batch()
    logits = [m.logits for m in _masks(masked, SoftTopKMask)]
    with tf.GradientTape() as tape:
        out = keras.ops.sum(masked(x, training=True) ** 2)
    return [np.asarray(g) for g in tape.gradient(out, logits)]


def test_soft_topk_logit_gradients_equal_on_kernels_and_activations():
    for k, a in zip(_logit_gradients(True), _logit_gradients(False)):
        assert np.abs(a).max() > 0
        np.testing.assert_allclose(k, a, rtol=1e-4, atol=1e-7)


def test_shared_consumer_keeps_masks_on_activations():
    inp = keras.Input((6,))
    h = layers.Dense(4, name="d1")(inp)
    shared = layers.Dense(4, name="shared")
    out = layers.Add()([shared(h), shared(layers.Dense(4, name="d2")(inp))])
    masked = tfc.wrap(keras.Model(inp, layers.Dense(2, name="head")(out)), "l1_filter")
    assert isinstance(masked.get_layer("shared"), layers.Dense)
    assert isinstance(masked.get_layer("head"), MaskedKernel)
    calls = [n.arguments.kwargs for m in _masks(masked, ChannelMask) for n in m._inbound_nodes]
    assert {bool(kw.get("folded")) for kw in calls} == {True, False}


def test_loaded_model_links_its_masks_again(tmp_path):
    masked = tfc.wrap(_net(), "l1_filter")
    path = tfc.export.keras_file(masked, str(tmp_path / "masked.keras"))
    loaded = keras.models.load_model(path)
    x, _ = _batch()
    for m in (masked, loaded):
        m.get_layer("c1_mask").mask.assign([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    after = np.asarray(loaded(x))
    assert np.abs(after - np.asarray(_net()(x))).max() > 0
    np.testing.assert_allclose(after, masked(x), rtol=1e-6, atol=1e-6)


def test_missing_weight_is_named():
    wrapper = MaskedKernel(layers.Dense(3, name="dense_x"), weight_name="gamma")
    with pytest.raises(ValueError, match=r"'dense_x' has no weight 'gamma'\. Its weights are "
                       r"\['kernel', 'bias'\]"):
        wrapper(np.ones((1, 4), np.float32))
