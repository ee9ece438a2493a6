"""Recurrent layers (`tfcompress.graph.recurrent_rules`): the layers in front of a
SimpleRNN, GRU, LSTM, ConvLSTM2D or Bidirectional prune (its kernel loses their rows), its
units, states and Keras masks are kept, and the compact model computes what the masked
one does."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.graph import DependencyGraph

from .parity import max_rel_error, outputs, prune_with_parity, taylor_fit_with_parity

L = keras.layers


def _seq(width=16):
    x = keras.Input((10, 4), name="x")
    return x, L.Conv1D(width, 3, padding="same", activation="relu", name="front")(x)


def simple_rnn():
    x, h = _seq()
    return keras.Model(x, L.Dense(3)(L.SimpleRNN(8, name="rnn")(h)))


def gru_sequences():
    x, h = _seq()
    return keras.Model(x, L.Dense(3)(L.GRU(8, return_sequences=True, name="rnn")(h)))


def lstm():
    x, h = _seq()
    return keras.Model(x, L.Dense(3)(L.LSTM(8, name="rnn")(h)))


def bidirectional_lstm():
    x, h = _seq()
    return keras.Model(x, L.Dense(3)(L.Bidirectional(L.LSTM(8), name="rnn")(h)))


def bidirectional_gru_sum():
    x, h = _seq()
    rnn = L.Bidirectional(L.GRU(8, return_sequences=True), merge_mode="sum", name="rnn")
    return keras.Model(x, L.Dense(3)(rnn(h)))


def lstm_states():
    """return_state, and initial states made by layers of the model (pinned: units)."""
    x, h = _seq()
    first, h_state, c_state = L.LSTM(8, return_sequences=True, return_state=True,
                                     name="rnn")(h)  # fmt: skip
    second = L.LSTM(8, name="rnn2")(L.Dense(12, name="mid")(first),
                                    initial_state=[h_state, c_state])  # fmt: skip
    return keras.Model(x, L.Dense(3)(L.Concatenate()([second, c_state])))


def embedding_mask_lstm():
    """A Keras mask from Embedding(mask_zero=True) passes the mask layers to the LSTM."""
    x = keras.Input((10,), dtype="int32", name="ids")
    h = L.Embedding(50, 16, mask_zero=True, name="front")(x)
    return keras.Model(x, L.Dense(3)(L.LSTM(8, name="rnn")(h)))


def conv_lstm():
    x = keras.Input((4, 8, 8, 3), name="clip")
    h = L.Conv3D(8, (1, 3, 3), activation="relu", name="front")(x)
    h = L.ConvLSTM2D(4, 3, name="rnn")(h)
    return keras.Model(x, L.Dense(3)(L.GlobalAveragePooling2D()(h)))


MODELS = {f.__name__: f for f in (simple_rnn, gru_sequences, lstm, bidirectional_lstm,
                                  bidirectional_gru_sum, lstm_states, embedding_mask_lstm,
                                  conv_lstm)}  # fmt: skip


def _input(model):
    if model.inputs[0].dtype == "int32":
        ids = np.random.default_rng(0).integers(1, 50, (2, 10))
        ids[0, 7:] = 0  # padding, masked
        return ids
    shape = [2, *model.inputs[0].shape[1:]]
    return np.random.default_rng(0).uniform(0, 1, shape).astype("float32")


def _kernels(model, name):
    return [w for w in model.get_layer(name).weights if w.name == "kernel"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_layers_in_front_prune_and_the_units_stay(name):
    model = MODELS[name]()
    masked, compact, x = prune_with_parity(model, 0.5, x=_input(model), method="l1_filter")
    assert compact.count_params() < model.count_params()
    before, after = _kernels(model, "rnn"), _kernels(compact, "rnn")
    assert len(after) == len(before) >= 1
    for b, a in zip(before, after):
        axis = -2 if len(b.shape) > 2 else 0
        assert a.shape[axis] == b.shape[axis] // 2  # the front's 16 channels: 8 kept
        assert a.shape[-1] == b.shape[-1]  # every unit (all gates) kept
    shapes = [tuple(t.shape) for t in keras.tree.flatten(model.get_layer("rnn").output)]
    assert [tuple(t.shape) for t in keras.tree.flatten(compact.get_layer("rnn").output)] == shapes


def test_factors_of_the_masks_fold_into_both_kernels_of_a_bidirectional():
    """A mask's factor on a kept channel that is not 1 (a gate, a soft selection) moves
    into the kernel rows of the layer reading it: the forward and the backward one."""
    model = bidirectional_lstm()
    x = _input(model)
    masked = tfc.wrap(model, "l1_filter")
    (mask,) = [layer for layer in masked.layers if isinstance(layer, tfc.layers.ChannelMask)]
    factors = np.linspace(0.6, 1.5, 16).astype("float32")
    factors[::3] = 0.0  # pruned
    mask.mask.assign(factors)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-5
    kept = np.nonzero(factors)[0]
    for kernel in _kernels(compact, "rnn"):
        assert kernel.shape[0] == len(kept)


def test_units_states_and_masks_are_pinned_by_name():
    graph = DependencyGraph(lstm_states())
    assert "LSTM units (fed back into the recurrence)" in {g.pinned_by for g in graph.groups}
    assert [g.size for g in graph.prunable_groups] == [16, 12]  # front, mid
    x, h = _seq()
    state = L.Dense(8, name="state")(L.GlobalAveragePooling1D()(h))  # made for the LSTM
    graph = DependencyGraph(keras.Model(x, L.LSTM(8)(h, initial_state=[state, state])))
    (made,) = [g for g in graph.groups if any(m.layer.name == "state" for m in g.layers("out"))]
    assert made.pinned_by == "LSTM initial states or Keras mask"
    graph = DependencyGraph(embedding_mask_lstm())
    assert [g.size for g in graph.prunable_groups] == [16]  # the embedding's width


def test_a_subclass_keeps_its_input_whole():
    """A subclass may read its input otherwise (its own `call`): its input is pinned, named."""

    class MyLSTM(L.LSTM):
        pass

    x, h = _seq()
    graph = DependencyGraph(keras.Model(x, L.Dense(3)(MyLSTM(8, name="rnn")(h))))
    (front,) = [g for g in graph.groups if any(m.layer.name == "front" for m in g.layers("out"))]
    assert not front.prunable
    assert front.pinned_by == "MyLSTM: not a known recurrent layer"


def test_taylor_in_fit_through_an_lstm():
    """Taylor importance of the channels an LSTM reads, accumulated in fit, pruned by the
    callback, stripped exactly."""
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (32, 10, 4)).astype("float32"), rng.integers(0, 3, 32)
    _, compact = taylor_fit_with_parity(lstm(), x, y, step=4)
    assert _kernels(compact, "rnn")[0].shape[0] == 8
