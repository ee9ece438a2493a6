"""Every bad input gives a clear error naming the thing and the value."""

import re

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tfcompress.graph import UnknownLayerError, find_rule, register_rule, registered_rule
from tfcompress.graph.rules import Channelwise


class Doubler(layers.Layer):
    def build(self, *shapes):  # a weight of its own: the graph does not see through it
        self.one = self.add_weight(shape=(), initializer="ones", trainable=False, name="one")

    def call(self, x):
        return 2.0 * self.one * x


def _small():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv_a")(inp)
    return keras.Model(inp, layers.Conv2D(2, 1, name="conv_b")(x))


def test_unknown_layer_names_layer_class_and_fix():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3)(inp)
    x = Doubler(name="doubler")(x)
    model = keras.Model(inp, layers.Conv2D(2, 1)(x))
    with pytest.raises(UnknownLayerError, match=r"Layer 'doubler' of class .*Doubler has no "
                       r"channel rule.*register_rule\(Doubler.*exclude=\['doubler'\]"):
        tfc.DependencyGraph(model)
    # Both suggested fixes work.
    assert tfc.DependencyGraph(model, exclude=["doubler"]).groups
    with registered_rule(Doubler, Channelwise()):
        assert tfc.DependencyGraph(model).prunable_groups
    assert find_rule(Doubler()) is None  # the rule table is left as it was


def test_register_rule_rejects_non_rule():
    with pytest.raises(TypeError, match="Rule. Received: rule='x'"):
        register_rule(Doubler, "x")


def test_subclassed_model_is_rejected():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="my_net")
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="'my_net' \\(Net\\) is a subclassed model"):
        tfc.wrap(net)


class _Scaled(keras.Model):  # a functional model whose class changes its outputs
    def call(self, inputs, training=None):
        return keras.ops.softmax(super().call(inputs, training=training) / 2.0)


class _OwnStep(keras.Model):  # ... or how fit trains it
    def train_step(self, data):
        return super().train_step(data)


class _Named(keras.Model):  # ... or only what it is called: fine
    def describe(self):
        return self.name


def _functional_of(cls, name):
    inputs = keras.Input((6, 6, 1))
    x = layers.Conv2D(4, 3, activation="relu", name=f"{name}_c1")(inputs)
    x = layers.Conv2D(4, 3, name=f"{name}_c2")(x)
    return cls(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(x)), name=name)


@pytest.mark.parametrize("cls, method", [(_Scaled, "call"), (_OwnStep, "train_step")])
def test_a_functional_subclass_changing_call_or_training_is_refused(cls, method):
    """wrap took its graph of layers and made a plain functional model: an overridden
    `call` was dropped silently (outputs 0.37 off before any pruning), so was `train_step`."""
    model = _functional_of(cls, "scaled")
    message = (rf"Model 'scaled' is a functional model of class {cls.__name__}, which "
               rf"overrides \['{method}'\].*Prune `keras.Model\(scaled.inputs, scaled.outputs\)`")
    with pytest.raises(ValueError, match=message):
        tfc.wrap(model)
    inputs = keras.Input((6, 6, 1))  # nested in a plain functional model: the same
    outer = keras.Model(inputs, layers.Dense(2)(model(inputs)))
    with pytest.raises(ValueError, match=message):
        tfc.wrap(outer)


def test_a_functional_subclass_that_computes_as_its_graph_is_wrapped():
    model = _functional_of(_Named, "named")
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 1)).astype("float32")
    np.testing.assert_allclose(tfc.wrap(model)(x), model(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, "0.5", True])
def test_ratio_outside_unit_interval(ratio):
    masked = tfc.wrap(_small())
    with pytest.raises(ValueError, match=r"ratio must be a number in \[0, 1\). Received: ratio="):
        tfc.prune(masked, ratio=ratio)


def test_unbuilt_model():
    model = keras.Sequential([layers.Dense(3)], name="lazy")
    with pytest.raises(ValueError, match="Model 'lazy' is not built"):
        tfc.wrap(model)


def test_not_a_model():
    with pytest.raises(TypeError, match="Expected a keras.Model. Received: model="):
        tfc.DependencyGraph(layers.Dense(3))


def test_unknown_layer_name_in_exclude():
    with pytest.raises(ValueError, match=r"exclude names layer\(s\) \['nope'\].*conv_a"):
        tfc.wrap(_small(), exclude=["nope"])


def test_unknown_method():
    with pytest.raises(ValueError, match="Unknown pruning method. Received: method='obd'"):
        tfc.wrap(_small(), method="obd")


def test_wrap_refuses_the_graph_of_another_model():
    """Before: wrap(a, graph=DependencyGraph(b)) silently wrapped b."""
    a, b = _small(), keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 1)], name="b")
    graph = tfc.DependencyGraph(b)
    for method in ("l1_filter", "magnitude"):
        with pytest.raises(ValueError) as info:
            tfc.wrap(a, method, graph=graph)
        assert str(info.value) == (
            f"graph is the dependency graph of model 'b', not of the model to wrap, "
            f"'{a.name}': pass DependencyGraph(model) or no graph. Received: graph={graph!r}"
        )
    assert len(tfc.wrap(a, graph=tfc.DependencyGraph(a)).layers) > len(a.layers)


def test_measure_cost_table_refuses_the_graph_of_another_model():
    """Before: measure_cost_table(a, graph=DependencyGraph(b)) timed a by b's groups."""
    a, b = _small(), keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 1)], name="b")
    graph = tfc.DependencyGraph(b)
    with pytest.raises(ValueError, match=r"graph is the dependency graph of model 'b', not of "
                       rf"the model to time, '{a.name}'"):  # fmt: skip
        tfc.latency.measure_cost_table(a, graph=graph, use_cache=False)


