"""Rules for the keras.ops layers of functional models: `keras.ops.pad`, `keras.ops.split`,
`x[...]` (Pad, Split, GetItem), and Permute: each topology prunes with parity."""

import re

import keras
import numpy as np
import pytest
from keras import layers, ops

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input
from tests.topologies import cbr, randomize_bn

_PAD_HW = [[0, 0], [1, 1], [1, 1], [0, 0]]


def _prunes_with_parity(model, ratio=0.5):
    """wrap -> prune -> strip; returns the compact model after checking parity."""
    model = randomize_bn(model)
    x = sample_input(model)
    masked = tfc.wrap(model, method="l1_filter")
    assert max_rel_error(outputs(model, x), outputs(masked, x)) <= 1e-6
    tfc.prune(masked, ratio=ratio)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.count_params() < model.count_params()
    return compact


def _head(x, classes=5):
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(classes, name="logits")(x)


def _group_of(model, producer):
    """The first graph group whose channels `producer` makes."""
    graph = tfc.DependencyGraph(model)
    return [g for g in graph.groups if producer in {m.layer.name for m in g.layers("out")}]


def _ops(model, cls_name):
    return [op for op in model.operations if type(op).__name__ == cls_name]


def test_resnet_v2_with_explicit_pad_prunes():
    """Pre-activation blocks whose 3x3 convs read `keras.ops.pad`ded activations."""
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, padding="same", name="stem")(inp)
    for i, (filters, strides) in enumerate(((16, 1), (32, 2))):
        pre = layers.ReLU()(layers.BatchNormalization()(x))
        if strides == 1:
            shortcut = x
        else:
            shortcut = layers.Conv2D(filters, 1, strides=strides, name=f"proj{i}")(pre)
        y = ops.pad(pre, _PAD_HW)
        y = layers.Conv2D(filters, 3, strides=strides, padding="valid", name=f"a{i}")(y)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = ops.pad(y, _PAD_HW)
        y = layers.Conv2D(filters, 3, padding="valid", name=f"b{i}")(y)
        x = layers.Add()([shortcut, y])
    x = layers.ReLU()(layers.BatchNormalization()(x))
    model = keras.Model(inp, _head(x))
    graph = tfc.DependencyGraph(model)
    pruned_by_pad = {m.layer.name for g in graph.prunable_groups for m in g.layers("out")}
    assert {"a0", "a1"} <= pruned_by_pad  # the padded tensors' producers are prunable
    compact = _prunes_with_parity(model)
    assert compact.get_layer("a0").filters < 16
    assert len(_ops(compact, "Pad")) == 4


def test_pad_along_the_channel_axis_pins():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [2, 0]])
    model = keras.Model(inp, _head(layers.Conv2D(4, 1, name="next")(x)))
    (group,) = _group_of(model, "conv")
    assert not group.prunable and group.pinned_by == "pad along the channel axis"


