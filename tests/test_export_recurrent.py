"""Compact recurrent models export to TFLite (`tfcompress.export.unroll`): their recurrent
layers are unrolled in the converted copy, the file runs any batch in LiteRT and matches
the Keras model; over a sequence of unknown length the export is refused by name."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.export.unroll import unrolled_copy

from .parity import max_rel_error, outputs
from .test_recurrent import MODELS, _input
from .test_time_distributed import cnn_lstm

L = keras.layers
EXPORTED = {name: MODELS[name] for name in ("lstm", "bidirectional_gru_sum", "conv_lstm")}
EXPORTED["cnn_lstm"] = cnn_lstm


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_a_compact_recurrent_model_runs_in_litert(name, tmp_path):
    model = EXPORTED[name]()
    masked = tfc.wrap(model, "l1_filter")
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    x = np.concatenate([_input(model)] * 2)  # batch 4
    check = tfc.export.tflite(compact, str(tmp_path / "m.tflite"), check_data=x)
    assert check.max_rel_error <= 1e-5
    assert check.output_shapes[0][0] == 4


def test_the_unrolled_copy_computes_the_same_with_the_same_weights():
    model = MODELS["bidirectional_lstm"]()
    copy = unrolled_copy(model)
    rnn = copy.get_layer("rnn")
    assert rnn.forward_layer.unroll and rnn.backward_layer.unroll
    assert not model.get_layer("rnn").forward_layer.unroll  # the model is left as it was
    x = _input(model)
    assert max_rel_error(outputs(model, x), outputs(copy, x)) <= 1e-6
    assert unrolled_copy(copy) is copy  # nothing left to unroll
    dense = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    assert unrolled_copy(dense) is dense


def test_a_sequence_of_unknown_length_is_refused_by_name(tmp_path):
    x = keras.Input((None, 4))
    model = keras.Model(x, L.Dense(3)(L.GRU(8, name="gru")(L.Dense(16)(x))))
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=r"TFLite cannot run the recurrent layer\(s\) \['gru'\] "
                       r"of '.*' as they are .* only over a known sequence length: build the "
                       r"model on inputs of a fixed length"):  # fmt: skip
        tfc.export.tflite(model, str(path), check_data=np.zeros((1, 5, 4), "float32"))
    assert not path.exists()
