"""train -> compress (from the trained run) -> evaluate (with a one-shot sweep) -> export,
through the library calls the scripts make: every artifact exists and agrees with the
model it came from."""

import json
import os
import shutil

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


@pytest.fixture(scope="module")
def runs(fmnist, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = [
        "--model=lenet5", "--num_classes=10",
        f"--train_data={fmnist}/train-*.tfrecord", f"--test_data={fmnist}/test-*.tfrecord",
        "--batch_size=16", "--max_iteration=8", "--skip_step=4", "--save_step=4",
        "--progress=false",
    ]  # fmt: skip
    base = str(root / "base")
    trained = training.train(parse("train", [*common, f"--checkpoint={base}"]))
    small = str(root / "slim")
    compressed = training.compress(
        parse(
            "compress",
            [
                *common,
                f"--checkpoint={small}",
                f"--initialize={base}",
                "--method=l1_filter",
                "--percent=0.5",
                "--starting_epoch=0.25",
                "--steps_per_epoch=8",
            ],
        )  # fmt: skip
    )
    return {"base": base, "slim": small, "trained": trained, "compressed": compressed}


def test_train_and_compress_write_their_run(runs):
    for name in ("run.json", "result.json", "final.keras", "checkpoint"):
        assert os.path.exists(os.path.join(runs["base"], name))
    for name in ("plan.json", "report.json", "report.txt"):
        assert os.path.exists(os.path.join(runs["slim"], name))
    assert os.listdir(os.path.join(runs["base"], "tensorboard"))
    result = runs["compressed"]
    assert result["steps"] == 8 and 0 < result["test"]["accuracy"] <= 1
    assert result["params_after"] < result["params_before"] == runs["trained"]["params"]
    with open(os.path.join(runs["slim"], "run.json")) as f:
        run = json.load(f)
    assert run["kind"] == "compress" and run["resolved"]["ratio"] == 0.5


def test_evaluate_with_a_sweep(runs, fmnist, tmp_path):
    out = str(tmp_path / "eval.json")
    result = training.evaluate(
        parse(
            "evaluate",
            [
                f"--checkpoint={runs['base']}",
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
    assert result["metrics"]["accuracy"] == pytest.approx(runs["trained"]["test"]["accuracy"])
    params = [p["params"] for p in result["sweep"]]
    assert params[0] > params[1] and result["params"] > params[0]
    with open(out) as f:
        assert json.load(f)["sweep"][1]["ratio"] == 0.6
    with pytest.raises(ValueError, match=r"num_classes=3 does not match checkpoint"):
        training.evaluate(
            parse(
                "evaluate",
                [f"--checkpoint={runs['base']}", f"--test_data={fmnist}/test-*", "--num_classes=3"],
            )  # fmt: skip
        )
    with pytest.raises(ValueError, match="holds model 'lenet5', not model='vgg16_bn'"):
        training.evaluate(
            parse(
                "evaluate",
                [
                    f"--checkpoint={runs['base']}",
                    f"--test_data={fmnist}/test-*",
                    "--model=vgg16_bn",
                ],
            )  # fmt: skip
        )


def test_a_run_without_final_model_is_rebuilt_from_its_checkpoint(runs, tmp_path):
    copy = str(tmp_path / "slim")
    shutil.copytree(runs["slim"], copy)
    os.remove(os.path.join(copy, "final.keras"))
    rebuilt, run = weights.load_trained(copy)
    final, _ = weights.load_trained(runs["slim"])
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    assert run["kind"] == "compress" and rebuilt.count_params() == final.count_params()
    np.testing.assert_allclose(rebuilt(x), final(x), atol=1e-5)


def test_export_every_format(runs, fmnist, tmp_path):
    out = str(tmp_path / "export")
    summary = training.export(
        parse(
            "export",
            [
                f"--checkpoint={runs['slim']}",
                f"--output_dir={out}",
                f"--calibration_data={fmnist}/test-*.tfrecord",
            ],
        )  # fmt: skip
    )
    compact, _ = weights.load_trained(runs["slim"])
    x = np.random.default_rng(1).uniform(size=(2, 28, 28, 1)).astype("float32")
    served = tfc.export.serve(os.path.join(out, "saved_model"), x)[0]
    np.testing.assert_allclose(served, compact(x), atol=1e-5)
    assert summary["tflite"]["max_abs_error"] < 1e-3
    assert os.path.getsize(os.path.join(out, "model.tflite")) == summary["tflite"]["size_bytes"]
    assert os.path.exists(os.path.join(out, "model.keras"))
    with open(os.path.join(out, "report.json")) as f:
        totals = json.load(f)["totals"]
    assert totals["params_after"] < totals["params_before"]
    assert "params" in summary["report_table"]


def test_compression_plot(tmp_path):
    path = compression_plot(
        str(tmp_path / "plot.png"), (1000, 0.9), {"slimming": (250, 0.88)},
        sweep=[(700, 0.85), (400, 0.6)],
    )  # fmt: skip
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
