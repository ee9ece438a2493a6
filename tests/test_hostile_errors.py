"""Library errors name the thing and the value: a model wrapped twice, masks holding NaN
or inf, a damaged checkpoint against one of another model, and the paths a script writes."""

import re

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, WeightMask


def _convnet():
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.Conv2D(4, 3, name="c2"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, name="d"),
        ],
        name="convnet",
    )


@pytest.mark.parametrize("method", ["l1_filter", "magnitude"])
def test_wrapping_a_wrapped_model_says_so(method):
    masked = tfc.wrap(_convnet(), method)
    with pytest.raises(
        ValueError,
        match=rf"Model 'convnet' is already wrapped \(with method '{method}'; \d mask layers.*"
        r"Prune it \(`tfcompress.prune`\), or strip it first",
    ):
        tfc.wrap(masked, method)
    tfc.wrap(tfc.strip(masked), method)  # the compact model wraps again


def _poison(masked, value):
    """Writes `value` into the first value of the first mask layer; returns its name."""
    layer = layers_of(masked, (ChannelMask, WeightMask))[0]
    variable = layer.mask if isinstance(layer, ChannelMask) else next(iter(layer.masks.values()))
    values = np.ones(variable.shape, np.float32)
    values.flat[1] = value
    variable.assign(values)
    return layer.name


@pytest.mark.parametrize(
    "method, value, what",
    [("l1_filter", np.nan, "mask"), ("soft_topk", np.inf, "mask"), ("magnitude", np.nan,
     "kernel mask")],
)  # fmt: skip
def test_a_mask_that_is_not_finite_is_refused(method, value, what):
    masked = tfc.wrap(_convnet(), method)
    name = _poison(masked, value)
    message = rf"Mask layer '{name}': 1 of \d+ {what} values are not finite \(NaN or inf\)"
    with pytest.raises(ValueError, match=message):
        tfc.strip(masked)
    own = {"criterion": "soft_topk"} if method == "soft_topk" else {}  # SoftTopK's logits
    with pytest.raises(ValueError, match=message):  # iterative pruning reads the masks
        tfc.prune(masked, 0.5, keep_pruned=True, **own)


# --- checkpoints: damaged (cannot be read) vs foreign (readable, another model) ----------


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    from .test_scripts_helpers import make_fmnist

    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=64, num_test=16)


def _train_config(data, checkpoint, model="lenet5", **kw):
    from tfcompress.training import config as cfg

    settings = {"max_iteration": 2, "save_step": 1, "batch_size": 16, "progress": False}
    return cfg.TrainConfig(
        model=cfg.ModelConfig(model, 10),
        train_data=f"{data}/train-*.tfrecord",
        checkpoint=checkpoint,
        **{**settings, **kw},
    )


@pytest.fixture(scope="module")
def unfinished_run(fmnist, tmp_path_factory):
    """A lenet5 run with checkpoints at steps 1 and 2 and no final model or result yet (a
    run killed after its last checkpoint): the next start resumes from ckpt-2."""
    import os

    from tfcompress import training

    path = str(tmp_path_factory.mktemp("runs") / "lenet5")
    training.train(_train_config(fmnist, path))
    for name in ("result.json", "final.keras"):
        os.remove(os.path.join(path, name))
    return path


