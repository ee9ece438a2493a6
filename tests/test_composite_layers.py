"""Composite (subclassed) layers are seen through: their sublayers and keras.ops become
nodes of the dependency graph, the compact model is made of the parts; a layer that cannot
be seen through is kept whole when every channel it touches is kept anyway (an opaque layer
on a LayerNorm-ed stream), and otherwise refused by name, with the reason."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input


class ConvBnRelu(keras.layers.Layer):
    """Conv, BatchNorm (given `training`), keras.ops.relu, Dropout."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", name="conv")
        self.bn = keras.layers.BatchNormalization(name="bn")
        self.drop = keras.layers.Dropout(0.2, name="drop")

    def call(self, x, training=None):
        x = keras.ops.relu(self.bn(self.conv(x), training=training))
        return self.drop(x, training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class Residual(keras.layers.Layer):
    """A composite of a composite: x + conv1x1(ConvBnRelu(x))."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.block = ConvBnRelu(filters, name="inner")
        self.project = keras.layers.Conv2D(filters, 1, name="project")

    def call(self, x):
        return x + self.project(self.block(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


class TransformerBlock(keras.layers.Layer):  # keras.io's composite block
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.att = keras.layers.MultiHeadAttention(4, 4)
        self.norm = keras.layers.LayerNormalization()
        self.ffn = keras.Sequential(
            [keras.layers.Dense(24, activation="relu"), keras.layers.Dense(16)]
        )

    def call(self, x):
        x = self.norm(x + self.att(x, x))
        return x + self.ffn(x)


def _convnet():
    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(image)
    x = Residual(8, name="res1")(x)
    x = Residual(8, name="res2")(x)  # the same part names ("conv", "bn") a second time
    x = ConvBnRelu(12, name="head")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(image, keras.layers.Dense(3, name="logits")(x), name="composite_net")


def _check_parity(model, x, ratio=0.3):
    reference = outputs(model, x)
    masked = tfc.wrap(model)
    assert max_rel_error(reference, outputs(masked, x)) <= 1e-6
    tfc.prune(masked, ratio=ratio)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.count_params() < model.count_params()
    return masked, compact


def test_composite_layers_are_seen_through_with_parity(tmp_path):
    model = _convnet()
    graph = tfc.graph.DependencyGraph(model)
    names = [op.layer.name for op in graph.traced.ops]
    assert "res1" not in names and names.count("conv") == 3  # one per ConvBnRelu call
    assert graph.traced.composites[id(model.get_layer("res1").block.conv)] == "res1"
    # the residual stream (stem, both projections), each inner conv, the head's conv
    assert len(graph.prunable_groups) == 4
    x = sample_input(model)
    _, compact = _check_parity(model, x)
    assert {type(layer).__module__.split(".")[0] for layer in compact.layers} == {"keras"}
    assert len({layer.name for layer in compact.layers}) == len(compact.layers)
    path = str(tmp_path / "compact.keras")
    compact.save(path)  # the composite classes are not registered: plain Keras only
    loaded = keras.saving.load_model(path)
    assert max_rel_error(outputs(compact, x), outputs(loaded, x)) <= 1e-6
    # `training` reaches the parts: Dropout drops, BatchNorm uses the batch statistics
    assert not np.allclose(compact(x, training=True), compact(x, training=False))


class AddPositions(keras.layers.Layer):
    """A learned position embedding: a weight of its own, so not seen through."""

    def build(self, input_shape):
        self.positions = self.add_weight(shape=input_shape[1:], name="positions")

    def call(self, x):
        return x + self.positions


def test_keras_io_transformer_block_heads_and_ffn_are_pruned():
    tokens = keras.Input((8, 16))
    x = AddPositions(name="positions")(tokens)  # opaque, on the stream LayerNorm keeps
    x = TransformerBlock(name="block")(x)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    graph = tfc.graph.DependencyGraph(model)
    assert "positions" in [op.layer.name for op in graph.traced.ops]
    _, compact = _check_parity(model, sample_input(model), ratio=0.5)
    mha = [layer for layer in compact.layers if isinstance(layer, keras.layers.MultiHeadAttention)]
    assert [layer.num_heads for layer in mha] == [2]
    assert [layer.units for layer in compact.layers if isinstance(layer, keras.layers.Dense)] == [
        12, 16
    ]
    np.testing.assert_array_equal(
        compact.get_layer("positions").get_weights()[0], model.get_layer("positions").positions
    )


class Scaled(keras.layers.Layer):
    """A weight of its own read by its call: needs a rule."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(8)

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(8,), initializer="ones", name="scale")

    def call(self, x):
        return self.dense(x) * self.scale


