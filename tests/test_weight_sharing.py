"""Stage 2 of Deep Compression: k-means codebooks and the SharedWeights layer (issue 15)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tfcompress as tfc
from tfcompress import models
from tfcompress.layers import ChannelMask
from tfcompress.sharing import (
    SharedWeights,
    cluster_kernel,
    kmeans,
    linear_init,
    share_weights,
    strip_shared,
)


def _bits_of(array):
    return np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)


def _pruned_mlp(seed=0, density=0.3):
    """Dense 6 -> 8 -> 3 with a fraction `density` of each kernel kept (by magnitude)."""
    inp = keras.Input((6,), name="x")
    hidden = layers.Dense(8, activation="relu", name="d1")(inp)
    model = keras.Model(inp, layers.Dense(3, name="d2")(hidden), name="mlp")
    rng = np.random.default_rng(seed)
    for layer in model.layers[1:]:
        kernel = rng.normal(size=layer.kernel.shape).astype("float32")
        cut = np.quantile(np.abs(kernel), 1 - density)
        kernel[np.abs(kernel) < cut] = 0.0
        layer.set_weights([kernel, rng.normal(size=layer.bias.shape).astype("float32")])
    return model


def _shared(model):
    return [layer for layer in model.layers if isinstance(layer, SharedWeights)]


# --- k-means ------------------------------------------------------------------------------


def test_linear_init_spans_min_to_max_of_the_surviving_weights():
    values = np.array([-0.7, 0.1, 0.25, 1.3])
    np.testing.assert_allclose(linear_init(values, 5), [-0.7, -0.2, 0.3, 0.8, 1.3])
    centroids, _ = kmeans(values, 5, iterations=0)
    np.testing.assert_allclose(centroids, [-0.7, -0.2, 0.3, 0.8, 1.3])
    kernel = np.array([[0.0, -0.7], [0.1, 0.0], [0.25, 1.3]], dtype=np.float32)
    codebook, indices = cluster_kernel(kernel, kernel != 0, bits=2, iterations=0)
    # zeros are pruned: the span is that of the four survivors, not of the kernel
    np.testing.assert_allclose(codebook, np.linspace(-0.7, 1.3, 4), rtol=1e-6)
    assert indices.dtype == np.int32 and indices.shape == kernel.shape
    np.testing.assert_array_equal(indices[kernel != 0], [0, 1, 1, 3])  # nearest centroid


def test_kmeans_converges_to_the_cluster_means():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-2, 0.1, 50), rng.normal(0.5, 0.1, 30), [3.0]])
    centroids, labels = kmeans(values, 3)
    for j in range(3):  # a Lloyd fixed point: each centroid is its cluster's mean
        np.testing.assert_allclose(centroids[j], values[labels == j].mean())
    assert sorted(np.bincount(labels)) == [1, 30, 50]


def test_kmeans_of_no_survivors_or_fewer_survivors_than_clusters():
    codebook, indices = cluster_kernel(np.zeros((2, 3)), np.zeros((2, 3)), bits=3)
    np.testing.assert_array_equal(codebook, np.zeros(8))
    np.testing.assert_array_equal(indices, np.zeros((2, 3)))
    kernel = np.array([[0.5, 0.0, -0.25]], dtype=np.float32)
    codebook, indices = cluster_kernel(kernel, kernel != 0, bits=4)
    np.testing.assert_array_equal(codebook[indices][kernel != 0], kernel[kernel != 0])


# --- the layer ----------------------------------------------------------------------------


def test_centroid_gradient_is_the_per_cluster_sum_of_weight_gradients():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(4, 3)).astype("float32")
    mask = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype="float32")
    layer = SharedWeights(layers.Dense(3), bits=2)
    layer.build((None, 4))
    layer.cluster(kernel, mask)
    x = rng.normal(size=(5, 4)).astype("float32")
    r = rng.normal(size=(5, 3)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x) * r)
    grad = tape.gradient(loss, layer.codebook)
    grad = np.asarray(tf.convert_to_tensor(grad))
    # by hand: dL/dW = x^T r; a centroid collects the gradients of its surviving weights
    weight_grad = x.T @ r
    indices = np.asarray(layer.indices)
    expected = np.zeros(4)
    for i, j in zip(*np.nonzero(mask)):
        expected[indices[i, j]] += weight_grad[i, j]
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)
    assert len(set(indices[mask == 1].tolist())) > 1  # several clusters took part


def test_pruned_weights_stay_zero_while_centroids_train():
    model = _pruned_mlp()
    shared = share_weights(model, bits=2)
    before = [np.asarray(layer.codebook).copy() for layer in _shared(shared)]
    shared.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9), loss="mse")
    rng = np.random.default_rng(0)
    shared.fit(rng.normal(size=(32, 6)), rng.normal(size=(32, 3)), batch_size=8, verbose=0)
    plain = strip_shared(shared)
    for old, layer, new in zip(model.layers[1:], _shared(shared), plain.layers[1:]):
        pruned = np.asarray(old.kernel) == 0
        assert np.asarray(layer.shared_kernel())[pruned].tolist() == [0.0] * pruned.sum()
        assert _bits_of(np.asarray(new.kernel))[pruned].tolist() == [0] * pruned.sum()
        assert np.all(np.asarray(new.kernel)[~pruned] != 0)
        assert len(np.unique(np.asarray(new.kernel)[~pruned])) <= 4
    assert not np.array_equal(before[0], np.asarray(_shared(shared)[0].codebook))
    trainable = [v.path for v in shared.trainable_variables]
    assert sorted(trainable) == ["d1_shared/codebook", "d1_shared/d1/bias"] + [
        "d2_shared/codebook",
        "d2_shared/d2/bias",
    ]


def test_strip_is_bit_exact_and_computes_what_the_shared_model_computes():
    shared = share_weights(_pruned_mlp(), bits=3)
    plain = strip_shared(shared)
    assert [type(layer).__name__ for layer in plain.layers] == ["InputLayer", "Dense", "Dense"]
    assert [layer.name for layer in plain.layers] == ["x", "d1", "d2"]
    for layer, new in zip(_shared(shared), plain.layers[1:]):
        codebook, indices = np.asarray(layer.codebook), np.asarray(layer.indices)
        expected = np.where(np.asarray(layer.mask) != 0, codebook[indices], np.float32(0))
        np.testing.assert_array_equal(_bits_of(new.kernel), _bits_of(expected))
        np.testing.assert_array_equal(_bits_of(new.bias), _bits_of(layer.layer.bias))
    x = np.random.default_rng(2).normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(plain(x), shared(x), rtol=1e-6, atol=1e-6)


def test_get_config_round_trip_and_keras_save_load(tmp_path):
    shared = share_weights(_pruned_mlp(), bits={"d1": 3})
    wrapper = _shared(shared)[0]
    config = wrapper.get_config()
    assert config["bits"] == 3 and config["weight_name"] == "kernel"
    again = SharedWeights.from_config(config)
    assert again.get_config() == config
    assert _shared(shared)[1].bits == 5  # dense default
    x = np.random.default_rng(3).normal(size=(4, 6)).astype("float32")
    clone = keras.Model.from_config(shared.get_config())
    clone.set_weights(shared.get_weights())
    np.testing.assert_array_equal(clone(x), shared(x))
    path = tmp_path / "shared.keras"
    shared.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x), shared(x))
    for a, b in zip(_shared(loaded), _shared(shared)):
        for name in ("codebook", "indices", "mask"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not a.kernel.trainable  # the frozen inner kernel stays frozen after loading


def test_share_weights_takes_the_weight_mask_of_a_pruned_model():
    inp = keras.Input((6,))
    model = keras.Model(inp, layers.Dense(2)(layers.Dense(8, activation="relu")(inp)))
    masked = tfc.wrap(model, method="magnitude")
    tfc.prune(masked, ratio=0.75)
    shared = share_weights(masked, bits=2)
    masks = [np.asarray(layer.masks["kernel"]) for layer in masked.layers[1:]]
    for mask, layer in zip(masks, _shared(shared)):
        np.testing.assert_array_equal(np.asarray(layer.mask), mask)
        assert np.asarray(layer.mask).mean() == pytest.approx(0.25)
    x = np.random.default_rng(4).normal(size=(3, 6)).astype("float32")
    # 4 shared values per 4 kept weights of each output: close to the pruned model
    assert np.abs(np.asarray(shared(x)) - np.asarray(masked(x))).max() < 0.5


def test_unshareable_layers_stay_float():
    model = keras.Sequential(
        [keras.Input((6, 6, 2)), layers.SeparableConv2D(3, 3, name="sep"), layers.Flatten()]
    )
    shared = share_weights(model, bits=3)
    assert isinstance(shared.get_layer("sep"), layers.SeparableConv2D)
    with pytest.raises(ValueError, match=r"bits names layer 'sep', a SeparableConv2D: "):
        share_weights(model, bits={"sep": 3})


def test_default_bits_conv_8_dense_5_and_exclude():
    model = models.build("lenet5", 10, (16, 16, 1), width=0.1)
    shared = share_weights(model, exclude=("logits",))
    bits = {layer.layer.name: layer.bits for layer in _shared(shared)}
    assert bits == {"conv1": 8, "conv2": 8, "fc1": 5}
    assert isinstance(shared.get_layer("logits"), layers.Dense)
    dw = keras.Sequential([keras.Input((5, 5, 2)), layers.DepthwiseConv2D(3, name="dw")])
    wrapper = _shared(share_weights(dw, bits=2))[0]
    assert wrapper.weight_name == "kernel" and wrapper.size == 4
    assert wrapper.kernel.shape == (3, 3, 2, 1)


def _nested(seed=0):
    """A Sequential "inner" (conv ic1, ic2) and a functional "block" (conv b1) nested in
    a functional model with a Dense "d"."""
    keras.utils.set_random_seed(seed)
    inner = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="ic1"),
                              layers.Conv2D(4, 3, name="ic2")], name="inner")  # fmt: skip
    block_in = keras.Input((4, 4, 4))
    block = keras.Model(block_in, layers.Conv2D(2, 1, name="b1")(block_in), name="block")
    inp = keras.Input((8, 8, 3), name="x")
    out = layers.Dense(3, name="d")(layers.Flatten(name="flat")(block(inner(inp))))
    return keras.Model(inp, out, name="outer")


def test_share_weights_shares_the_kernels_of_nested_models(tmp_path):
    """Nested models are inlined and their kernels shared like the model's own; bits and
    exclude name their layers (exclude: a nested model's name stands for its layers), and
    the file round-trips bit for bit (before: their kernels stayed float, and bits naming
    one was refused listing the top-level layers only)."""
    from tfcompress import codec

    model = _nested()
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    shared = share_weights(model, bits={"ic1": 2, "b1": 3})
    bits = {layer.layer.name: layer.bits for layer in _shared(shared)}
    assert bits == {"ic1": 2, "ic2": 8, "b1": 3, "d": 5}
    assert len(np.unique(np.asarray(strip_shared(shared).get_layer("ic1").kernel))) <= 4
    np.testing.assert_allclose(strip_shared(shared)(x), shared(x), rtol=1e-6, atol=1e-6)
    path = tmp_path / "nested.tfdc"
    codec.encode(shared, path)
    decoded, plain = codec.decode(path), strip_shared(shared)
    assert [layer.name for layer in decoded.layers] == [layer.name for layer in plain.layers]
    for a, b in zip(decoded.weights, plain.weights):
        np.testing.assert_array_equal(_bits_of(a), _bits_of(b))
    np.testing.assert_array_equal(decoded(x), plain(x))
    unshared = share_weights(model, bits=4, exclude=["inner"])
    assert {layer.layer.name for layer in _shared(unshared)} == {"b1", "d"}
    np.testing.assert_array_equal(unshared.get_layer("ic2").kernel, model.get_layer("inner")
                                  .get_layer("ic2").kernel)  # fmt: skip
    assert [w.name for w in model.get_layer("inner").weights] == ["kernel", "bias"] * 2


@keras.saving.register_keras_serializable(package="test_weight_sharing")
class _Block(keras.layers.Layer):  # a composite layer: a Dense inside a class of its own
    def __init__(self, units=6, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = layers.Dense(units)

    def call(self, x):
        return keras.ops.relu(self.dense(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_kernels_inside_a_composite_layer_are_named_as_left_float(caplog):
    inputs = keras.Input((5,))
    model = keras.Model(inputs, layers.Dense(3, name="d")(_Block(name="block")(inputs)))
    with caplog.at_level("WARNING", logger="absl"):
        shared = share_weights(model, bits=2)
    assert {layer.layer.name for layer in _shared(shared)} == {"d"}
    assert any("['block'] hold conv or dense layers inside a layer class of their own, so "
               "their weights (block: 36 parameters) stay float" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="absl"):
        share_weights(model, bits=2, exclude=["block"])
    assert not any("stay float" in r.getMessage() for r in caplog.records)


# --- bad inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 17, -1])
def test_bits_out_of_range_is_refused(bits):
    with pytest.raises(ValueError, match=rf"bits must be in \[1, 16\]. Received: bits={bits}"):
        SharedWeights(layers.Dense(2), bits=bits)


@pytest.mark.parametrize("bits", ["5", 2.0, True])
def test_bits_of_another_type_is_refused(bits):
    with pytest.raises(ValueError, match=rf"bits must be an int .* Received: bits={bits!r}"):
        share_weights(_pruned_mlp(), bits=bits)


def test_bits_dict_values_and_names_are_checked():
    with pytest.raises(
        ValueError, match=r"bits\['d1'\] must be in \[1, 16\]. Received: bits\['d1'\]=0"
    ):
        share_weights(_pruned_mlp(), bits={"d1": 0})
    with pytest.raises(ValueError, match=r"bits names no layer of model 'mlp': 'fc9'"):
        share_weights(_pruned_mlp(), bits={"fc9": 4})
    model = keras.Sequential([keras.Input((4,)), layers.ReLU(name="act"), layers.Dense(2)])
    with pytest.raises(
        ValueError,
        match=r"bits names layer 'act', a ReLU: share_weights shares the kernels of \['Conv1D'",
    ):
        share_weights(model, bits={"act": 4})


def test_a_layer_without_a_kernel_is_refused():
    wrapper = SharedWeights(layers.ReLU(name="relu"), bits=4)
    with pytest.raises(ValueError, match=r"layer 'relu' has no weight 'kernel' to share"):
        wrapper.build((None, 3))
    wrapper = SharedWeights(layers.Dense(2, name="dense"), bits=4, weight_name="gamma")
    with pytest.raises(ValueError, match=r"layer 'dense' has no weight 'gamma' .*'bias'"):
        wrapper.build((None, 3))


@pytest.mark.parametrize(
    "iterations, message",
    [(-1, r"iterations must be >= 0. Received: iterations=-1"), (2.5, r"an int >= 0. .*=2.5")],
)
def test_bad_iterations_are_refused(iterations, message):
    with pytest.raises(ValueError, match=message):
        share_weights(_pruned_mlp(), iterations=iterations)


def test_bits_naming_an_excluded_layer_is_refused():
    """Before: the bits entry was dropped without a word."""
    with pytest.raises(ValueError) as info:
        share_weights(_pruned_mlp(), bits={"d1": 3, "d2": 4}, exclude=["d1"])
    assert str(info.value) == (
        "bits names layers that exclude leaves unshared: ['d1']. Received: "
        "bits={'d1': 3, 'd2': 4}, exclude=['d1']"
    )


def test_exclude_naming_no_layer_is_refused():
    with pytest.raises(ValueError, match=r"exclude names no layer of model 'mlp': \['fc7'\]"):
        share_weights(_pruned_mlp(), exclude=("fc7",))


def test_cluster_checks_the_kernel_shape_and_values():
    wrapper = SharedWeights(layers.Dense(2, name="dense"), bits=2)
    with pytest.raises(ValueError, match=r"must be built before clustering"):
        wrapper.cluster(np.ones((3, 2)))
    wrapper.build((None, 3))
    with pytest.raises(ValueError, match=r"must have shape \(3, 2\). Received: shape=\(2, 3\)"):
        wrapper.cluster(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        wrapper.cluster(np.full((3, 2), np.nan))


def test_models_with_channel_masks_or_shared_weights_are_refused():
    shared = share_weights(_pruned_mlp(), bits=2)
    with pytest.raises(ValueError, match=r"holds channel masks or shared weights \(\['d1_shared'"):
        share_weights(shared)
    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, layers.Conv2D(2, 1)(ChannelMask(3, name="cm")(inp)))
    with pytest.raises(ValueError, match=r"\(\['cm'\]\): strip it first"):
        share_weights(model)


@pytest.mark.slow  # ~5 s: three compiled fits
def test_training_resumes_from_a_keras_checkpoint(tmp_path, deterministic):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(32, 6)), rng.normal(size=(32, 3))

    def compiled():
        keras.utils.set_random_seed(0)
        model = share_weights(_pruned_mlp(), bits=2)
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
        return model

    straight = compiled()
    straight.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    first = compiled()
    first.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    first.save(tmp_path / "epoch1.keras")
    resumed = keras.models.load_model(tmp_path / "epoch1.keras")
    resumed.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert int(resumed.optimizer.iterations) == 8
    for a, b in zip(_shared(resumed), _shared(straight)):
        np.testing.assert_allclose(a.codebook, b.codebook, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(
        resumed.predict(x, verbose=0), straight.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _net_of_dtype(dtype=None):
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    y = layers.Conv2D(6, 3, name="conv", dtype=dtype)(inp)
    y = layers.DepthwiseConv2D(3, name="dw", dtype=dtype)(y)
    y = layers.Flatten(dtype=dtype)(y)
    head = "float32" if dtype is None else dtype  # a mixed-precision model's float32 head
    return keras.Model(inp, layers.Dense(5, name="out", dtype=head)(y))


def _shared_plain_decoded(model, path):
    from tfcompress import codec

    shared = share_weights(model, 4)
    codec.encode(shared, path)
    return shared, strip_shared(shared), codec.decode(path)


def test_shared_weights_compute_as_the_plain_layer_under_mixed_precision(mixed_float16, tmp_path):
    shared, plain, decoded = _shared_plain_decoded(_net_of_dtype(), tmp_path / "m.tfdc")
    policies = {layer.name: layer.dtype_policy.name for layer in shared.layers[1:]}
    assert policies["out_shared"] == "float32" and policies["conv_shared"] == "mixed_float16"
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    out = shared.predict(x, verbose=0)
    np.testing.assert_array_equal(out, plain.predict(x, verbose=0))
    np.testing.assert_array_equal(out, decoded.predict(x, verbose=0))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_shared_weights_of_low_precision_layers_round_trip(dtype, tmp_path):
    shared, plain, decoded = _shared_plain_decoded(_net_of_dtype(dtype), tmp_path / "m.tfdc")
    assert shared.get_layer("conv_shared").codebook.dtype == dtype
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    out = shared.predict(x, verbose=0)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, plain.predict(x, verbose=0))
    np.testing.assert_array_equal(out, decoded.predict(x, verbose=0))
    assert [w.dtype for w in decoded.weights] == [w.dtype for w in plain.weights]