def _copy_run(source, target):
    import shutil

    shutil.copytree(source, target)
    return str(target)


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def _truncate(path):
    import os

    os.truncate(path, os.path.getsize(path) // 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, suffix",
    [(_flip, "data-00000-of-00001"), (_truncate, "data-00000-of-00001"), (_flip, "index"),
     (_truncate, "index")],
)  # fmt: skip
def test_a_damaged_checkpoint_is_named_and_left_alone(fmnist, unfinished_run, tmp_path, damage,
                                                      suffix):  # fmt: skip
    import os

    from tfcompress import training

    from .test_scripts_errors import snapshot

    run = _copy_run(unfinished_run, tmp_path / "run")
    target = os.path.join(run, f"ckpt-2.{suffix}")
    if damage is _flip:
        damage(target, os.path.getsize(target) // 2)
    else:
        damage(target)
    before = snapshot(run)
    with pytest.raises(ValueError, match=r"the checkpoint .*ckpt-2 is damaged \(truncated or "
                       r"corrupted\) and cannot be read: .*delete its files \(ckpt-2.index, "
                       r"ckpt-2.data-\*\) to use an earlier checkpoint of the run, or use another "
                       r"--checkpoint"):  # fmt: skip
        training.train(_train_config(fmnist, run))
    assert snapshot(run) == before  # nothing overwritten
    for name in ("ckpt-2.index", "ckpt-2.data-00000-of-00001"):
        os.remove(os.path.join(run, name))
    result = training.train(_train_config(fmnist, run))  # resumes from ckpt-1
    assert result["steps"] == 2


@pytest.mark.slow
def test_a_readable_checkpoint_of_another_model_names_its_variables(fmnist, unfinished_run,
                                                                     tmp_path):  # fmt: skip
    import glob
    import os
    import shutil

    from tfcompress import training

    other = str(tmp_path / "other")
    training.train(_train_config(fmnist, other, model="lenet_300_100"))
    run = _copy_run(unfinished_run, tmp_path / "run")
    for path in glob.glob(os.path.join(run, "ckpt-2.*")):
        os.remove(path)
    for path in glob.glob(os.path.join(other, "ckpt-2.*")):
        shutil.copy(path, run)
    with pytest.raises(ValueError, match=r"the checkpoint .*ckpt-2 is intact but does not fit "
                       r"the model this command builds: .*shape.*It is a checkpoint from a "
                       r"different model"):  # fmt: skip
        training.train(_train_config(fmnist, run))


# --- paths: every path a run reads or writes, checked before anything runs --------------


def test_output_paths_that_cannot_work(tmp_path):
    import os

    from tfcompress.training import paths

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match=rf"checkpoint='{afile}' is a file, not a "
                       "directory: give a directory to write into"):  # fmt: skip
        paths.output_directory("checkpoint", str(afile))
    with pytest.raises(NotADirectoryError, match=rf"output_dir='{afile}/a/b' cannot be created: "
                       rf"'{afile}' is a file, not a directory"):  # fmt: skip
        paths.output_directory("output_dir", str(afile / "a" / "b"))
    with pytest.raises(IsADirectoryError, match=rf"output='{tmp_path}' is a directory, not a "
                       r"file: give a file name \(e.g. '.*result.json'\)"):  # fmt: skip
        paths.output_file("output", str(tmp_path))
    with pytest.raises(NotADirectoryError, match=rf"output='{afile}/r.json' cannot be created"):
        paths.output_file("output", str(afile / "r.json"))
    (tmp_path / "final.keras").mkdir()
    with pytest.raises(IsADirectoryError, match=rf"checkpoint='{tmp_path}': '.*final.keras' is a "
                       "directory, but the run writes a file there"):  # fmt: skip
        paths.outputs_inside("checkpoint", str(tmp_path), {"final.keras": paths.FILE})
    with pytest.raises(NotADirectoryError, match="'.*afile' is a file, but the run writes a "
                       "directory there"):  # fmt: skip
        paths.outputs_inside("output_dir", str(tmp_path), {"afile": paths.DIRECTORY})
    if os.path.isdir("/sys"):  # read-only for every user, root included
        with pytest.raises(PermissionError, match=r"checkpoint='/sys/run' cannot be written: "
                           r"'/sys' is not writable \(Permission denied\)"):  # fmt: skip
            paths.output_directory("checkpoint", "/sys/run")
    paths.output_directory("checkpoint", str(tmp_path / "new" / "run"))  # created later
    paths.output_file("output", str(tmp_path / "new" / "r.json"))
    assert sorted(os.listdir(tmp_path)) == ["afile", "final.keras"]  # the checks wrote nothing