class DataDependent(keras.layers.Layer):
    """Python control flow on a tensor value (its output shape is declared, so a
    functional model builds without running its call)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(8)

    def build(self, input_shape):
        self.dense.build(input_shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x):
        if keras.ops.max(x) > 0:
            return self.dense(x)
        return x


class TrainingBranch(keras.layers.Layer):
    """Python control flow on `training`: one functional graph cannot hold both."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(8)
        self.noise = keras.layers.GaussianNoise(0.1)

    def call(self, x, training=None):
        if training:
            x = self.noise(x, training=training)
        return self.dense(x)


class ConstantPositions(keras.layers.Layer):
    """A sublayer called on a constant: its weights would be frozen into the graph."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embed = keras.layers.Embedding(4, 8, name="embed")

    def call(self, x):
        return x + self.embed(keras.ops.zeros((1,), "int32"))


def _model_of(layer):
    x = keras.Input((8,))
    h = keras.layers.Dense(8, name="before")(x)
    return keras.Model(x, keras.layers.Dense(2, name="after")(layer(h)))


@pytest.mark.parametrize(
    "layer, reason",
    [
        (Scaled(name="scaled"), r"it holds weights of its own .*'scaled/scale'.*a channel rule"),
        (DataDependent(name="data_dependent"), r"its call fails on symbolic tensors"),
        (TrainingBranch(name="training_branch"), r"its call branches on `training` in Python"),
        (
            ConstantPositions(name="positions"),
            r"its call reads weights \(\['.*embeddings'\]\) that are not on the path",
        ),
    ],
)
def test_a_layer_that_cannot_be_seen_through_is_refused_with_the_reason(layer, reason):
    model = _model_of(layer)
    with pytest.raises(
        tfc.graph.UnknownLayerError,
        match=rf"Layer '{layer.name}' of class .*{type(layer).__name__} has no channel rule.*"
        rf"not seen through: {reason}.*exclude=\['{layer.name}'\]",
    ):
        tfc.graph.DependencyGraph(model)


def test_an_excluded_composite_stays_one_pinned_layer():
    layer = Residual(8, name="res")
    image = keras.Input((8, 8, 8))
    model = keras.Model(image, keras.layers.Conv2D(4, 1, name="out")(layer(image)))
    graph = tfc.graph.DependencyGraph(model, exclude=["res"])
    assert [op.layer.name for op in graph.traced.ops] == ["res", "out"]
    assert not graph.prunable_groups


def test_an_unknown_op_inside_a_composite_names_the_composite():
    class Taken(keras.layers.Layer):
        def call(self, x):
            return keras.ops.take(x, [0, 2, 4, 6], axis=1)  # a refused keras.ops op

    model = _model_of(Taken(name="taken"))
    with pytest.raises(
        tfc.graph.UnknownLayerError,
        match=r"class keras\.src\.ops\.numpy\.Take has no channel rule.*"
        r"inside composite layer 'taken'.*keras\.ops\.take is refused: its channel map "
        r"depends on indices",
    ):
        tfc.graph.DependencyGraph(model)


class SqueezeExcite(keras.layers.Layer):
    """keras.ops.mean over space, a batch-sized reshape, a channel gate."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reduce = keras.layers.Dense(2, activation="relu", name="reduce")
        self.expand = keras.layers.Dense(8, activation="sigmoid", name="expand")

    def call(self, x):
        s = keras.ops.mean(x, axis=[1, 2])
        s = keras.ops.reshape(s, (keras.ops.shape(x)[0], 1, 1, 8))
        return x * self.expand(self.reduce(s))


def test_spatial_mean_and_reshape_inside_a_composite_keep_channels_coupled():
    image = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(8, 1, name="conv")(image)
    x = SqueezeExcite(name="se")(x)
    x = keras.ops.max(x, axis=-1)  # over channels: pinned
    model = keras.Model(image, keras.layers.Dense(2, name="head")(x))
    graph = tfc.graph.DependencyGraph(model)
    (group,) = [g for g in graph.groups if "conv" in {m.layer.name for m in g.layers("out")}]
    assert not group.prunable and "Max over channels" in group.pinned_by
    assert {m.layer.name for m in group.members} >= {"conv", "expand"}
    x = sample_input(model, batch=3)  # not the batch size the reshape was traced with
    np.testing.assert_allclose(outputs(model, x)[0], outputs(tfc.wrap(model), x)[0])


def test_a_bare_channelwise_rule_on_a_layer_with_per_channel_weights_is_refused():
    """Registering Channelwise() for a layer with per-channel weights let wrap and prune
    run and strip fail ("The shape of the target variable ... must match"); the graph now
    refuses it, naming the weights."""
    from tfcompress.graph.rules import Channelwise

    with tfc.graph.registered_rule(Scaled, Channelwise()):
        with pytest.raises(ValueError, match=r"The rule Channelwise\(\) of layer 'scaled' "
                           r"\(Scaled\) names none of its weights \['scaled/scale', .*\], which "
                           r"hold one entry per channel \(8\)"):
            tfc.graph.DependencyGraph(_model_of(Scaled(name="scaled")))
