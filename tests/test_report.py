"""Report: params and MACs by hand, compression ratios, table and JSON."""

import json
import re
import warnings

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tfcompress.metrics import count_macs, layer_stats


def test_macs_by_hand():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="c")(inp)  # 8*8*4 * 3*3*3 = 6912
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)  # 8*8*4*9 = 2304
    x = layers.SeparableConv2D(5, 3, strides=2, padding="same", name="sep")(x)
    # 4*4 * (9*4 + 4*5) = 896
    x = layers.Conv2DTranspose(2, 2, strides=2, name="up")(x)  # 4*4 in * 4 * 5 * 2 = 640
    x = layers.Flatten()(x)
    out = layers.Dense(3, name="fc")(x)  # 8*8*2*3 = 384
    model = keras.Model(inp, out)
    macs = {s.name: s.macs for s in layer_stats(model)}
    assert macs == {"c": 6912, "dw": 2304, "sep": 896, "up": 640, "flatten": 0, "fc": 384}
    assert count_macs(model) == 6912 + 2304 + 896 + 640 + 384


def _macs_of(input_shape, layer):
    inputs = keras.Input(input_shape)
    return count_macs(keras.Model(inputs, layer(inputs)))


def test_macs_of_channels_first_convs_and_attention_by_hand():
    """channels_first convs read their channels from axis 1 (they were counted with the
    last spatial axis as channels: 10368 for 3888); attention scores run along
    attention_axes only, and a separate key= input is projected at its own width."""
    first = {"data_format": "channels_first"}
    assert _macs_of((3, 8, 8), layers.Conv2D(4, 3, **first)) == 6 * 6 * 9 * 3 * 4
    assert _macs_of((3, 10), layers.Conv1D(4, 3, **first)) == 8 * 3 * 3 * 4
    assert _macs_of((3, 4, 4), layers.Conv2DTranspose(5, 3, **first)) == 16 * 9 * 3 * 5
    x = keras.Input((3, 5, 8))  # attention along axis 2: the 3 rows are batch-like
    mha = layers.MultiHeadAttention(2, 4, attention_axes=(2,))
    projections = 15 * 8 * 8 * 3 + 15 * 8 * 8  # query, key, value; output
    assert count_macs(keras.Model(x, mha(x, x))) == projections + 15 * 5 * 2 * (4 + 4)
    q, v, k = keras.Input((5, 8)), keras.Input((6, 6)), keras.Input((6, 3))
    mha = layers.MultiHeadAttention(2, 4)
    by_hand = (5 * 8 * 8) + (6 * 3 * 8) + (6 * 6 * 8) + (5 * 8 * 8) + 5 * 6 * 2 * 8
    assert count_macs(keras.Model([q, v, k], mha(q, v, key=k))) == by_hand  # 1552


@pytest.mark.parametrize("keywords", [False, True])
def test_attention_macs_read_query_and_value_by_argument_name(keywords):
    # with an attention mask among the inputs, the mask's shape was read as the query's
    # or the value's (a keyword call: 9,216; keras_hub's BERT: 0, and its compact model
    # more than the original)
    q, mask = keras.Input((8, 16)), keras.Input((8, 8), dtype="bool")
    mha = layers.MultiHeadAttention(4, 4, name="mha")
    y = mha(query=q, value=q, attention_mask=mask) if keywords else mha(q, q, attention_mask=mask)
    # query, key, value and output projections 4 x 8*16*4*4; scores 8*8*4*(4+4)
    assert count_macs(keras.Model([q, mask], y)) == 4 * 2048 + 2048


