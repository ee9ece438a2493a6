"""Activations and the channels under them: an element-wise activation leaves each channel
its own; one that normalises over or splits the channel axis (softmax, log_softmax,
sparsemax, glu) or that the graph does not know (a function of the user's) pins them, so
that pruning never changes what the kept channels compute."""

import inspect

import keras
import numpy as np
import pytest
from keras import layers, ops

import tfcompress as tfc
from tests.parity import max_rel_error, sample_input
from tfcompress.graph import rule_base


@pytest.fixture(autouse=True)
def _no_declared_activations(monkeypatch):
    monkeypatch.setattr(rule_base, "_registered_elementwise", set())


def _pinned_by(model, producer):
    graph = tfc.DependencyGraph(model)
    (group,) = [g for g in graph.groups if producer in {m.layer.name for m in g.layers("out")}]
    return None if group.prunable else group.pinned_by


def _prune_and_compare(model, ratio=0.5):
    """wrap -> prune -> strip; the compact model's relative error against the masked."""
    x = sample_input(model)
    masked = tfc.wrap(model, "l1_filter")
    tfc.prune(masked, ratio=ratio)
    compact = tfc.strip(masked)
    return max_rel_error(np.asarray(masked(x)), np.asarray(compact(x))), compact


def _dense_net(activation, width=16):
    keras.utils.set_random_seed(1)
    x = keras.Input((10,))
    y = layers.Dense(width, activation=activation, name="h1")(x)
    y = layers.Dense(16, activation="relu", name="h2")(y)
    return keras.Model(x, layers.Dense(3, name="out")(y))


def test_every_keras_activation_is_known_elementwise_or_mixing():
    names = {f.__name__ for _, f in inspect.getmembers(keras.activations, inspect.isfunction)}
    names -= {"get", "serialize", "deserialize"}
    both = rule_base.ELEMENTWISE_ACTIVATIONS & rule_base.CHANNEL_MIXING_ACTIVATIONS
    assert not both
    unknown = names - rule_base.ELEMENTWISE_ACTIVATIONS - rule_base.CHANNEL_MIXING_ACTIVATIONS
    assert not unknown, f"classify these keras.activations functions: {sorted(unknown)}"


@pytest.mark.parametrize("activation", ["softmax", "log_softmax", "sparsemax"])
def test_channel_normalising_activations_pin_their_channels(activation):
    model = _dense_net(activation)
    assert _pinned_by(model, "h1") == f"{activation} activation"
    assert _pinned_by(model, "h2") is None  # the next layer's channels still prune
    error, compact = _prune_and_compare(model)
    assert error <= 1e-5
    assert compact.get_layer("h1").units == 16 and compact.get_layer("h2").units == 8


def test_activation_layers_and_depthwise_convs_pin_under_sparsemax():
    keras.utils.set_random_seed(2)
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = layers.Activation("sparsemax", name="act")(y)
    y = layers.Conv2D(8, 3, padding="same", name="c2")(y)
    y = layers.DepthwiseConv2D(3, padding="same", activation="sparsemax", name="dw")(y)
    y = layers.Conv2D(8, 1, name="c3")(y)
    model = keras.Model(x, layers.Dense(3)(layers.GlobalAveragePooling2D()(y)))
    assert _pinned_by(model, "c1") == "sparsemax activation"
    assert _pinned_by(model, "c2") == "sparsemax activation"  # through the depthwise conv
    assert _pinned_by(model, "c3") is None
    error, compact = _prune_and_compare(model)
    assert error <= 1e-5 and compact.get_layer("c3").filters == 4


@keras.saving.register_keras_serializable(package="tfcompress_tests")
def centered(x):
    """Mixes channels: each output channel depends on the mean over all of them."""
    return x - ops.mean(x, axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="tfcompress_tests")
def scaled_tanh(x):
    return 1.7 * ops.tanh(x)


def test_an_unknown_function_pins_until_declared_elementwise():
    mixing = _dense_net(centered)
    assert _pinned_by(mixing, "h1") == "centered activation"
    error, _ = _prune_and_compare(mixing)
    assert error <= 1e-5  # it was 0.148 when unknown functions counted as element-wise
    model = _dense_net(scaled_tanh)
    assert _pinned_by(model, "h1") == "scaled_tanh activation"
    tfc.graph.register_elementwise_activation(scaled_tanh)  # (before wrap: masks go there)
    assert _pinned_by(model, "h1") is None
    error, compact = _prune_and_compare(model)
    assert error <= 1e-5 and compact.get_layer("h1").units == 8


def test_a_declaration_after_wrap_rebuilds_the_wrapped_models_graph():
    model = _dense_net(scaled_tanh)
    masked = tfc.wrap(model, "l1_filter")
    assert len(tfc.methods.graph_of(masked).prunable_groups) == 1  # h2's only
    tfc.graph.register_elementwise_activation("scaled_tanh")
    graph = tfc.methods.graph_of(masked)
    assert len(graph.prunable_groups) == 2  # not the graph traced before


def test_bad_declarations_are_refused_by_name():
    with pytest.raises(ValueError, match="a lambda or a callable object has none"):
        tfc.graph.register_elementwise_activation(lambda x: x)
    with pytest.raises(ValueError, match="'softmax' mixes channels .* Received: "
                                         "activation='softmax'"):
        tfc.graph.register_elementwise_activation(keras.activations.softmax)
    with pytest.raises(ValueError, match="Received: activation=3"):
        tfc.graph.register_elementwise_activation(3)


def test_an_unregistered_function_is_named_with_the_fix():
    def doubled_tanh(x):  # not registered: Keras cannot find it by name in a config
        return 2.0 * ops.tanh(x)

    with pytest.raises(ValueError, match=r"Cannot re-create layer 'h1' \(Dense\) .* names the "
                       r"function\(s\) \['doubled_tanh'\], which Keras finds by name only when "
                       r"registered: decorate them with `@keras.saving"):
        tfc.wrap(_dense_net(doubled_tanh), "l1_filter")
