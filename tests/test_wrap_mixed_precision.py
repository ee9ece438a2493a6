"""Mixed precision: `wrap` keeps each layer's dtype policy (a float32 head stays float32,
its wrapper and the masks after it too), so the masked model computes what the model
does, and the compact model what the masked one does."""

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tests.parity import max_rel_error, sample_input


def _net():
    keras.utils.set_random_seed(3)
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(16, 3, name="c1")(x)  # mixed_float16
    y = layers.Conv2D(16, 3, dtype="float32", name="c2")(y)
    y = layers.GlobalAveragePooling2D(dtype="float32")(y)
    y = layers.Dense(16, activation="relu", dtype="float32", name="fc")(y)
    return keras.Model(x, layers.Dense(4, activation="softmax", dtype="float32", name="head")(y))


def _f32(y):
    return [np.asarray(keras.ops.convert_to_numpy(y), np.float32)]


@pytest.mark.parametrize("method", ["l1_filter", "taylor", "magnitude"])
def test_wrap_keeps_each_layers_dtype_policy(mixed_float16, method, tmp_path):
    model = _net()
    x = sample_input(model)
    masked = tfc.wrap(model, method)
    policies = {layer.name: layer.dtype_policy.name for layer in masked.layers}
    assert policies["head" if method != "magnitude" else "head_wm"] == "float32"
    if method != "magnitude":
        assert policies["c1"] == policies["c1_mask"] == "mixed_float16"
        assert policies["c2"] == policies["c2_mask"] == policies["fc_mask"] == "float32"
    assert masked(x).dtype == "float32"
    assert max_rel_error(_f32(model(x)), _f32(masked(x))) == 0.0  # was 4e-4 in float16
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    loaded = keras.saving.load_model(path)
    assert {layer.name: layer.dtype_policy.name for layer in loaded.layers} == policies
    if method == "taylor":
        return  # (its scores need data: test_methods_fit prunes it)
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    assert compact.get_layer("head").dtype_policy.name == "float32"
    assert compact.get_layer("c2").dtype_policy.name == "float32"
    assert max_rel_error(_f32(masked(x)), _f32(compact(x))) <= 1e-3  # float16 rounding


def test_a_mixed_precision_model_exports_to_tflite_as_float32(mixed_float16, tmp_path):
    model = _net()
    x = sample_input(model, batch=4)
    copy = tfc.export.float32_copy(model)
    assert {layer.dtype_policy.name for layer in copy.layers[1:]} == {"float32"}
    assert copy.layers[0].name == model.layers[0].name  # the signature's input name
    assert tfc.export.float32_copy(copy) is copy  # nothing to change
    check = tfc.export.tflite(model, str(tmp_path / "m.tflite"), check_data=x)  # was a
    # ConverterError: "'tf.Conv2D' op is neither a custom op nor a flex op" (f16 tensors)
    assert check.max_abs_error <= 1e-5  # against the float32 copy
    lite = tfc.export.run_tflite(str(tmp_path / "m.tflite"), x)[0]
    assert max_rel_error(_f32(model(x)), [lite]) <= 1e-2  # the model itself: float16 rounding


def test_a_mixed_precision_model_with_keras_ops_exports_to_tflite(mixed_float16, tmp_path):
    # float32_copy gave every node of the graph `dtype="float32"`, keras.ops operations
    # too, which take none: "Operation.__init__() got an unexpected keyword argument 'dtype'"
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 4))
    y = layers.Conv1D(16, 3, padding="same", name="conv")(inputs)
    y = keras.ops.concatenate([y[..., :8], layers.Conv1D(8, 1, name="pw")(y[..., 8:])], -1)
    y = layers.GlobalAveragePooling1D()(y)
    model = keras.Model(inputs, layers.Dense(3, name="head", dtype="float32")(y))
    x = sample_input(model, batch=4)
    copy = tfc.export.float32_copy(model)
    assert max_rel_error(_f32(model(x)), _f32(copy(x))) <= 1e-2  # float16 rounding
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    check = tfc.export.tflite(tfc.strip(masked), str(tmp_path / "m.tflite"), check_data=x)
    assert check.max_rel_error <= 1e-5