def test_report_ratios_structured_and_unstructured():
    inp = keras.Input((16,))
    model = keras.Model(inp, layers.Dense(4)(layers.Dense(32, activation="relu")(inp)))
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    with pytest.raises(ValueError, match=r"report: compressed model '.*' has channels masked "
                       r"off \(\['dense.*_mask'\]\) but still holds and computes them"):
        tfc.report(model, masked)  # its ratio read ~1x: every channel is still there
    rep = tfc.report(model, tfc.strip(masked))
    t = rep.totals()
    assert t["params_before"] == 16 * 32 + 32 + 32 * 4 + 4
    assert t["params_after"] == 16 * 16 + 16 + 16 * 4 + 4
    assert t["mac_ratio"] == (16 * 32 + 32 * 4) / (16 * 16 + 16 * 4)
    assert np.isclose(t["compression_ratio"], 1 / (1 - t["weight_sparsity"]))
    data = json.loads(rep.to_json())
    assert {r["layer"] for r in data["layers"]} == {layer.name for layer in model.layers[1:]}
    # biases start at zero, so the nonzero counts are the kernels: 16*32 + 32*4 before,
    # 16*16 + 16*4 after; the parameter ratio is the real counts' (it read 676 / 320)
    assert "params 676 -> 340 (1.99x), nonzero 640 -> 320 (2.00x)" in rep.table()
    assert "compression 1.99x, weight sparsity 0.497 (336 parameters removed, 0 zeroed)" in (
        rep.table()
    )

    sparse = tfc.wrap(model, method="magnitude")
    tfc.prune(sparse, ratio=0.8)
    t = tfc.report(model, tfc.strip(sparse)).totals()
    assert t["params_after"] == t["params_before"]
    assert t["nonzero_params_after"] < 0.3 * t["params_before"]
    assert t["compression_ratio"] > 3.0


def _conv_bn_net(name="net"):
    """Untrained: its conv and dense biases, BatchNorm betas and moving means are zero."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(name="bn1")(x))
    x = layers.Conv2D(16, 3, padding="same", name="c2")(x)
    x = layers.ReLU()(layers.BatchNormalization(name="bn2")(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4, name="fc")(x), name=name)


def test_a_model_against_itself_reads_1x_and_no_sparsity():
    # zeros the original already held (biases, betas, moving means: 76 of 1,556) were
    # counted as compressed: 1.05x and sparsity 0.049 for two identical models
    model = _conv_bn_net()
    t = tfc.report(model, model).totals()
    assert t["compression_ratio"] == 1.0 and t["weight_sparsity"] == 0.0
    assert t["nonzero_params_before"] == t["params_before"] - 76
    assert t["params_ratio"] == t["nonzero_ratio"] == 1.0 and t["zeroed_params"] == 0
    assert "compression 1.00x, weight sparsity 0.000 (0 parameters removed, 0 zeroed)" in str(
        tfc.report(model, model)
    )


def test_the_ratio_of_a_stripped_model_is_its_real_parameter_count():
    model = _conv_bn_net()
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    t = tfc.report(model, compact).totals()
    assert t["compression_ratio"] == model.count_params() / compact.count_params()
    assert t["params_ratio"] == model.count_params() / compact.count_params()
    assert t["weight_sparsity"] == 1 - compact.count_params() / model.count_params()
    assert t["zeroed_params"] == 0  # removed channels are not zeros; kept zero biases neither


def test_magnitude_counts_only_the_weights_it_zeroed():
    model = _conv_bn_net()
    sparse = tfc.wrap(model, method="magnitude")
    tfc.prune(sparse, ratio=0.8)
    compact = tfc.strip(sparse)
    zeros = [int(np.sum(w == 0)) for w in compact.get_weights()]
    zeros_before = [int(np.sum(w == 0)) for w in model.get_weights()]
    pruned = sum(zeros) - sum(zeros_before)  # the kernels' weights set to zero
    assert pruned > 0.7 * sum(model.get_layer(n).kernel.shape.num_elements()
                              for n in ("c1", "c2", "fc"))
    t = tfc.report(model, compact).totals()
    assert t["compression_ratio"] == t["params_before"] / (t["params_before"] - pruned)
    assert t["params_ratio"] == 1.0
    assert t["zeroed_params"] == pruned
    assert t["nonzero_params_before"] - t["nonzero_params_after"] == pruned
    assert t["nonzero_ratio"] == t["nonzero_params_before"] / t["nonzero_params_after"]


def test_unrelated_models_warn_that_layers_pair_by_name():
    original = _conv_bn_net("a")
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, layers.Dense(4, name="head")(layers.Flatten()(inputs)), name="b")
    with pytest.warns(UserWarning, match=r"report: only 0 of the 8 layers of the original "
                      r"model 'a' have a partner in the compressed model 'b'\. The report "
                      r"pairs layers by name"):
        rows = tfc.report(original, other).rows()
    assert all(r["shape_after"] is None for r in rows)  # every row "gone": hence the warning
    masked = tfc.wrap(original)
    tfc.prune(masked, ratio=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tfc.report(original, tfc.strip(masked))  # its own compact version: no warning
    assert not [w for w in caught if "report:" in str(w.message)]


class _Block(keras.layers.Layer):
    """A composite layer (seen through by the graph): its parts are named alike in every
    instance, so the compact model renames the second block's parts."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.up = layers.Dense(units, activation="relu", name="up")
        self.down = layers.Dense(8, name="down")
        self.norm = layers.LayerNormalization(name="norm")

    def call(self, x):
        return self.norm(x + self.down(self.up(x)))