def test_wrap_refuses_a_layer_naming_what_it_takes():
    """Before: wrap(keras.layers.Dense(3)) failed in an AttributeError of a layer's walk."""
    with pytest.raises(TypeError, match=r"Expected a keras.Model. Received: model=.* of type "
                       "Dense"):  # fmt: skip
        tfc.wrap(layers.Dense(3))


def test_prune_without_wrap():
    with pytest.raises(ValueError, match="has no mask layers. Call `tfcompress.wrap"):
        tfc.prune(_small(), ratio=0.5)


def test_plan_naming_unknown_mask():
    masked = tfc.wrap(_small())
    with pytest.raises(ValueError, match="names mask layer 'ghost_mask'"):
        tfc.apply_plan(masked, tfc.PruningPlan(keep={"ghost_mask": [0]}))


@pytest.mark.parametrize("keep, problem", [
    ([True, False, True, True], "holds keep flags; it lists the kept channel indices "
                                "(np.flatnonzero(flags).tolist())"),
    ([-1], "holds -1, outside the layer's channels [0, 4)"),
    ([4], "holds 4, outside the layer's channels [0, 4)"),
    ([2.9], "holds 2.9, not an integer channel index"),
    ([1, 1], "holds 1 twice"),
    ("01", "is not a list of channel indices"),
])
def test_plan_keep_lists_are_distinct_channel_indices(keep, problem):
    # flags were read as indices ([T, F, T, T] kept [0, 1]), -1 wrapped, 2.9 truncated
    masked = tfc.wrap(_small())
    with pytest.raises(ValueError, match=re.escape(
            f"The plan's keep list of mask layer 'conv_a_mask' {problem}. "
            f"Received: keep['conv_a_mask']={keep!r}")):
        tfc.apply_plan(masked, tfc.PruningPlan(keep={"conv_a_mask": keep}))
    assert tfc.plan_from_masks(masked).keep == {"conv_a_mask": [0, 1, 2, 3]}
    tfc.apply_plan(masked, tfc.PruningPlan(keep={"conv_a_mask": np.array([3, 0])}))
    assert tfc.plan_from_masks(masked).keep == {"conv_a_mask": [0, 3]}


def test_a_plan_of_weight_sparsity_is_refused_by_apply_plan():
    """prune's plan for magnitude records per-layer sparsity, not which weights: applied
    to a model it set nothing, silently."""
    masked = tfc.wrap(_small(), "magnitude")
    plan = tfc.prune(masked, 0.8)
    assert plan.weight_sparsity and not plan.keep
    other = tfc.wrap(_small(), "magnitude")
    with pytest.raises(ValueError, match=re.escape(
            "apply_plan sets channel masks (the plan's `keep`); this plan holds "
            "weight_sparsity, the share of weights an unstructured method (magnitude) "
            "pruned per layer")) as info:  # fmt: skip
        tfc.apply_plan(other, tfc.PruningPlan.from_json(plan.to_json()))
    assert "Received: weight_sparsity={'conv_a': 0.79" in str(info.value)


def test_bad_mask_units_and_maps():
    for bad in (0, True, 2.0):
        with pytest.raises(ValueError, match=re.escape(
                f"units must be an integer >= 1. Received: units={bad!r}")):
            tfc.layers.ChannelMask(bad)
    assert tfc.layers.ChannelMask(np.int64(2)).get_config()["units"] == 2  # a Python int
    assert type(tfc.layers.ChannelMask(np.int64(2)).units) is int
    with pytest.raises(ValueError, match=r"channel_maps\[0\] holds \[5\], outside \[-1, 2\)"):
        tfc.layers.ChannelMask(2, channel_maps=[[0, 5]], name="m")


def test_an_excluded_lambda_of_a_python_lambda_is_not_re_created():
    """An excluded Lambda (a Python lambda of tf ops) is used as it is by wrap and strip:
    re-created from its config it was refused by Keras's safe mode, and outside it lost
    the globals its function reads (NameError: tf). A Lambda that must be re-created (an
    edited config) is told what works instead of "give the class a get_config()"."""
    import tensorflow as tf

    from tfcompress.surgery.rebuild import clone_layer

    inp = keras.Input((6, 6, 3))
    x = layers.Conv2D(8, 3, padding="same", name="c0")(inp)  # the prunable group
    x = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    lam = layers.Lambda(lambda t: tf.nn.relu6(t), name="tf_relu6")
    x = lam(x)
    model = keras.Model(inp, layers.Conv2D(4, 3, name="c2")(x))
    masked = tfc.wrap(model, exclude=["tf_relu6"])
    x = np.random.default_rng(0).uniform(0, 1, (2, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(masked(x)), np.asarray(model(x)), rtol=1e-6)
    tfc.prune(masked, 0.5)
    np.testing.assert_allclose(tfc.strip(masked)(x), masked(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError) as info:
        clone_layer(lam, {**lam.get_config(), "name": "renamed"})
    message = str(info.value)
    assert message.startswith("Cannot re-create layer 'tf_relu6' (Lambda) from its get_config()")
    assert message.endswith(
        "It holds a Python lambda, which Keras re-creates only outside its safe mode: if "
        "you trust it, call `keras.config.enable_unsafe_deserialization()` first (load the "
        "saved models with `safe_mode=False` too); or define the function with `def` and "
        "decorate it with `@keras.saving.register_keras_serializable()`; or, in a Lambda "
        "not named in `exclude`, compute with keras.ops only (tfcompress then sees through "
        "it: nothing to re-create)."
    )
    assert "get_config() that lists" not in message
