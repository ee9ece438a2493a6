"""`compress --recipe=deep_compression` (Han et al. 2016 as one run): every flagfile parses
and its bits fit its model; bad bits are refused naming the flag before anything runs or
is written; the LeNet-5 flagfile's smoke run, logging every --skip_step steps of each
stage, interrupted after a stage, resumes after it without training again and ends with
the file, its model, plot, report and scalars; a finished run whose file was removed,
damaged or swapped for another valid file writes it again, training nothing."""

import json
import os
import re

import keras
import numpy as np
import pytest

from tfcompress import codec, training
from tfcompress.codec import container
from tfcompress.sharing import share_weights
from tfcompress.sharing.pipeline import STAGES
from tfcompress.training import deep_compress_lib, weights

from .summaries import scalars
from .test_configs import DEEP
from .test_scripts_helpers import REPO, data_flags, make_fmnist, parse


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=64, num_test=16)


def _argv(name, fmnist, checkpoint, *extra):
    return [
        f"--flagfile=configs/{name}",
        "--flagfile=configs/smoke.cfg",
        *data_flags(fmnist),
        f"--checkpoint={checkpoint}",
        *extra,
    ]


def test_every_deep_compression_flagfile_is_here():
    nets = ("lenet_300_100", "lenet5")
    expected = {f"{n}_{d}_deep_compression.cfg" for n in nets for d in ("fmnist", "mnist")}
    assert set(DEEP) == expected


@pytest.mark.parametrize("name", DEEP)
def test_flagfile_parses_and_its_bits_fit_the_model(name, monkeypatch):
    monkeypatch.chdir(REPO)
    config = parse("compress", [f"--flagfile=configs/{name}"])
    assert isinstance(config, training.DeepCompressionConfig)
    model = weights.build_model(config.model, (28, 28, 1))
    bits, index_bits = deep_compress_lib.layer_bits(model, config)
    kernels = {layer.name for layer in model.layers if hasattr(layer, "kernel")}
    assert set(bits) == set(index_bits) == kernels
    assert {n for n, _ in config.densities} <= kernels
    if "_mnist_" in name:  # the paper's settings: conv 8 / fc 5 bits, indices conv 8 / fc 4
        kinds = {n: "conv" if n.startswith("conv") else "fc" for n in kernels}
        assert bits == {n: {"conv": 8, "fc": 5}[k] for n, k in kinds.items()}
        assert index_bits == {n: {"conv": 8, "fc": 4}[k] for n, k in kinds.items()}


BAD = [
    (["--conv_bits=17"], "conv_bits must be in [1, 16]. Received: conv_bits=17"),
    (["--fc_index_bits=0"], "fc_index_bits must be in [1, 16]. Received: fc_index_bits=0"),
    (["--bits=fc1=0"], "bits['fc1'] must be in [1, 16]. Received: bits['fc1']=0"),
    (["--index_bits=fc1=40"], "index_bits['fc1'] must be in [1, 16]. Received: "
                              "index_bits['fc1']=40"),
    (["--bits=fc1"], "bits takes layer=value,... Received: --bits=fc1"),
    (["--bits=fc9=4"], "bits names no layer of model 'lenet5': 'fc9'."),
    (["--bits=pool1=4"], "bits names layer 'pool1', a MaxPooling2D"),
    (["--index_bits=pool1=4"], "index_bits names no shared layer: ['pool1']."),
    (["--quality=0.7"], "Give exactly one pruning target: densities, ratio or quality."),
    (["--densities=fc1=1.5"], "densities['fc1'] must be a number in (0, 1]."),
    (["--densities=fc_1=0.5"], "densities names no prunable layer of model 'lenet5': "
                               "['fc_1']. Its prunable layers are "),
    (["--bits=fc1=4", "--exclude=fc1"], "bits names layers that exclude leaves unshared: "
                                          "['fc1']. Received: bits={'fc1': 4}, "
                                          "exclude=['fc1']"),
    (["--densities=conv1=0.5", "--exclude=conv1"], "densities names layers that exclude "
                                                   "leaves unpruned: ['conv1'] (exclude keeps "
                                                   "a layer out of both pruning and weight "
                                                   "sharing)."),
    (["--epochs=3"], "--epochs: flags of --recipe=prune, not of the deep_compression recipe"),
    (["--method=l1_filter"], "give --method=magnitude. Received: method='l1_filter'"),
]  # fmt: skip


