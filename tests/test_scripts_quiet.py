"""What a user reads from a script is its own output: TensorFlow's start-up noise (the C++
`failed call to cuInit` line of a machine without a GPU, other libraries' absl INFO lines
such as `Sharding callback duration`) stays out, while the scripts' own INFO lines, warnings
and errors show (tfrecords_tools.entry)."""

import logging
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tfrecords_tools import entry

from .test_scripts_helpers import REPO, data_flags, env, make_fmnist


def _env_as_a_user_has_it():
    out = env()
    out.pop("TF_CPP_MIN_LOG_LEVEL")  # the user set no level
    return out


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=64, num_test=32)


@pytest.mark.slow
def test_converter_output_has_no_cuinit_line(fmnist):
    proc = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.verify", f"--file_pattern={fmnist}/train-*"],
        cwd=REPO, env=_env_as_a_user_has_it(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "64 records in 2 files (classification): 0 corrupt"
    assert "cuInit" not in proc.stderr, proc.stderr


@pytest.mark.slow  # a training run
def test_script_shows_its_own_info_lines_only(fmnist, tmp_path):
    args = ["--model=lenet5", "--num_classes=10", *data_flags(fmnist), "--batch_size=16",
            "--max_iteration=2", "--save_step=1", "--skip_step=1", "--progress=false",
            f"--checkpoint={tmp_path / 'run'}"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "tfcompress.scripts.train", *args], cwd=REPO,
        env=_env_as_a_user_has_it(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=240,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    assert "step 2: saved" in out and "Training steps 0..2" in out  # tfcompress's INFO lines
    assert "Sharding callback" not in out, out  # TensorFlow's, logged at each save


def test_info_of_other_code_is_dropped_warnings_are_kept():
    keep = entry.OwnInfoOnly()
    ours = os.path.join(REPO, "tfcompress", "training", "loop.py")
    theirs = os.path.join(os.path.dirname(tf.__file__), "python", "checkpoint", "saver.py")

    def record(level, path):
        return logging.LogRecord("absl", level, path, 1, "message", None, None)

    assert keep.filter(record(logging.INFO, ours))
    assert keep.filter(record(logging.WARNING, theirs))
    assert keep.filter(record(logging.ERROR, theirs))
    assert not keep.filter(record(logging.INFO, theirs))
    assert not keep.filter(record(logging.DEBUG, theirs))