def test_input_paths_that_do_not_exist(tmp_path):
    from tfcompress.training import paths

    with pytest.raises(FileNotFoundError, match=rf"initialize='{tmp_path}/nope': no such file "
                       "or directory"):  # fmt: skip
        paths.input_path("initialize", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=rf"calibration_data: no TFRecord file matches "
                       rf"'{tmp_path}/x-\*.tfrecord'"):  # fmt: skip
        paths.input_pattern("calibration_data", str(tmp_path / "x-*.tfrecord"))


def test_entry_points_check_paths_before_anything_runs(tmp_path):
    import os

    from tfcompress import training
    from tfcompress.training import config as cfg

    afile = tmp_path / "afile"
    afile.write_text("x")
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").mkdir()  # where export writes its .keras file
    with pytest.raises(NotADirectoryError, match="checkpoint=.*afile' is a file, not a dir"):
        training.train(_train_config(str(tmp_path), str(afile)))
    with pytest.raises(NotADirectoryError, match="checkpoint=.*afile/run' cannot be created"):
        training.compress(
            cfg.CompressConfig(_train_config(str(tmp_path), str(afile / "run")),
                               cfg.PruneConfig("l1_filter", ratio=0.5))
        )  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"checkpoint='nowhere': no such run directory "
                       r"or .keras file"):  # fmt: skip
        training.evaluate(cfg.EvalConfig("nowhere", str(tmp_path / "*.tfrecord")))
    with pytest.raises(IsADirectoryError, match=r"output=.* is a directory, not a file"):
        training.evaluate(cfg.EvalConfig(str(afile), str(afile), output=str(tmp_path)))
    with pytest.raises(IsADirectoryError, match=r"output_dir=.*'.*model.keras' is a directory"):
        training.export(cfg.ExportConfig(str(afile), str(run)))
    with pytest.raises(NotADirectoryError, match="output_dir=.*afile' is a file, not a dir"):
        training.export(cfg.ExportConfig(str(run), str(afile)))
    assert sorted(os.listdir(tmp_path)) == ["afile", "run"]
    assert os.listdir(run) == ["model.keras"]


def test_export_refuses_a_saved_model_folder_of_other_files_before_loading(tmp_path):
    """The export command replaced `<output_dir>/saved_model/` whatever it held."""
    from tfcompress import training
    from tfcompress.training import config as cfg

    afile = tmp_path / "afile"  # no model: the refusal comes before it is loaded
    afile.write_text("x")
    folder = tmp_path / "out" / "saved_model"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=rf"{folder} is a folder that holds other files "
                       r"\(notes.txt\) and is not a SavedModel"):
        training.export(cfg.ExportConfig(str(afile), str(tmp_path / "out")))
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_demo_checks_its_paths_first(tmp_path, monkeypatch):
    from tfcompress.scripts import demo_lib

    from .test_scripts_helpers import REPO

    monkeypatch.chdir(REPO)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="output_dir=.*afile' is a file, not a dir"):
        demo_lib.run_demo(demo_lib.DemoConfig(output_dir=str(afile)))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "compression.png").mkdir()
    with pytest.raises(IsADirectoryError, match="compression.png' is a directory"):
        demo_lib.run_demo(demo_lib.DemoConfig(output_dir=str(tmp_path / "out")))
    with pytest.raises(FileNotFoundError, match="fmnist_dir='nowhere': no such file"):
        demo_lib.run_demo(
            demo_lib.DemoConfig(output_dir=str(tmp_path / "o2"), data_dir=str(tmp_path / "d"),
                                fmnist_dir="nowhere")
        )  # fmt: skip
    # refused when the flags are read: the sweep ran after the baseline had trained
    with pytest.raises(ValueError, match=r"sweep_ratios must be numbers in \[0, 1\). "
                       r"Received: sweep_ratios=\[0.5, 1.0\]"):
        demo_lib.DemoConfig(sweep_ratios=(0.5, 1.0))
    from tfcompress.scripts.common_flags import float_list

    with pytest.raises(ValueError, match=r"sweep_ratios must be numbers. Received: "
                       r"sweep_ratios=\['abc'\]"):
        float_list("sweep_ratios", ["abc"])


