"""`layers_of`: the one walk over a model's layers, or its graph's operations (`keras.ops`
calls too), nested models included after themselves."""

import keras

from tfcompress.graph import layers_of
from tfcompress.layers import WeightMask
from tfcompress.surgery import wrap


def _nested():
    """A functional model calling `keras.ops` around a nested model that calls one too."""
    inner_in = keras.Input((8,))
    inner = keras.Model(
        inner_in, keras.layers.Dense(4, name="d2")(keras.ops.tanh(inner_in)), name="inner"
    )
    inputs = keras.Input((6,))
    h = keras.ops.relu(keras.layers.Dense(8, name="d1")(inputs) * 2.0)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(inner(h)), name="outer")


def test_layers_of_walks_the_layers_nested_models_after_themselves():
    model = _nested()
    names = [layer.name for layer in layers_of(model)]
    inner_input = model.get_layer("inner").layers[0].name
    assert names == [model.layers[0].name, "d1", "inner", inner_input, "d2", "out"]
    assert [layer.name for layer in layers_of(model, keras.layers.Dense)] == ["d1", "d2", "out"]
    assert [m.name for m in layers_of(model, keras.Model)] == ["inner"]


def test_operations_adds_the_keras_ops_calls_of_every_graph():
    model = _nested()
    found = layers_of(model, operations=True)
    ops = [type(op).__name__ for op in found if not isinstance(op, keras.layers.Layer)]
    assert ops == ["Multiply", "Relu", "Tanh"]
    layers = [op.name for op in found if isinstance(op, keras.layers.Layer)]
    assert layers == [layer.name for layer in layers_of(model)]
    assert [type(op).__name__ for op in layers_of(model, keras.Operation, operations=True)
            ].count("Tanh") == 1  # fmt: skip


def test_operations_of_a_sequential_model_are_its_layers():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    assert layers_of(model, operations=True) == layers_of(model) == model.layers


def test_wrappers_are_walked_as_they_are():
    masked = wrap(_nested(), method="magnitude")
    assert [w.layer.name for w in layers_of(masked, WeightMask, operations=True)] == [
        "d1", "d2", "out"]  # fmt: skip
