"""Mask, gate, weight-mask and SpaceToDepth layers: config round trips, math, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tfcompress as tfc
from tfcompress.layers import ChannelGate, ChannelMask, SpaceToDepth, WeightMask


def _roundtrip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    return clone


@pytest.mark.parametrize("layer", [
    ChannelMask(4, name="m"),
    ChannelMask(3, channel_maps=[[0, -1, 2, 1]], name="mm"),
    ChannelGate(5, name="g"),
    SpaceToDepth(2, name="s2d"),
])
@pytest.mark.slow
def test_config_roundtrip(layer):
    _roundtrip(layer)


def test_weight_mask_config_roundtrip():
    wm = WeightMask(layers.Dense(3), weight_names=("kernel", "bias"), name="wm")
    clone = _roundtrip(wm)
    assert clone.weight_names == ("kernel", "bias")


def test_channel_mask_multiplies_by_site_map():
    mask = ChannelMask(2, channel_maps=[[1, -1, 0]])
    x = np.ones((1, 3), np.float32)
    mask.build(x.shape)
    mask.mask.assign([0.0, 1.0])
    np.testing.assert_array_equal(mask(x, site=0), [[1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(mask(np.ones((1, 2), np.float32)), [[0.0, 1.0]])


def test_channel_gate_is_trainable_and_starts_at_one():
    gate = ChannelGate(3)
    y = gate(np.full((2, 3), 2.0, np.float32))
    np.testing.assert_array_equal(y, np.full((2, 3), 2.0))
    assert [v.name for v in gate.trainable_weights] == ["gate"]
    assert [v.name for v in gate.non_trainable_weights] == ["mask"]


def test_space_to_depth_matches_tf():
    x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
    np.testing.assert_array_equal(SpaceToDepth(2)(x), tf.nn.space_to_depth(x, 2))


def test_weight_mask_keeps_masked_weights_zero_through_training():
    inp = keras.Input((6,))
    model = keras.Model(inp, layers.Dense(1)(layers.Dense(8, activation="relu")(inp)))
    masked = tfc.wrap(model, method="magnitude")
    tfc.prune(masked, ratio=0.5)
    wm = [layer for layer in masked.layers if isinstance(layer, WeightMask)][0]
    mask = np.asarray(wm.masks["kernel"])
    assert mask.mean() == pytest.approx(0.5)
    masked.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    rng = np.random.default_rng(0)
    masked.fit(rng.normal(size=(64, 6)), rng.normal(size=(64, 1)), epochs=2, verbose=0)
    kernel = np.asarray(wm.layer.kernel)
    assert np.all(kernel[mask == 0] == 0.0)
    assert np.any(kernel[mask == 1] != 0.0)
    compact = tfc.strip(masked)
    assert not any(isinstance(layer, WeightMask) for layer in compact.layers)
    x = rng.normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(compact(x), masked(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["l1_filter", "taylor", "soft_topk", "magnitude"])
def test_wrapped_model_saves_loads_and_exports(method, tmp_path):
    # taylor: its custom gradient captures score variables the forward pass does not read
    # (the SavedModel saver refused them with a KeyError)
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", activation="relu")(inp)
    x = layers.Concatenate()([x, layers.Conv2D(4, 1)(x)])
    x = layers.Flatten()(x)
    model = keras.Model(inp, layers.Dense(3)(x))
    masked = tfc.wrap(model, method=method)
    data = np.random.default_rng(1).uniform(size=(2, 8, 8, 3)).astype("float32")
    if method == "taylor":
        masked.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        tfc.prune(masked, ratio=0.5, data=[(data, np.array([0, 1]))])
    else:  # soft_topk: its own (untrained) logits on purpose, as prune needs it said
        tfc.prune(masked, ratio=0.5, criterion="soft_topk" if method == "soft_topk" else None)
    expected = np.asarray(masked(data))

    path = tfc.export.keras_file(masked, str(tmp_path / "masked.keras"))
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(data), expected, rtol=1e-6, atol=1e-6)
    sm = tfc.export.saved_model(masked, str(tmp_path / "sm"))
    np.testing.assert_allclose(tfc.export.serve(sm, data)[0], expected, rtol=1e-5, atol=1e-6)
    check = tfc.export.tflite(masked, str(tmp_path / "m.tflite"), check_data=data)
    assert check.max_rel_error < 1e-5


@pytest.mark.parametrize("method", ["l1_filter", "magnitude"])
def test_a_frozen_wrapped_layer_stays_masked_saves_and_strips(method, tmp_path):
    """`layer.trainable = False` after wrap (transfer learning): the masks still apply
    (MaskedKernel raised IndexError, as it looked for the kernel among the trainable
    variables), the model saves and loads, and strip gives the masked model's outputs."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 2))
    x = layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
    x = layers.Conv2D(4, 3, activation="relu", name="c2")(x)
    model = keras.Model(inp, layers.Dense(3, name="out")(layers.GlobalAveragePooling2D()(x)))
    masked = tfc.wrap(model, method=method)
    tfc.prune(masked, ratio=0.5)
    data = np.random.default_rng(0).uniform(size=(2, 8, 8, 2)).astype("float32")
    expected = np.asarray(masked(data))
    frozen = [layer for layer in masked.layers if layer.name.startswith("c2")]
    for layer in frozen:
        layer.trainable = False
    np.testing.assert_allclose(masked(data), expected, rtol=1e-6, atol=1e-7)
    masked.trainable = False
    np.testing.assert_allclose(masked(data), expected, rtol=1e-6, atol=1e-7)
    path = str(tmp_path / "frozen.keras")
    masked.save(path)
    np.testing.assert_allclose(keras.models.load_model(path)(data), expected, rtol=1e-6,
                               atol=1e-7)
    np.testing.assert_allclose(tfc.strip(masked)(data), expected, rtol=1e-5, atol=1e-6)


def test_attention_masks_config_roundtrip():
    """The heads' `ChannelMask(internal_axis=)` and the `MaskedAttention` wrapper (its
    MultiHeadAttention and the weights each internal axis scales) round-trip `get_config`."""
    from tfcompress.layers.masked_attention import MaskedAttention

    mask = _roundtrip(ChannelMask(4, internal_axis="heads", name="heads"))
    assert mask.internal_axis == "heads"
    axes = {"heads": [["output_dense/kernel", 0]]}
    wrapper = MaskedAttention(layers.MultiHeadAttention(4, 8, name="mha"), axes, name="wmha")
    clone = _roundtrip(wrapper)
    assert clone.axes == axes
    assert clone.layer.get_config() == wrapper.layer.get_config()


def test_channel_mask_internal_axis_must_be_a_name():
    with pytest.raises(ValueError, match=r"internal_axis must be the name of an axis.*"
                       r"Received: internal_axis=3"):
        ChannelMask(4, internal_axis=3)
    with pytest.raises(ValueError, match=r"without channel_maps"):
        ChannelMask(3, channel_maps=[[0, 1, 2]], internal_axis="heads")