# --- scripts: one `error:` line for what the OS, TensorFlow or the data refuse ------------


def test_cli_turns_path_and_data_errors_into_one_line():
    import tensorflow as tf

    from tfcompress.data.errors import CorruptInputError
    from tfcompress.scripts import cli

    hint = "(--skip_corrupt skips bad records, counts them and reports them at the end)"
    cases = [
        (PermissionError(13, "Permission denied", "/runs/x/ckpt-3.index"),
         "/runs/x/ckpt-3.index: Permission denied"),
        (OSError(28, "No space left on device", "/runs/x/final.keras"),
         "/runs/x/final.keras: No space left on device"),
        (NotADirectoryError("checkpoint='f' is a file"), "checkpoint='f' is a file"),
        (tf.errors.PermissionDeniedError(None, None, "/runs/x/tensorboard; Permission denied"),
         "/runs/x/tensorboard; Permission denied"),
        (tf.errors.InvalidArgumentError(
            None, None, "{{function_node __wrapped__IteratorGetNext}} assertion failed: "
            "[Corrupt record in /d/train-00000-of-00002.tfrecord: record 7: image/class/label "
            "10 outside [0, 10)] [Op:IteratorGetNext]"),
         "Corrupt record in /d/train-00000-of-00002.tfrecord: record 7: image/class/label 10 "
         f"outside [0, 10) {hint}"),
        (CorruptInputError("Corrupt record in /d/a.tfrecord: record 0: truncated"),
         f"Corrupt record in /d/a.tfrecord: record 0: truncated {hint}"),
        (tf.errors.DataLossError(None, None, "truncated record at 30964 [Op:IteratorGetNext]"),
         f"damaged input data: truncated record at 30964 {hint}"),
    ]  # fmt: skip
    for error, line in cases:
        assert cli.message(error, skip_flag=True) == line

        def fail(error=error):
            raise error

        with pytest.raises(SystemExit, match=re.escape(f"error: {line}")):
            cli.run(fail, skip_flag=True)
    assert cli.message(CorruptInputError("Corrupt record in a: record 0: x")) == (
        "Corrupt record in a: record 0: x"
    )  # export has no --skip_corrupt
    assert cli.message(tf.errors.InvalidArgumentError(None, None, "Incompatible shapes")) is None
    with pytest.raises(RuntimeError, match="a bug"):  # a bug keeps its traceback
        cli.run(lambda: (_ for _ in ()).throw(RuntimeError("a bug")))


def test_ctrl_c_prints_one_line_and_exits_130(capsys):
    from tfcompress.scripts import cli

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exit_:
        cli.run(interrupted)
    assert exit_.value.code == 130  # 128 + SIGINT, as a shell reports it
    err = capsys.readouterr().err
    assert err.startswith("error: interrupted. Every file is written atomically") and \
        err.count("\n") == 1  # one line, no traceback


def test_damaged_run_files_name_their_file(tmp_path):
    import tensorflow as tf

    from tfcompress.training import runs, weights

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(tmp_path), 3)
    manager.save()
    manager.save()
    (tmp_path / "ckpt-2.index").unlink()  # a damaged checkpoint deleted by hand
    assert runs.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-1")
    (tmp_path / "checkpoint").write_bytes(b"\xff\x00 not a checkpoint list {{")
    with pytest.raises(ValueError, match=r"its checkpoint list \(.*checkpoint\) is damaged and "
                       "cannot be read"):  # fmt: skip
        runs.latest_checkpoint(str(tmp_path))
    (tmp_path / "run.json").write_text('{"kind": "train", "config": {')
    with pytest.raises(ValueError, match=r"checkpoint=.*: .*run.json is damaged \(truncated or "
                       r"corrupted\) and cannot be read as JSON"):  # fmt: skip
        weights.load_trained(str(tmp_path))
    path = tmp_path / "model.keras"
    model.save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"checkpoint=.*model.keras cannot be loaded as a Keras "
                       r"model \(damaged, truncated or not a .keras file\)"):  # fmt: skip
        weights.load_trained(str(path))
    h5 = tmp_path / "w.weights.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(ValueError, match=r"initialize=.*w.weights.h5' is damaged \(truncated or "
                       r"corrupted\) and cannot be read"):  # fmt: skip
        weights.initialize(keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]), str(h5))