def test_rows_pair_composite_parts_by_position_and_count_both_param_totals():
    inp = keras.Input((8,))
    x = _Block(32, name="block0")(inp)
    x = _Block(16, name="block1")(x)
    model = keras.Model(inp, layers.Dense(3, name="head")(x))
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    rows = tfc.report(model, compact).rows()
    widths = (8 * 32 + 32, 8 * 16 + 16)  # the blocks' first Dense layers
    ups = [r for r in rows if r["class"] == "Dense" and r["params_before"] in widths]
    # each block's first Dense against its own compact copy, not the first block's
    assert [(r["params_before"], r["params_after"]) for r in ups] == [
        (8 * 32 + 32, 8 * 16 + 16),
        (8 * 16 + 16, 8 * 8 + 8),
    ]
    assert sum(r["params_after"] for r in rows) == compact.count_params()
    # the LayerNormalizations keep every parameter (beta starts at zero: nonzero counts
    # 8 of 16 before and after), so they are not listed as changed
    norms = [r for r in rows if r["class"] == "LayerNormalization"]
    assert [(r["params_before"], r["params_after"]) for r in norms] == [(16, 16), (16, 16)]
    assert all(r["nonzero_params_before"] == r["nonzero_params_after"] == 8 for r in norms)
    changed = tfc.report(model, compact).table(only_changed=True)
    assert "LayerNormalization" not in changed and changed.count("Dense") >= 2


def _sequence_model(length):
    tokens = keras.Input((length, 8))
    x = layers.Dense(16, name="embed")(tokens)
    x = layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = layers.Dense(4, name="out")(x)
    return keras.Model(tokens, x)


def test_sequence_models_count_macs_at_a_length_and_say_which():
    any_length = _sequence_model(None)
    fixed = _sequence_model(10)
    fixed.set_weights(any_length.get_weights())
    at_10 = tfc.report(fixed, fixed)
    assert at_10.sequence_length is None and at_10.length_note() == ""
    given = tfc.report(any_length, any_length, sequence_length=10)
    assert given.totals()["macs_before"] == at_10.totals()["macs_before"] > 0
    assert [r.macs for r in given.before] == [r.macs for r in at_10.before]
    assert "MACs at sequence length 10 (given)" in given.table()
    # Unknown length: counted per token (length 1): the Dense layers' MACs per token.
    per_token = tfc.report(any_length, any_length)
    macs = {r.name: r.macs for r in per_token.before}
    assert (macs["embed"], macs["out"]) == (8 * 16, 16 * 4)
    assert per_token.totals()["sequence_length_source"] == "unknown"
    assert "MACs per token" in per_token.table()


