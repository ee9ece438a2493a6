"""The shortcuts that make wrap / strip fast change nothing a user sees: the copies'
weights are the originals' (created holding them: no random draw, no second write), their
configs keep the original initializers, a wrapper's own weights keep theirs, and the
vectorised channel grouping makes the groups their per-channel definition makes, and a
wrapped model is traced once for prune and strip (`tfcompress.graph.memo`) but again
whenever its graph could differ. Timings are in benchmarks/prune_time.py, not here."""

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tests.topologies import TOPOLOGIES
from tfcompress import methods
from tfcompress.graph import dependency, registered_rule
from tfcompress.graph.memo import graph_for
from tfcompress.graph.rules import Channelwise, unwrap


def _model():
    inp = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(8, 3, kernel_initializer="he_normal", bias_initializer="ones")(inp)
    x = layers.BatchNormalization(gamma_initializer="random_uniform")(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(6, 3, name="conv_b")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(4, kernel_initializer="orthogonal")(x))


def _by_name(model):
    return {unwrap(layer).name: layer for layer in model.layers}


def test_copies_keep_weights_and_initializer_configs():
    model = _model()
    for method in ("l1_filter", "magnitude"):
        copies = _by_name(tfc.wrap(model, method))
        for layer in model.layers[1:]:
            copy = unwrap(copies[layer.name])
            assert copy.get_config() == layer.get_config(), layer.name
            for a, b in zip(layer.get_weights(), copy.get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)
    masked = tfc.wrap(model, "magnitude")
    for layer in masked.layers:
        if isinstance(layer, tfc.layers.WeightMask):  # the wrapper's own masks: ones
            assert all(np.all(np.asarray(m) == 1) for m in layer.masks.values())
    masked = tfc.wrap(model)
    compact = tfc.strip(masked)  # nothing pruned: the same layers and weights again
    for layer in model.layers[1:]:
        copy = compact.get_layer(layer.name)
        assert copy.get_config() == layer.get_config(), layer.name
        for a, b in zip(layer.get_weights(), copy.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_wrap_and_strip_write_no_weight_twice(monkeypatch):
    """Every copied weight is created holding its value (`rebuild(weights_of=)`): no
    weight of the copies is assigned afterwards -- only prune writes (the masks)."""
    writes = []
    assign = keras.Variable.assign
    monkeypatch.setattr(
        keras.Variable, "assign", lambda var, value: writes.append(var.path) or assign(var, value)
    )
    model = _model()
    masked = tfc.wrap(model)
    assert writes == []
    tfc.prune(masked, ratio=0.5)
    assert sorted(writes) == ["conv2d_mask/mask", "conv_b_mask/mask"]
    writes.clear()
    tfc.strip(masked)
    tfc.wrap(model, "magnitude")
    assert writes == []


def _reference_groups(graph):
    """Groups by their definition, one channel at a time: the components touching the
    same tensors, numbered by their first component met (tensors in order, components
    ascending), channels in the order of their first position; the first pinned
    channel names the reason."""
    pinned, tensors, first_pos = {}, {}, {}
    for key, reason in graph._coupler.pins.items():
        for c in np.unique(graph.component_of[key]).tolist():
            pinned.setdefault(c, reason)
    for key in graph.shapes:
        comps, first = np.unique(graph.component_of[key], return_index=True)
        for c, p in zip(comps.tolist(), first.tolist()):
            tensors.setdefault(c, []).append(key)
            first_pos.setdefault(c, p)
    by_tensors = {}
    for c, keys in tensors.items():
        by_tensors.setdefault(tuple(keys), []).append(c)
    out = []
    for keys, comps in by_tensors.items():
        comps = sorted(comps, key=first_pos.get)
        reasons = [pinned[c] for c in comps if c in pinned]
        out.append((comps, list(keys), reasons[0] if reasons else ""))
    return out


@pytest.mark.parametrize("name", ["inception_concat", "flatten_dense", "yolo_passthrough"])
def test_groups_match_their_per_channel_definition(name):
    model = TOPOLOGIES[name]()
    for graph in (tfc.DependencyGraph(model), tfc.DependencyGraph(tfc.wrap(model))):
        expected = _reference_groups(graph)
        got = [(g.components.tolist(), g.tensors, g.pinned_by) for g in graph.groups]
        assert got == expected
        for g in graph.groups:
            assert g.prunable == (not g.pinned_by)
            groups, ranks = graph.component_channels(g.components)
            assert (groups == g.index).all() and ranks.tolist() == list(range(g.size))
            for key in g.tensors:  # where the group's channels sit on each tensor
                of_key, ranks_of_key = graph.group_channels(key)
                imap = graph._index_maps(key)[g.index]
                positions = np.nonzero(of_key == g.index)[0]
                assert imap.positions.tolist() == positions.tolist()
                assert imap.channels.tolist() == ranks_of_key[positions].tolist()


def _traces(monkeypatch):
    """The names of the models `DependencyGraph` traces from now on."""
    names, trace = [], dependency.trace

    def counted(model, keep=()):
        names.append(model.name)
        return trace(model, keep)

    monkeypatch.setattr(dependency, "trace", counted)
    return names


def test_prune_and_strip_trace_a_wrapped_model_once(monkeypatch, tmp_path):
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    masked = tfc.wrap(_model())
    traced = _traces(monkeypatch)
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    assert traced == [masked.name]  # strip reused the graph prune traced
    graph = methods.graph_of(masked)
    assert compact.get_layer("conv_b").filters == 3
    np.testing.assert_allclose(masked(x), compact(x), rtol=1e-5, atol=1e-6)
    # a new rule table or another exclude list: traced again, and remembered
    with registered_rule(keras.layers.ReLU, Channelwise()):
        assert methods.graph_of(masked) is not graph
    assert graph_for(masked, exclude=["conv_b"]).exclude == ("conv_b",)
    assert len(traced) == 3
    again = methods.graph_of(masked)  # the table is the old one again: traced once more
    assert methods.graph_of(masked) is again and len(traced) == 4
    # the memo is no part of the model: it saves and loads as before
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path)(x), masked(x), rtol=1e-6)


