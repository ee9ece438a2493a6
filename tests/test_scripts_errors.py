"""Bad input fails before any training starts, with a message naming the bad value, and
leaves every file as it was: a missing train_data file, a flagfile naming an unknown model
or method, a num_classes the data contradicts, a checkpoint from a different model."""

import dataclasses
import hashlib
import os

import pytest
from absl import flags

from tfcompress import training
from tfcompress.training import config as cfg

from .test_scripts_helpers import data_flags, finish, make_fmnist, parse, start


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=128, num_test=32)


@pytest.fixture(scope="module")
def lenet5_run(fmnist, tmp_path_factory):
    """A finished 2-step lenet5 train run: the 'checkpoint from a different model'."""
    path = str(tmp_path_factory.mktemp("runs") / "lenet5")
    training.train(_train(fmnist, path, "lenet5"))
    return path


def _train(data, checkpoint, model="lenet5", num_classes=10, **kw):
    return cfg.TrainConfig(
        model=cfg.ModelConfig(model, num_classes),
        train_data=f"{data}/train-*.tfrecord",
        test_data=f"{data}/test-*.tfrecord",
        checkpoint=checkpoint,
        max_iteration=2,
        batch_size=16,
        progress=False,
        **kw,
    )


def _compress(data, checkpoint, model="lenet5", **kw):
    return cfg.CompressConfig(
        _train(data, checkpoint, model, **kw),
        cfg.PruneConfig("l1_filter", ratio=0.5),
    )


def snapshot(path):
    """{relative path: (size, mtime, sha256)} of every file under `path`."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            stat = os.stat(full)
            out[os.path.relpath(full, path)] = (stat.st_size, stat.st_mtime_ns, digest)
    return out


@pytest.mark.slow
def test_missing_train_data(fmnist, lenet5_run, tmp_path):
    before = snapshot(lenet5_run)
    config = _train(fmnist, lenet5_run)
    missing = dataclasses.replace(config, train_data=str(tmp_path / "nothing-*.tfrecord"))
    with pytest.raises(FileNotFoundError, match=r"train_data: no TFRecord file matches '.*nothing"):
        training.train(missing)
    with pytest.raises(FileNotFoundError, match="train_data: no TFRecord file matches"):
        training.compress(_compress(str(tmp_path / "no_data"), str(tmp_path / "new")))
    assert snapshot(lenet5_run) == before
    assert not os.path.exists(tmp_path / "new")


def test_num_classes_that_the_data_contradicts(fmnist, tmp_path):
    with pytest.raises(ValueError, match=r"num_classes=5 does not match train_data: its manifest "
                       r"\(.*manifest.json\) lists 10 classes"):  # fmt: skip
        training.compress(_compress(fmnist, str(tmp_path / "run"), num_classes=5))
    with pytest.raises(ValueError, match="holds classification records, but model 'pspnet' is a "
                       "segmentation model"):  # fmt: skip
        training.train(_train(fmnist, str(tmp_path / "run"), model="pspnet"))
    assert not os.path.exists(tmp_path / "run")


def test_checkpoint_directory_of_a_different_model(fmnist, lenet5_run):
    before = snapshot(lenet5_run)
    with pytest.raises(ValueError, match=r"holds a train run of model 'lenet5' num_classes=10; "
                       r"this train command builds 'lenet_300_100' num_classes=10. It is a "
                       r"checkpoint from a different model"):  # fmt: skip
        training.train(_train(fmnist, lenet5_run, model="lenet_300_100"))
    with pytest.raises(ValueError, match="holds a train run; this is a compress command"):
        training.compress(_compress(fmnist, lenet5_run))
    with pytest.raises(ValueError, match=r"started with other settings: learning_rate=0.01 "
                       r"\(this command: 0.5\)"):  # fmt: skip
        training.train(_train(fmnist, lenet5_run, learning_rate=0.5))
    assert snapshot(lenet5_run) == before


def test_initialize_from_a_different_model(fmnist, lenet5_run, tmp_path):
    before = snapshot(lenet5_run)
    with pytest.raises(ValueError, match=r"initialize=.*final.keras' holds model 'lenet5' "
                       r"\(431,080 parameters\), which does not fit model 'lenet_300_100' "
                       r"\(266,610 parameters\)"):  # fmt: skip
        training.compress(
            _compress(fmnist, str(tmp_path / "new"), "lenet_300_100", initialize=lenet5_run)
        )
    with pytest.raises(FileNotFoundError, match="initialize='nowhere': no such train run"):
        training.train(_train(fmnist, str(tmp_path / "new"), initialize="nowhere"))
    assert not os.path.exists(tmp_path / "new")
    assert snapshot(lenet5_run) == before


@pytest.mark.slow
def test_scripts_report_bad_input_in_one_line(fmnist, tmp_path):
    flagfile = tmp_path / "unknown_model.cfg"
    flagfile.write_text(
        "--model=resnet999\n--num_classes=10\n--max_iteration=5\n--method=l1_filter\n"
        f"--ratio=0.5\n--checkpoint={tmp_path / 'a'}\n" + "\n".join(data_flags(fmnist)) + "\n"
    )
    unknown = start("compress", [f"--flagfile={flagfile}"], str(tmp_path / "a.log"))
    missing = start(
        "train",
        ["--model=lenet5", "--num_classes=10", "--max_iteration=5",
         f"--train_data={tmp_path}/missing-*.tfrecord", f"--checkpoint={tmp_path / 'b'}"],
        str(tmp_path / "b.log"),
    )  # fmt: skip
    code, out = finish(unknown)
    assert code == 1 and "flag --model=resnet999: value should be one of" in out
    code, out = finish(missing)
    assert code == 1
    assert f"error: train_data: no TFRecord file matches '{tmp_path}/missing-*.tfrecord'" in out
    assert "Traceback" not in out
    assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")


def test_parse_rejects_a_flagfile_with_an_unknown_method(tmp_path):
    flagfile = tmp_path / "bad.cfg"
    flagfile.write_text("--model=lenet5\n--num_classes=10\n--method=pruneall\n")
    with pytest.raises(flags.IllegalFlagValueError, match="flag --method=pruneall: value should"):
        parse("compress", [f"--flagfile={flagfile}"])


@pytest.mark.slow
def test_scripts_report_unusable_paths_in_one_line(fmnist, lenet5_run, tmp_path):
    """A file-valued run directory (train), a folder where export writes model.keras and
    an evaluate --output under a file: one `error:` line each, exit code 1, nothing
    written, no traceback. Both processes run at once."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = tmp_path / "export"
    (out / "model.keras").mkdir(parents=True)
    train = start(
        "train",
        ["--model=lenet5", "--num_classes=10", "--max_iteration=5", *data_flags(fmnist),
         f"--checkpoint={afile}/run"],
        str(tmp_path / "train.log"),
    )  # fmt: skip
    export = start(
        "export",
        [f"--checkpoint={lenet5_run}", f"--output_dir={out}", "--formats=keras,report"],
        str(tmp_path / "export.log"),
    )
    code, text = finish(train)
    assert code == 1 and "Traceback" not in text
    assert f"error: checkpoint='{afile}/run' cannot be created: '{afile}' is a file" in text
    code, text = finish(export)
    assert code == 1 and "Traceback" not in text
    assert f"error: output_dir='{out}': '{out}/model.keras' is a directory, but the run " in text
    assert sorted(os.listdir(out)) == ["model.keras"] and afile.read_text() == "x"
