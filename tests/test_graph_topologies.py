"""Parity per topology: wrap changes nothing, strip(prune(wrap)) equals the masked model."""

import numpy as np
import pytest

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, prune_with_parity, sample_input
from tests.topologies import TOPOLOGIES, randomize_bn


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_wrap_prune_strip_parity(name):
    model = randomize_bn(TOPOLOGIES[name]())
    x = sample_input(model)
    reference = outputs(model, x)

    masked = tfc.wrap(model, method="l1_filter")
    assert max_rel_error(reference, outputs(masked, x)) <= 1e-6

    plan = tfc.prune(masked, ratio=0.5)
    assert plan.keep, "nothing was prunable"
    assert any(len(k) < masked.get_layer(n).units for n, k in plan.keep.items())
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.count_params() < model.count_params()
    # the original model is untouched
    assert max_rel_error(reference, outputs(model, x)) == 0.0


def test_stripped_model_is_plain_keras():
    compact = tfc.strip(tfc.wrap(TOPOLOGIES["resnet_add"]()))
    names = {type(layer).__module__.split(".")[0] for layer in compact.layers}
    assert names == {"keras"}


def test_residual_group_couples_all_producers():
    model = TOPOLOGIES["resnet_add"]()
    graph = tfc.DependencyGraph(model)
    # The 16-wide stage: projection shortcut, two residual convs, first conv of block 3
    # input... every producer feeding the same Add chain is one group.
    add_groups = [g for g in graph.prunable_groups if len(g.layers("out")) >= 3]
    assert add_groups, graph.groups
    producers = {m.layer.name for m in add_groups[0].layers("out")}
    assert len(producers) >= 3


def test_outputs_keep_their_channels():
    model = TOPOLOGIES["multi_output"]()
    graph = tfc.DependencyGraph(model)
    for g in graph.groups:
        names = {m.layer.name for m in g.layers("out")}
        if names & {"seg", "aux"}:
            assert not g.prunable and g.pinned_by == "model output"
    compact = tfc.strip(_pruned(model))
    assert [tuple(o.shape) for o in compact.outputs] == [tuple(o.shape) for o in model.outputs]


def test_excluded_layer_keeps_channels():
    model = TOPOLOGIES["sequential_chain"]()
    first_conv = model.layers[0].name
    compact = tfc.strip(_pruned(model, exclude=[first_conv]))
    assert compact.get_layer(first_conv).filters == model.get_layer(first_conv).filters
    assert compact.count_params() < model.count_params()


def test_concat_offsets_and_flatten_index_maps():
    model = TOPOLOGIES["flatten_dense"]()
    graph = tfc.DependencyGraph(model)
    (group,) = [g for g in graph.prunable_groups if g.size == 10]
    dense_in = [m for m in group.layers("in") if m.layer.name.startswith("dense")][0]
    per_channel = dense_in.index_map.per_channel(group.size)
    # Flatten of a 3x3x10 map: channel c sits at features c, c+10, ..., c+80.
    np.testing.assert_array_equal(per_channel[3], np.arange(3, 90, 10))


def test_prune_ratio_zero_keeps_everything():
    model = randomize_bn(TOPOLOGIES["resnet_add"]())
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.0)
    compact = tfc.strip(masked)
    assert compact.count_params() == model.count_params()


def _pruned(model, exclude=()):
    masked = tfc.wrap(model, exclude=exclude)
    tfc.prune(masked, ratio=0.5)
    return masked


def test_a_nested_model_called_on_its_own_input():
    """keras_hub's task models call their backbone on `backbone.input` (DeepLabV3's
    segmenter): the nested model's input is the outer model's input tensor itself. The
    graph sees through it (before, tracing it looped forever)."""
    import keras

    image = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(8, 3, padding="same", name="c1")(image)
    features = keras.layers.Conv2D(8, 3, padding="same", name="c2")(features)
    backbone = keras.Model(image, features, name="backbone")
    y = backbone(backbone.input)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(backbone.input, keras.layers.Dense(3, name="head")(y))
    _, compact, _ = prune_with_parity(model, 0.5, method="l1_filter")
    assert compact.count_params() < model.count_params()


def test_rescaling_with_a_per_channel_scale_pins_and_a_scalar_one_prunes():
    """`Rescaling(scale=[... one per channel ...])` between two convs: its channels are
    pinned, the reason naming the scale (or offset) (before, they were pruned and the
    compact model failed when called: Incompatible shapes); a scalar scale and offset
    stay prunable."""
    import keras
    from keras import layers

    def model_with(scale, offset):
        x = keras.Input((8, 8, 3))
        y = layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
        y = layers.Rescaling(scale=scale, offset=offset, name="rescale")(y)
        y = layers.Conv2D(6, 3, name="c2")(y)
        return keras.Model(x, layers.Dense(5)(layers.GlobalAveragePooling2D()(y)))

    vector = np.linspace(0.5, 2.0, 8).tolist()
    for scale, offset, pinned_by in [
        (vector, 0.1, "Rescaling with a per-channel scale of shape (8,)"),
        (2.0, [0.1] * 8, "Rescaling with a per-channel offset of shape (8,)"),
        (2.0, 0.1, None),
    ]:
        model = model_with(scale, offset)
        (group,) = [g for g in tfc.DependencyGraph(model).groups
                    if "c1" in {m.layer.name for m in g.layers("out")}]
        assert group.pinned_by == (pinned_by or "")
        _, compact, _ = prune_with_parity(model, ratio=0.5)
        assert compact.get_layer("c1").filters == (8 if pinned_by else 4)


def test_grouped_and_channels_first_convs_name_their_own_reason():
    """A grouped conv (`groups=4`) pins its input and output channels with a reason naming
    `groups` (it read "Conv2D layout", the channels_first reason); a channels_first conv
    names channels_first."""
    import keras
    from keras import layers

    x = keras.Input((10, 10, 4))
    y = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = layers.Conv2D(8, 3, groups=4, padding="same", name="grouped")(y)
    y = layers.Conv2D(6, 1, name="c3")(y)
    model = keras.Model(x, layers.Dense(5)(layers.GlobalAveragePooling2D()(y)))
    reasons = {
        g.pinned_by for g in tfc.DependencyGraph(model).groups
        if "grouped" in {m.layer.name for m in g.members}
    }
    assert reasons == {"grouped Conv2D (groups=4)"}
    x = keras.Input((4, 10, 10))
    y = layers.Conv2D(8, 3, data_format="channels_first", name="first")(x)
    model = keras.Model(x, layers.Dense(5)(layers.Flatten()(y)))
    reasons = {
        g.pinned_by for g in tfc.DependencyGraph(model).groups
        if "first" in {m.layer.name for m in g.layers("out")}
    }
    assert reasons == {"Conv2D channels_first"}