def test_a_model_wrap_did_not_make_is_traced_every_time(monkeypatch, tmp_path):
    """No model a caller made is written to: a masked Sequential built by hand (which
    `add` may rewire) and a wrapped model loaded from a file are traced at each call."""
    path = str(tmp_path / "masked.keras")
    tfc.wrap(_model()).save(path)
    loaded = keras.saving.load_model(path)
    model = keras.Sequential([keras.Input((6,)), layers.Dense(4), tfc.layers.ChannelMask(4)])
    traced = _traces(monkeypatch)
    first = methods.graph_of(model)
    model.add(layers.Dense(3))
    assert methods.graph_of(model).traced.output_keys != first.traced.output_keys
    assert not any(k.startswith("_tfcompress") for k in vars(model))
    assert methods.graph_of(loaded) is not methods.graph_of(loaded)
    assert len(traced) == 4


@pytest.mark.parametrize("method", ["l1_filter", "soft_topk"])
def test_strip_folds_only_factors_other_than_one(method):
    """Binary masks keep channels with factor 1: strip folds nothing into the next kernel
    (`_ones_where_kept`); a soft top-k mask that is not hard yet has other factors, which
    it folds. The compact model computes what the masked one does either way."""
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 3)).astype("float32")
    masked = tfc.wrap(_model(), method)
    tfc.prune(masked, ratio=0.5, criterion="l1_filter")
    masks = [layer for layer in masked.layers if isinstance(layer, tfc.layers.ChannelMask)]
    for mask in masks:
        if method == "soft_topk":  # a soft selection: factors in (0, 1)
            mask.keep.assign(mask.units - 1.0)
        scale = np.asarray(mask.channel_scale())[mask.kept()]
        assert np.all(scale == 1) == (method == "l1_filter")
    compact = tfc.strip(masked)  # soft_topk keeps >= 8 channels: these layers whole
    assert compact.get_layer("conv_b").filters == (3 if method == "l1_filter" else 6)
    np.testing.assert_allclose(masked(x), compact(x), rtol=1e-5, atol=1e-6)