def test_the_length_comes_from_the_model_input_when_an_inner_shape_loses_it():
    tokens = keras.Input((6, 8))
    x = layers.Dense(16, name="embed")(tokens)
    x = layers.Lambda(lambda t: t, output_shape=(None, 16), name="unknown")(x)
    model = keras.Model(tokens, layers.Dense(4, name="out")(x))
    assert model.get_layer("out").output.shape[1] is None
    rep = tfc.report(model, model)
    assert {r.name: r.macs for r in rep.before}["out"] == 6 * 16 * 4
    assert "MACs at sequence length 6 (from the model's input shape)" in rep.table()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, np.bool_(True), "10", np.float64(16)])
def test_a_bad_sequence_length_is_refused(bad):
    model = _sequence_model(None)
    with pytest.raises(ValueError, match=re.escape(
            f"sequence_length must be an integer >= 1 or None. Received: sequence_length={bad!r}")):
        tfc.report(model, model, sequence_length=bad)


@pytest.mark.parametrize("length", [np.int64(10), np.int32(10), np.uint8(10)])
def test_a_numpy_integer_sequence_length_counts_as_the_int(length):
    # np.int64(16) (a length read off an array) was refused while 16 was taken
    model = _sequence_model(None)
    given = tfc.report(model, model, sequence_length=length)
    assert given.totals() == tfc.report(model, model, sequence_length=10).totals()
    assert type(given.sequence_length) is int and given.sequence_length == 10
    json.dumps(given.totals())  # a Python int: the totals stay JSON
    macs = count_macs(model, sequence_length=length)
    assert macs == count_macs(model, sequence_length=10) and type(macs) is int
    for bad in (True, 0, "10"):  # counted at any value, even True (as 1) and "10"
        with pytest.raises(ValueError, match=re.escape(
                f"sequence_length must be an integer >= 1 or None. Received: "
                f"sequence_length={bad!r}")):
            count_macs(model, sequence_length=bad)


def test_macs_of_recurrent_and_time_distributed_layers_by_hand():
    """Per step, each gate multiplies the input by its kernel and the state by its
    recurrent kernel (SimpleRNN 1 gate, GRU 3, LSTM 4); a ConvLSTM convolves both at every
    output position; a Bidirectional is its two layers; a TimeDistributed its layer per step."""
    assert _macs_of((5, 8), layers.SimpleRNN(6)) == 5 * 1 * 6 * (8 + 6)
    assert _macs_of((5, 8), layers.GRU(6, return_sequences=True)) == 5 * 3 * 6 * (8 + 6)
    assert _macs_of((5, 8), layers.LSTM(6)) == 5 * 4 * 6 * (8 + 6)
    assert _macs_of((5, 8), layers.Bidirectional(layers.LSTM(6))) == 2 * 5 * 4 * 6 * (8 + 6)
    assert _macs_of((5, 8, 8, 2), layers.ConvLSTM2D(4, 3)) == 5 * 6 * 6 * 9 * 4 * 4 * (2 + 4)
    assert _macs_of((5, 8), layers.TimeDistributed(layers.Dense(4))) == 5 * 8 * 4
    conv = layers.TimeDistributed(layers.Conv2D(4, 3))
    assert _macs_of((5, 8, 8, 2), conv) == 5 * 6 * 6 * 9 * 2 * 4


def test_an_rnn_of_a_cell_of_its_own_is_named_as_not_counted():
    inputs = keras.Input((5, 8))
    x = layers.TimeDistributed(layers.Dense(4), name="per_step")(inputs)
    x = layers.RNN(layers.LSTMCell(6), name="own_cell")(x)
    model = keras.Model(inputs, layers.Dense(2, name="head")(x))
    rep = tfc.report(model, model)
    assert rep.totals()["macs_not_counted"] == ["own_cell"]  # (0 MACs, silently)
    assert "MACs not counted (an RNN of a cell of its own): ['own_cell']" in rep.table()
    assert rep.totals()["macs_before"] == 5 * 8 * 4 + 6 * 2  # TimeDistributed and head
