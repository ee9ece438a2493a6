"""`sharing.deep_compress`: what is refused before any training (`output_path`, a workdir of
another model) and the arguments taken in more than one form (`metrics`)."""

import json
import os
import re

import keras
import numpy as np
import pytest

from tfcompress.sharing import deep_compress
from tfcompress.sharing.stages import weights_sha256

# no pruning or centroid training: a run is wrap, k-means, encode and decode of a tiny MLP
FAST = dict(densities={"fc1": 0.5}, prune_epochs=0, share_epochs=0, batch_size=16,
            compile_args={"run_eagerly": True}, verbose=0)  # fmt: skip


def _data(n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, x[:, :2].argmax(1).astype("int32")


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu", name="fc1")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))


def _never_called():
    raise AssertionError("deep_compress built its training data: it began a stage")


def test_an_output_path_that_cannot_be_written_is_refused_before_any_training(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    regular = tmp_path / "file"
    regular.write_text("")
    refused = {
        str(folder): f"output_path={str(folder)!r} is a directory, not a file: give a file "
                     f"name (e.g. {str(folder / 'result.json')!r}).",
        str(regular / "m.tfdc"): f"output_path={str(regular / 'm.tfdc')!r} cannot be "
                                 f"created: {str(regular)!r} is a file, not a directory.",
    }  # fmt: skip
    for path, message in refused.items():
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            deep_compress(_model(), _never_called, output_path=path, dense_epochs=1,
                          workdir=str(tmp_path / "work"), **FAST)  # fmt: skip
    assert sorted(os.listdir(folder)) == [] and regular.read_text() == ""
    assert not os.path.exists(tmp_path / "work")


def test_a_workdir_refuses_another_models_weights_and_resumes_the_same(tmp_path):
    args = dict(output_path=str(tmp_path / "m.tfdc"), workdir=str(tmp_path / "work"), **FAST)
    data = _data()
    first = deep_compress(_model(), data, **args)
    other = _model(seed=1)  # the same architecture, other weights
    message = (
        f"workdir={args['workdir']!r} holds the stages of a deep_compress run with other "
        f"arguments (weights_sha256: {weights_sha256(_model())!r} there, "
        f"{weights_sha256(other)!r} now). Resuming would serve stages made for those: use "
        "another folder, or delete this one to run every stage again."
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        deep_compress(other, _never_called, **args)
    again = deep_compress(_model(), _never_called, **args)  # the same weights: resumes
    assert again.stages == first.stages


def test_a_workdir_kept_before_weight_digests_still_resumes(tmp_path):
    # settings written before weights_sha256 was kept: the other settings alone compare
    args = dict(output_path=str(tmp_path / "m.tfdc"), workdir=str(tmp_path / "work"), **FAST)
    first = deep_compress(_model(), _data(), **args)
    records = tmp_path / "work" / "stages.json"
    content = json.loads(records.read_text())
    del content["settings"]["weights_sha256"]
    records.write_text(json.dumps(content))
    assert deep_compress(_model(), _never_called, **args).stages == first.stages


def test_weights_sha256_tells_weights_apart_and_not_copies():
    model = _model()
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    assert re.fullmatch(r"[0-9a-f]{64}", weights_sha256(model))
    assert weights_sha256(copy) == weights_sha256(model) != weights_sha256(_model(seed=1))


def test_metrics_may_be_one_metric_name(tmp_path):
    x, y = _data()
    result = deep_compress(_model(), (x, y), val_data=(x, y), metrics="accuracy",
                           output_path=str(tmp_path / "m.tfdc"), **FAST)  # fmt: skip
    assert [sorted(s.metrics) for s in result.stages] == [["accuracy", "loss"]] * 4
    assert all(s.accuracy is not None for s in result.stages)
