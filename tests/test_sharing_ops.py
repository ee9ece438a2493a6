"""Weight sharing, the codec and deep_compress on models that call `keras.ops` between
layers (`keras.ops.relu(h * 2.0)`), and on a Lambda Keras cannot re-create."""

import keras
import numpy as np
import pytest
from keras.src.backend.common import global_state

import tfcompress as tfc
from tfcompress import codec
from tfcompress.sharing import SharedWeights, deep_compress, share_weights, strip_shared


def _ops_model():
    """Dense layers joined by element-wise ops, slicing, concatenate and reshape."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(16, name="fc1")(inputs)
    h = keras.ops.relu(h * 2.0)
    h = keras.ops.concatenate([h[:, :8] + 1.0, keras.ops.tanh(h[:, 8:])], axis=-1)
    h = keras.ops.reshape(keras.ops.reshape(h, (-1, 4, 4)), (-1, 16))
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(h))


def _lambda_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    h = keras.layers.Dense(16, name="fc1")(inputs)
    h = keras.layers.Lambda(lambda t: t * 2.0, name="double")(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(h))


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 12)).astype("float32")
    return x, x[:, :3].argmax(1).astype("int32")


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "magnitude-wrapped"])
def test_ops_between_layers_share_train_and_round_trip(tmp_path, wrapped):
    model = _ops_model()
    if wrapped:
        model = tfc.wrap(model, method="magnitude")
    shared = share_weights(model, bits=3)
    assert sorted(w.name for w in shared.layers if isinstance(w, SharedWeights)) == [
        "fc1_shared", "logits_shared"]  # fmt: skip
    x, y = _data()
    np.testing.assert_allclose(shared.predict(x, verbose=0), strip_shared(shared)(x), atol=1e-6)
    shared.compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    shared.train_on_batch(x, y)  # the centroids train through the ops
    path = tmp_path / "ops.tfdc"
    codec.encode(shared, path)
    want = shared.predict(x, verbose=0)
    np.testing.assert_array_equal(codec.decode(path).predict(x, verbose=0), want)
    np.testing.assert_array_equal(codec.decode(path, shared=True).predict(x, verbose=0), want)


def test_deep_compress_runs_a_model_with_ops_between_layers(tmp_path):
    x, y = _data()
    result = deep_compress(_ops_model(), (x, y), output_path=tmp_path / "ops.tfdc",
                           densities=0.5, prune_epochs=1, share_epochs=1, batch_size=32,
                           verbose=0)  # fmt: skip
    assert [s.name for s in result.stages] == ["dense", "pruned", "shared", "file"]
    np.testing.assert_array_equal(
        codec.decode(tmp_path / "ops.tfdc").predict(x, verbose=0),
        result.model.predict(x, verbose=0),
    )


_LAMBDA_REFUSED = (
    r"Model '\w+': layer 'double' \(Lambda\) cannot be re-created from its config, which "
    r"{}.*Python lambda.*enable_unsafe_deserialization"
)


def test_encode_refuses_a_lambda_decode_could_not_read(tmp_path):
    shared = share_weights(_lambda_model())  # the Lambda itself serves the copy
    with pytest.raises(ValueError, match=_LAMBDA_REFUSED.format("decode does to read the file")):
        codec.encode(shared, tmp_path / "lambda.tfdc")
    assert not (tmp_path / "lambda.tfdc").exists()


def test_encode_refuses_a_lambda_inside_a_nested_model(tmp_path):
    # the check walks every graph's layers and operations (`layers_of`), nested ones too
    inputs = keras.Input((12,))
    outer = keras.Model(inputs, keras.ops.relu(_lambda_model()(inputs)), name="outer")
    with pytest.raises(ValueError, match=_LAMBDA_REFUSED.format("decode does to read the file")):
        codec.encode(outer, tmp_path / "nested.tfdc")
    assert not (tmp_path / "nested.tfdc").exists()


def test_deep_compress_refuses_a_lambda_before_any_training(tmp_path):
    built = []

    def train_data():
        built.append(1)
        return _data()

    with pytest.raises(ValueError, match=_LAMBDA_REFUSED.format("deep_compress does to copy")):
        deep_compress(_lambda_model(), train_data, output_path=tmp_path / "l.tfdc",
                      densities=0.5, dense_epochs=1, verbose=0)  # fmt: skip
    assert not built and not (tmp_path / "l.tfdc").exists()


@pytest.fixture
def unsafe_deserialization():
    before = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    yield
    global_state.set_global_attribute("safe_mode_saving", before)


def test_deep_compress_runs_a_lambda_keras_may_re_create(tmp_path, unsafe_deserialization):
    # wrap sees through the Lambda (keras.ops inside): the shared model calls its ops
    x, y = _data()
    result = deep_compress(_lambda_model(), (x, y), output_path=tmp_path / "l.tfdc",
                           densities=0.5, prune_epochs=1, share_epochs=1, batch_size=32,
                           verbose=0)  # fmt: skip
    np.testing.assert_array_equal(
        codec.decode(tmp_path / "l.tfdc").predict(x, verbose=0),
        result.model.predict(x, verbose=0),
    )