def test_csp_channel_split_prunes():
    """CSP: split the channels in two halves, a conv on each, concatenate."""
    inp = keras.Input((12, 12, 3))
    x = cbr(inp, 16, name="stem")
    a, b = ops.split(x, 2, axis=-1)
    a = cbr(a, 8, name="left")
    b = cbr(cbr(b, 8, name="right1"), 8, name="right2")
    x = layers.Concatenate()([a, b])
    x = cbr(x, 16, kernel=1, name="fuse")
    model = keras.Model(inp, _head(x))
    halves = _group_of(model, "stem")
    assert [g.size for g in halves] == [8, 8]  # each half is its own group
    compact = _prunes_with_parity(model)
    (split,) = _ops(compact, "Split")
    assert compact.get_layer("stem").filters < 16
    assert list(split.indices_or_sections) == [compact.get_layer("stem").filters // 2]


def test_csp_split_with_ops_concatenate_prunes():
    inp = keras.Input((8, 8, 3))
    a, b = ops.split(cbr(inp, 12, name="stem"), 2, axis=-1)
    x = ops.concatenate([cbr(a, 6, name="left"), b], axis=-1)
    compact = _prunes_with_parity(keras.Model(inp, _head(cbr(x, 8, kernel=1))))
    assert compact.get_layer("left").filters == 3


def test_uneven_split_prunes_each_part():
    inp = keras.Input((8, 8, 3))
    x = cbr(inp, 12, name="stem")
    a, b, c = ops.split(x, [2, 8], axis=-1)
    x = layers.Concatenate()([cbr(a, 4), cbr(b, 6), cbr(c, 4)])
    compact = _prunes_with_parity(keras.Model(inp, _head(x)))
    (split,) = _ops(compact, "Split")
    assert [tuple(t.shape)[-1] for t in split._inbound_nodes[0].outputs] == [1, 3, 2]


def test_getitem_channel_slice_prunes():
    inp = keras.Input((12, 12, 3))
    x = cbr(inp, 16, name="stem")
    middle = x[..., 4:12]
    first = x[:, :, :, :4]
    crop = x[:, 1:-1, 1:-1]  # spatial only: channelwise
    y = layers.Concatenate()([cbr(middle, 8), cbr(first, 4)])
    y = layers.Add()([y[:, 1:-1, 1:-1, :], cbr(crop, 12)])
    model = keras.Model(inp, _head(y))
    compact = _prunes_with_parity(model)
    assert compact.get_layer("stem").filters < 16


def test_getitem_that_drops_or_strides_channels_pins():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(inp)
    strided = x[..., ::2]
    single = x[..., 0:1] + x[..., 3][..., None]
    x = layers.Concatenate()([strided, single])
    model = keras.Model(inp, _head(layers.Conv2D(4, 1)(x)))
    groups = _group_of(model, "conv")
    assert {(g.prunable, g.pinned_by) for g in groups} == {(False, "index along the channel axis")}


def test_permute_keeping_the_channel_axis_last_is_channelwise():
    inp = keras.Input((8, 4, 3))
    x = cbr(inp, 8, name="conv")
    x = layers.Permute((2, 1, 3))(x)
    model = keras.Model(inp, _head(x))
    compact = _prunes_with_parity(model)
    assert compact.get_layer("conv").filters == 4
    moved = keras.Model(inp, _head(layers.Permute((3, 2, 1))(cbr(inp, 8, name="c2"))))
    (group,) = _group_of(moved, "c2")
    assert not group.prunable and group.pinned_by == "permute moves the channel axis"


def test_stripped_ops_model_loads_as_plain_keras(tmp_path):
    inp = keras.Input((8, 8, 3))
    x = cbr(inp, 8, name="stem")
    a, b = ops.split(ops.pad(x, _PAD_HW), 2, axis=-1)
    x = layers.Concatenate()([cbr(a, 4), cbr(b[..., 1:4], 4)])
    model = randomize_bn(keras.Model(inp, _head(x)))
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    path = str(tmp_path / "ops.keras")
    compact.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = sample_input(model)
    np.testing.assert_allclose(outputs(loaded, x)[0], outputs(compact, x)[0], rtol=1e-5)


def test_a_merge_layer_with_a_scalar_input_or_output_prunes():
    """A layer with the Merge rule (keras.applications' CustomScaleLayer: `a + scale * b`)
    on a rank-0 tensor: the scalar broadcasts and is left alone (as op_rules.Broadcast
    leaves it), a scalar output couples nothing; the channels of c1 stay prunable. (Keras's
    own Add/Subtract/... refuse a rank-0 input when called.)"""
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    m = ops.mean(x)  # rank 0
    s = CustomScaleLayer(0.5, name="scalar_out")([m, m])  # rank-0 output
    y = CustomScaleLayer(0.5, name="scalar_in")([y, s])  # y + 0.5 * s
    y = layers.Conv2D(6, 3, padding="same", name="c2")(layers.ReLU()(y))
    model = keras.Model(x, _head(y))
    assert s.shape == () and y.shape[-1] == 6
    (group,) = _group_of(model, "c1")
    assert group.prunable
    compact = _prunes_with_parity(model)
    assert compact.get_layer("c1").filters == 4
    assert compact.get_layer("scalar_in").output.shape[-1] == 4


def _const_vec_model(apply):
    """conv -> `apply(x)` (a keras.ops call with an 8-entry constant) -> conv -> head."""
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inp)
    x = layers.Conv2D(6, 3, padding="same", name="next")(apply(x))
    return keras.Model(inp, _head(x))


