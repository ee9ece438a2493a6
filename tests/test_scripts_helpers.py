"""Helpers (no tests) for the script, config, training and distribution tests: tiny real
datasets (a Fashion-MNIST subset and its mosaics as TFRecords), flag parsing as the
scripts do it, and running a script in a subprocess."""

import os
import subprocess
import sys

from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def make_fmnist(out_dir, num_train=512, num_test=128, num_shards=2):
    """The first `num_train` / `num_test` Fashion-MNIST images as classification records."""
    from tfcompress.data import convert
    from tfcompress.data import fashion_mnist as fm
    from tfcompress.data.sources.fashion_mnist import array_items

    items = {}
    for split, n in (("train", num_train), ("test", num_test)):
        images, labels = fm.load(FMNIST_DIR, split)
        items[split] = array_items(images[:n], labels[:n], f"fashion_mnist/{split}")
    convert.convert(convert.Source("classification", items, fm.CLASS_NAMES), out_dir, num_shards)
    return out_dir


def make_mosaic(out_dir, task, num_train=64, num_test=16, canvas_size=None):
    """Fashion-MNIST mosaics (segmentation: 11 classes; detection: 10) as records."""
    from tfcompress.data import convert
    from tfcompress.data.sources import mosaic

    source = mosaic.source(
        task,
        {"train": num_train, "test": num_test},
        fmnist_dir=FMNIST_DIR,
        canvas_size=canvas_size,
    )
    convert.convert(source, out_dir, 2)
    return out_dir


def data_flags(data_dir):
    return [
        f"--train_data={data_dir}/train-*.tfrecord",
        f"--test_data={data_dir}/test-*.tfrecord",
    ]


def script_of(config_path):
    """The script a config's header runs (train or compress)."""
    with open(config_path) as f:
        for line in f:
            if "python -m tfcompress.scripts." in line:
                return line.split("python -m tfcompress.scripts.")[1].split()[0]
    raise AssertionError(f"{config_path} names no tfcompress script on its first lines")


def parse(script, argv):
    """The config the script `script` builds from `argv` (parsed as its flags)."""
    from tfcompress.scripts import common_flags, eval_flags, prune_flags

    fv = flags.FlagValues()
    defines = {
        "train": [common_flags.define_train_flags],
        "compress": [
            common_flags.define_train_flags,
            prune_flags.define_prune_flags,
            prune_flags.define_deep_compression_flags,
        ],
        "evaluate": [eval_flags.define_evaluate_flags],
        "export": [eval_flags.define_export_flags],
    }[script]
    for define in defines:
        define(fv)
    fv(["prog", *argv])
    make = {
        "train": common_flags.train_config,
        "compress": prune_flags.compress_config,
        "evaluate": eval_flags.evaluate_config,
        "export": eval_flags.export_config,
    }[script]
    if script == "compress" and fv.recipe == "deep_compression":
        make = prune_flags.deep_compression_config
    return make(fv)


def env(**extra):
    out = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    out.pop("TF_CONFIG", None)
    out.update(extra)
    return out


def start(script, args, log_path, **extra_env):
    """Starts `python -m tfcompress.scripts.<script> args` from the repository root."""
    log = open(log_path, "w")  # noqa: SIM115 - closed by `finish`
    proc = subprocess.Popen(
        [sys.executable, "-m", f"tfcompress.scripts.{script}", *args],
        cwd=REPO,
        env=env(**extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log = log
    proc.log_path = log_path
    return proc


def finish(proc, timeout=240):
    """Waits for `proc`; returns `(returncode, output)`."""
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.log.close()
    with open(proc.log_path) as f:
        return proc.returncode, f.read()


def run(script, args, log_path, timeout=240, **extra_env):
    return finish(start(script, args, log_path, **extra_env), timeout)