# --- bad records reaching train and evaluate: one error line, or counted skips -----------


def _relabel(shard, index, label):
    """Rewrites record `index` of `shard` (in its own compression) with `label`:
    a well-framed record whose label is out of range."""
    import tensorflow as tf

    from tfcompress.data import compression

    kind = compression.resolve([shard], "auto")
    records = [r.numpy() for r in tf.data.TFRecordDataset(shard, compression_type=kind)]
    example = tf.train.Example.FromString(records[index])
    example.features.feature["image/class/label"].int64_list.value[:] = [label]
    records[index] = example.SerializeToString()
    with tf.io.TFRecordWriter(shard, options=kind) as writer:
        for record in records:
            writer.write(record)


@pytest.fixture(scope="module")
def bad_fmnist(tmp_path_factory):
    """64 train and 16 test records, one of each with label 10 of 10 classes."""
    import glob

    from .test_scripts_helpers import make_fmnist

    path = make_fmnist(str(tmp_path_factory.mktemp("bad")), num_train=64, num_test=16)
    _relabel(sorted(glob.glob(f"{path}/train-*.tfrecord"))[1], 3, 10)
    _relabel(sorted(glob.glob(f"{path}/test-*.tfrecord"))[0], 5, 10)
    return path


@pytest.mark.slow
def test_bad_records_stop_a_run_in_one_line_or_are_counted(bad_fmnist, tmp_path):
    """With skip_corrupt, train and evaluate count the bad records into their results;
    without it, one `error:` line names the file and the record (evaluate here: a strict
    training run fails alike, in the pipeline's own slower error path)."""
    import dataclasses
    import json

    from tfcompress import training
    from tfcompress.scripts import cli
    from tfcompress.training import config as cfg

    config = _train_config(
        bad_fmnist, str(tmp_path / "skip"), test_data=f"{bad_fmnist}/test-*.tfrecord",
        skip_corrupt=True, max_iteration=None, epochs=1
    )  # fmt: skip
    result = training.train(config)
    with open(result["path"]) as f:
        written = json.load(f)
    for r in (result, written):
        assert r["skipped"]["train_data"]["num_skipped"] == 1  # once, though read twice
        assert r["skipped"]["test_data"]["num_skipped"] == 1
        first = r["skipped"]["test_data"]["skipped"][0]
        assert "test-00000-of-00002.tfrecord: record 5: " in first
    evaluate = cfg.EvalConfig(config.checkpoint, f"{bad_fmnist}/test-*.tfrecord")
    with pytest.raises(SystemExit, match=r"error: Corrupt record in .*test-00000-of-00002."
                       r"tfrecord: record 5: .*\(--skip_corrupt"):  # fmt: skip
        cli.run(training.evaluate, evaluate, skip_flag=True)
    output = tmp_path / "eval" / "result.json"
    result = training.evaluate(
        dataclasses.replace(
            evaluate, skip_corrupt=True, output=str(output), prune_ratios=(0.5,),
            recalibrate_data=f"{bad_fmnist}/train-*.tfrecord",
        )
    )  # fmt: skip
    assert result["skipped"]["test_data"]["num_skipped"] == 1
    assert result["sweep"][0]["num_skipped"] == 1  # the same record, read again
    assert "recalibrate_data" in result["skipped"]  # lenet5 has no BatchNorm to recalibrate
    assert json.loads(output.read_text())["skipped"] == result["skipped"]