def test_an_op_with_a_per_channel_constant_pins_its_channels():
    """`x * vec`, `ops.add(x, const)` and a Lambda of keras.ops with a per-channel constant:
    the compact model calls the op on the same 8-entry constant, so the channels are
    pinned, the reason naming the op and the constant's shape (they were prunable, and
    strip failed with Keras's broadcast error); a scalar constant leaves them prunable."""
    vec = np.linspace(0.5, 2.0, 8).astype("float32")
    cases = {
        "Multiply": lambda t: t * vec,
        "Add": lambda t: ops.add(t, ops.convert_to_tensor(vec)),
        "Lambda": layers.Lambda(lambda t: ops.multiply(t, vec[None, None, None, :])),
    }
    shapes = {"Multiply": (8,), "Add": (8,), "Lambda": (1, 1, 1, 8)}
    for name, apply in cases.items():
        model = _const_vec_model(apply)
        (group,) = _group_of(model, "conv")
        op = "Multiply" if name == "Lambda" else name
        assert not group.prunable
        assert group.pinned_by == f"{op} with a constant of shape {shapes[name]}"
        compact = _prunes_with_parity(model)
        assert compact.get_layer("conv").filters == 8
        assert compact.get_layer("next").filters == 3
    model = _const_vec_model(lambda t: t * 2.0 + 1.0)
    assert _group_of(model, "conv")[0].prunable
    assert _prunes_with_parity(model).get_layer("conv").filters == 4


def _slice_then(tail):
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(12, 3, padding="same", name="conv")(inp)
    x = x[..., 2:10]
    if tail == "reshape":
        x = layers.Conv1D(4, 1)(ops.reshape(x, (-1, 64, 8)))
    else:
        x = layers.Conv2D(4, 1)(x)
    return keras.Model(inp, layers.Dense(3)(layers.Flatten()(x)))


@pytest.mark.parametrize("tail", ["reshape", "conv"])
def test_a_channel_slice_of_a_reloaded_model_prunes_as_before_saving(tail, tmp_path):
    """Keras loads the key of a saved `x[..., 2:10]` as a list: the slice was pinned in the
    loaded model's graph while its mask, made before saving, still cut the channels, so
    strip gave a compact model of twice the batch (reshape) or failed (conv)."""
    masked = tfc.wrap(randomize_bn(_slice_then(tail)), "l1_filter")
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    loaded = keras.saving.load_model(path)
    x = sample_input(loaded)
    assert max_rel_error(outputs(masked, x), outputs(loaded, x)) == 0.0
    tfc.prune(loaded, ratio=0.5)
    compact = tfc.strip(loaded)
    assert compact.count_params() < loaded.count_params()
    assert max_rel_error(outputs(loaded, x), outputs(compact, x)) <= 1e-4


def test_a_mask_on_channels_the_graph_pins_is_refused_by_name(tmp_path, monkeypatch):
    """Should a model's graph pin channels a mask of it cuts (its layers changed after
    wrap), prune and strip refuse it, naming the mask, instead of cutting half the layers."""
    from tfcompress.graph import op_rules

    masked = tfc.wrap(_slice_then("conv"), "l1_filter")
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    monkeypatch.setattr(op_rules, "_channel_slice", lambda op: None)  # slices pinned
    loaded = keras.saving.load_model(path)
    with pytest.raises(ValueError, match=r"Mask layer '\w+' masks channels that the graph "
                       + re.escape(f"of model '{loaded.name}' pins (")):  # fmt: skip
        tfc.prune(loaded, ratio=0.5)
