"""train -> compress (from the trained run) -> evaluate (with a one-shot sweep) -> export,
through the library calls the scripts make: every artifact exists and agrees with the
model it came from."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import training
from tfcompress.training import weights
from tfcompress.training.plot import compression_plot

from .test_scripts_helpers import make_fmnist, parse


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=256, num_test=64)


def _common(fmnist):
    return [
        "--model=lenet5", "--num_classes=10",
        f"--train_data={fmnist}/train-*.tfrecord", f"--test_data={fmnist}/test-*.tfrecord",
        "--batch_size=16", "--max_iteration=8", "--skip_step=4", "--save_step=4",
        "--progress=false",
    ]  # fmt: skip


@pytest.mark.slow
def test_train_compress_evaluate_export(fmnist, tmp_path):
    """One test, so that the runs are made once (pytest-xdist would repeat a fixture)."""
    base, small = str(tmp_path / "base"), str(tmp_path / "small")
    trained = training.train(parse("train", [*_common(fmnist), f"--checkpoint={base}"]))
    compressed = training.compress(
        parse(
            "compress",
            [
                *_common(fmnist),
                f"--checkpoint={small}",
                f"--initialize={base}",
                "--method=l1_filter",
                "--percent=0.5",
                "--starting_epoch=0.25",
                "--steps_per_epoch=8",
                "--cache_data",  # build_dataset(cache=True) inside a run
            ],
        )  # fmt: skip
    )
    _check_runs(base, small, trained, compressed)
    _check_evaluate(base, fmnist, trained, tmp_path)
    _check_rebuilt_from_checkpoint(small, tmp_path)
    _check_export(small, fmnist, tmp_path)


# Loads a run's final.keras with plain Keras (compiled as saved) in a process that never
# imports tfcompress; prints its parameter count.
_PLAIN_LOAD = (
    "import sys, keras; model = keras.saving.load_model(sys.argv[1]); "
    "assert not any(m.split('.')[0] == 'tfcompress' for m in sys.modules); "
    "print(model.count_params(), model.compiled)"
)


def _check_runs(base, small, trained, compressed):
    for name in ("run.json", "result.json", "final.keras", "checkpoint"):
        assert os.path.exists(os.path.join(base, name))
    # the trained model alone: no tfcompress optimizer / learning-rate class to look up
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    for run, params in ((base, trained["params"]), (small, compressed["params_after"])):
        done = subprocess.run([sys.executable, "-c", _PLAIN_LOAD, os.path.join(run, "final.keras")],
                              env=env, cwd=run, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == [str(params), "False"]
    for name in ("plan.json", "report.json", "report.txt"):
        assert os.path.exists(os.path.join(small, name))
    with open(os.path.join(small, "report.json")) as f:
        rows = json.load(f)["layers"]  # the original's every parameter counted (as export's):
    assert all(r["nonzero_params_before"] == r["params_before"] for r in rows)  # a draw's
    assert all(r["nonzero_params_after"] <= r["nonzero_params_before"] for r in rows)  # zeros
    assert os.listdir(os.path.join(base, "tensorboard"))
    assert compressed["steps"] == 8 and 0 < compressed["test"]["accuracy"] <= 1
    assert compressed["params_after"] < compressed["params_before"] == trained["params"]
    with open(os.path.join(small, "run.json")) as f:
        run = json.load(f)
    assert run["kind"] == "compress" and run["resolved"]["ratio"] == 0.5


def _check_evaluate(base, fmnist, trained, tmp_path):
    out = str(tmp_path / "eval.json")
    result = training.evaluate(
        parse(
            "evaluate",
            [
                f"--checkpoint={base}",
                f"--test_data={fmnist}/test-*.tfrecord",
                "--method=l1_filter",
                "--prune_ratios=0.3,0.6",
                f"--output={out}",
                "--model=lenet5",
                "--num_classes=10",
            ],
        )  # fmt: skip
    )
    assert result["metrics"]["examples"] == 64
    assert result["metrics"]["accuracy"] == pytest.approx(trained["test"]["accuracy"])
    params = [p["params"] for p in result["sweep"]]
    assert params[0] > params[1] and result["params"] > params[0]
    assert all(p["nonzero_params"] <= p["params"] for p in result["sweep"])
    with open(out) as f:
        assert json.load(f)["sweep"][1]["ratio"] == 0.6
    with pytest.raises(ValueError, match=r"num_classes=3 does not match checkpoint"):
        training.evaluate(
            parse(
                "evaluate",
                [f"--checkpoint={base}", f"--test_data={fmnist}/test-*", "--num_classes=3"],
            )  # fmt: skip
        )
    with pytest.raises(ValueError, match="holds model 'lenet5', not model='vgg16_bn'"):
        training.evaluate(
            parse(
                "evaluate",
                [f"--checkpoint={base}", f"--test_data={fmnist}/test-*", "--model=vgg16_bn"],
            )  # fmt: skip
        )
    final = os.path.join(base, "final.keras")  # a .keras file of a zoo model: checked too
    with pytest.raises(ValueError, match="holds model 'lenet5', not model='vgg16_bn'"):
        training.evaluate(parse("evaluate", [
            f"--checkpoint={final}", f"--test_data={fmnist}/test-*", "--model=vgg16_bn"]))


def _check_rebuilt_from_checkpoint(small, tmp_path):
    """A run without final.keras (still training) is rebuilt from run.json + checkpoint."""
    copy = str(tmp_path / "copy")
    shutil.copytree(small, copy)
    os.remove(os.path.join(copy, "final.keras"))
    rebuilt, run = weights.load_trained(copy)
    final, _ = weights.load_trained(small)
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    assert run["kind"] == "compress" and rebuilt.count_params() == final.count_params()
    np.testing.assert_allclose(rebuilt(x), final(x), atol=1e-5)


def _check_export(small, fmnist, tmp_path):
    out = str(tmp_path / "export")
    summary = training.export(
        parse(
            "export",
            [
                f"--checkpoint={small}",
                f"--output_dir={out}",
                f"--calibration_data={fmnist}/test-*.tfrecord",
            ],
        )  # fmt: skip
    )
    compact, _ = weights.load_trained(small)
    x = np.random.default_rng(1).uniform(size=(2, 28, 28, 1)).astype("float32")
    served = tfc.export.serve(os.path.join(out, "saved_model"), x)[0]
    np.testing.assert_allclose(served, compact(x), atol=1e-5)
    assert summary["tflite"]["max_abs_error"] < 1e-3
    assert os.path.getsize(os.path.join(out, "model.tflite")) == summary["tflite"]["size_bytes"]
    assert os.path.exists(os.path.join(out, "model.keras"))
    with open(os.path.join(out, "report.json")) as f:
        written = json.load(f)
    totals = written["totals"]
    assert totals["params_after"] < totals["params_before"]
    # the original architecture (rebuilt, untrained): every parameter of it counts
    assert all(r["nonzero_params_before"] == r["params_before"] for r in written["layers"])
    assert "params" in summary["report_table"]


def test_compression_plot(tmp_path):
    path = compression_plot(
        str(tmp_path / "plot.png"), (1000, 0.9), {"slimming": (250, 0.88)},
        sweep=[(700, 0.85), (400, 0.6)],
    )  # fmt: skip
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_mixed_precision_and_xla_options_train(fmnist, tmp_path):
    import keras

    try:
        result = training.train(
            parse(
                "train",
                [
                    "--model=lenet5",
                    "--num_classes=10",
                    f"--train_data={fmnist}/train-*",
                    f"--checkpoint={tmp_path / 'bf16'}",
                    "--max_iteration=3",
                    "--batch_size=8",
                    "--precision=mixed_bfloat16",
                    "--jit_compile",
                    "--progress=false",
                ],
            )  # fmt: skip
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result["steps"] == 3 and np.isfinite(result["loss"])
    model, _ = weights.load_trained(str(tmp_path / "bf16"))
    assert model.layers[1].dtype_policy.name == "mixed_bfloat16"
