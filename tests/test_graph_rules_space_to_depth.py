"""Space-to-depth from standard layers (Reshape -> Permute -> Reshape, as YOLOv2's
passthrough): tf.nn.space_to_depth's channel order, channel c at outputs k * C + c in the
dependency graph, pruning through it with parity; strip replaces the SpaceToDepth layer
with it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input
from tests.topologies import cbr, randomize_bn, yolo_passthrough
from tfcompress.layers import SpaceToDepth
from tfcompress.layers.space_to_depth import space_to_depth


def test_space_to_depth_from_standard_layers_matches_tf():
    inp = keras.Input((6, 4, 5))
    model = keras.Model(inp, space_to_depth(inp, 2, name="s2d"))
    assert {type(layer).__name__ for layer in model.layers[1:]} == {"Reshape", "Permute"}
    x = np.random.default_rng(0).normal(size=(2, 6, 4, 5)).astype("float32")
    np.testing.assert_array_equal(model(x), tf.nn.space_to_depth(x, 2))


def test_space_to_depth_maps_channel_c_to_k_times_c_plus_c():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    x = space_to_depth(x, 2, name="s2d")
    model = keras.Model(inp, layers.Conv2D(2, 1, name="head")(x))
    graph = tfc.DependencyGraph(model)
    (group,) = [
        g for g in graph.groups if g.layers("out") and g.layers("out")[0].layer.name == "conv"
    ]
    assert group.prunable and group.size == 4
    (head,) = [m for m in group.layers("in") if m.layer.name == "head"]
    np.testing.assert_array_equal(head.index_map.positions, np.arange(16))
    np.testing.assert_array_equal(head.index_map.channels, np.arange(16) % 4)


def test_passthrough_space_to_depth_prunes_with_parity():
    inp = keras.Input((16, 16, 3))
    tap = cbr(inp, 8, name="tap")
    deep = cbr(layers.MaxPooling2D(2)(tap), 16, name="deep")
    p = space_to_depth(cbr(tap, 4, kernel=1, name="passthrough"), 2, name="s2d")
    x = cbr(layers.Concatenate()([p, deep]), 16, name="fuse")
    model = randomize_bn(keras.Model(inp, layers.Conv2D(6, 1, name="head")(x)))
    x = sample_input(model)
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.get_layer("passthrough").filters == 2
    assert compact.get_layer("s2d").target_shape == (8, 8, 4 * 2)
    assert compact.get_layer("s2d_blocks").target_shape == (8, 2, 8, 2, 2)


def test_strip_replaces_the_space_to_depth_layer_with_standard_layers():
    model = randomize_bn(yolo_passthrough())
    assert any(isinstance(layer, SpaceToDepth) for layer in model.layers)
    x = sample_input(model)
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    assert {type(layer).__module__.split(".")[0] for layer in compact.layers} == {"keras"}
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4


def test_space_to_depth_needs_static_divisible_shapes():
    with pytest.raises(ValueError, match=r"block_size=2 .*Received: x.shape=\(None, 5, 4, 3\)"):
        space_to_depth(keras.Input((5, 4, 3)), 2, name="s2d")