@pytest.mark.parametrize("extra, message", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_bits_are_refused_before_anything_runs(extra, message, fmnist, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    path = tmp_path / "run"
    argv = _argv("lenet5_fmnist_deep_compression.cfg", fmnist, path, *extra)
    with pytest.raises(ValueError, match=re.escape(message)):
        training.deep_compress(parse("compress", argv))
    assert not path.exists()


def test_han_quality_threshold_replaces_the_densities(fmnist, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    argv = _argv("lenet5_fmnist_deep_compression.cfg", fmnist, tmp_path, "--densities=")
    config = parse("compress", [*argv, "--quality=0.7"])
    assert (config.densities, config.ratio, config.quality) == ((), None, 0.7)


def test_step_run_flags_are_named_as_having_no_effect(fmnist, tmp_path, monkeypatch, caplog):
    """--save_step, --eval_step and --keep_checkpoints are taken (smoke.cfg gives --save_step
    to every config) but do nothing here: a warning names the ones given, with their values."""
    monkeypatch.chdir(REPO)
    argv = _argv("lenet5_fmnist_deep_compression.cfg", fmnist, tmp_path)  # smoke: --save_step=8
    with caplog.at_level("WARNING", logger="absl"):
        parse("compress", [*argv, "--eval_step=5"])
    assert [r.getMessage() for r in caplog.records] == [
        "--save_step=8, --eval_step=5: no effect with --recipe=deep_compression: each stage is "
        "evaluated when it ends and saved whole (stages.json and the stage's .keras), not "
        "every N steps."]  # fmt: skip
    caplog.clear()
    without_smoke = [a for a in argv if a != "--flagfile=configs/smoke.cfg"]
    with caplog.at_level("WARNING", logger="absl"):
        parse("compress", without_smoke)
    assert caplog.records == []


def test_deep_compression_flags_are_refused_by_the_prune_recipe(fmnist, tmp_path):
    argv = [
        "--model=lenet5", "--num_classes=10", *data_flags(fmnist), "--epochs=1",
        f"--checkpoint={tmp_path}", "--method=magnitude", "--ratio=0.5", "--bits=fc1=4",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=re.escape("--bits: flags of --recipe=deep_compression")):
        parse("compress", argv)


class _Killed(Exception):
    pass




@pytest.mark.slow  # two stages train (a Keras fit each), four evaluations
def test_smoke_run_resumes_after_the_last_finished_stage(fmnist, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(REPO)
    path = tmp_path / "run"
    short = ["--dense_epochs=0", "--prune_steps=1", "--prune_epochs=1", "--share_epochs=1",
             "--steps_per_epoch=2", "--skip_step=1"]  # fmt: skip
    config = parse("compress", _argv("lenet5_fmnist_deep_compression.cfg", fmnist, path, *short))
    assert config.skip_step == 1
    encode = codec.encode

    def killed(*args, **kwargs):
        raise _Killed("killed while writing the file")

    monkeypatch.setattr(codec, "encode", killed)
    with pytest.raises(_Killed), caplog.at_level("INFO", logger="absl"):
        training.deep_compress(config)
    # --skip_step=1: a line at every step of each training stage
    steps = [r.getMessage().split("  ")[0] for r in caplog.records if ": step " in r.getMessage()]
    assert steps == ["pruned: step 1/2", "pruned: step 2/2", "shared: step 1/2",
                     "shared: step 2/2"]  # fmt: skip
    with open(path / "stages.json") as f:
        finished = json.load(f)["stages"]
    assert [s["name"] for s in finished] == ["dense", "pruned", "shared"]
    assert not (path / "result.json").exists()
    other = parse("compress", _argv("lenet5_fmnist_deep_compression.cfg", fmnist, path, *short,
                                    "--fc_bits=6"))  # fmt: skip
    with pytest.raises(ValueError, match=re.escape("fc_bits=5 (this command: 6)")):
        training.deep_compress(other)  # another run's stages are never resumed

    monkeypatch.setattr(codec, "encode", encode)
    fits = []
    fit = keras.Model.fit
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: fits.append(1) or fit(*a, **k))
    result = training.deep_compress(config)
    assert not fits  # resumed after the shared stage: no stage trained again
    stages = result["stages"]
    assert [s["name"] for s in stages] == list(STAGES)
    assert stages[:3] == finished
    ratios = [s["ratio"] for s in stages]
    assert ratios[0] == 1.0 and ratios == sorted(ratios) and ratios[-1] > 10, ratios
    assert result["ratio"] == ratios[-1]
    assert result["bytes"] == os.path.getsize(path / "model.tfdc")
    assert result["test"]["accuracy"] == stages[-1]["accuracy"] == stages[2]["accuracy"]
    for name in ("final.keras", "report.txt", "stages.png", "result.json", "run.json"):
        assert os.path.getsize(path / name) > 0, name
    decoded, final = (
        codec.decode(str(path / "model.tfdc")),
        keras.models.load_model(path / "final.keras"),
    )
    for a, b in zip(decoded.get_weights(), final.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    written = scalars(path / "tensorboard")
    for tag in ("accuracy", "ratio", "bytes"):
        assert sorted(written[f"deep_compression/{tag}"]) == [0, 1, 2, 3], tag
    for stage in ("pruned", "shared"):
        assert sorted(written[f"train/{stage}/loss"]) == [1, 2], stage
    assert written["deep_compression/ratio"][3] == pytest.approx(ratios[-1], rel=1e-6)

    # finished: the same command returns the result and trains nothing
    assert training.deep_compress(config) == json.loads(json.dumps(result))
    assert not fits
    # finished, its file removed: written again (the same bytes), nothing trained
    written = (path / "model.tfdc").read_bytes()
    os.remove(path / "model.tfdc")
    again = training.deep_compress(config)
    assert (path / "model.tfdc").read_bytes() == written
    assert again["stages"][:3] == stages[:3] and not fits
    # finished, its file damaged (a byte of a part flipped): written again, nothing trained
    header, start = container.read_header(str(path / "model.tfdc"), written)
    part = header["parts"][-1]
    damaged = bytearray(written)
    damaged[start + part["offset"]] ^= 0x01
    (path / "model.tfdc").write_bytes(bytes(damaged))
    with caplog.at_level("WARNING", logger="absl"):
        again = training.deep_compress(config)
    assert (path / "model.tfdc").read_bytes() == written
    assert again["stages"][:3] == stages[:3] and not fits
    damage = f"{path / 'model.tfdc'}: part '{part['name']}' is corrupted"
    rewrite = f"written again from the shared stage's model ({path / 'shared.keras'})"
    assert any(damage in r.getMessage() and rewrite in r.getMessage()
               for r in caplog.records), caplog.text  # fmt: skip
    # finished, a valid file of another LeNet-5 copied over it (every CRC right): not this
    # run's result, written again, nothing trained
    keras.utils.set_random_seed(1)
    other = share_weights(weights.build_model(config.model, (28, 28, 1)), bits=2)
    codec.encode(other, path / "model.tfdc")
    assert (path / "model.tfdc").read_bytes() != written
    caplog.clear()
    with caplog.at_level("WARNING", logger="absl"):
        again = training.deep_compress(config)
    assert (path / "model.tfdc").read_bytes() == written
    assert again["stages"][:3] == stages[:3] and not fits
    for a, b in zip(codec.decode(str(path / "model.tfdc")).get_weights(), final.get_weights(),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    swapped = f"{path / 'model.tfdc'} is not the file this run wrote"
    assert any(swapped in r.getMessage() and rewrite in r.getMessage()
               for r in caplog.records), caplog.text  # fmt: skip
