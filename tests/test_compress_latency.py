"""`compress --compression=N --compression_target=latency`: the script prunes to 1/N of
the latency a cost table predicts. The table is hand-built (costs linear in the channel
counts, so the prediction for any widths is computed by hand below) and put in the
machine's cache where `measure_cost_table` looks, so nothing is timed to plan."""

import json
import os
import re

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import training
from tfcompress.graph import DependencyGraph
from tfcompress.latency import CostTable, LayerCost, machine_key, model_signature, save_table
from tfcompress.latency.measure import DEFAULT_FRACTIONS, FIT_SECONDS, REPEATS
from tfcompress.training import compress_lib, devices
from tfcompress.training import config as cfg

from .test_scripts_helpers import make_fmnist, parse


def _ms(c1, c2, f):
    """The hand-built table's prediction for LeNet-5 keeping c1 / c2 / f filters of
    conv1 (20) / conv2 (50) / fc1 (500): base 1 ms + conv1 c1 / 20 + conv2 c1 c2 / 1000 +
    fc1 (16 c2) f / 400000 + logits f / 500: 5 ms in full."""
    return 1 + c1 / 20 + c1 * c2 / 1000 + 16 * c2 * f / 400000 + f / 500


def _table(model, runtime="tf", fold_batchnorm=False):
    """Exact on its grids: linear interpolation of linear (and bilinear) costs; cached
    under `runtime`'s machine key, for tables timed folded or not."""
    layers = {
        "conv1": LayerCost(("out",), ((8, 20),), [8 / 20, 1.0]),
        "conv2": LayerCost(("in", "out"), ((8, 20), (8, 50)),
                           [[a * b / 1000 for b in (8, 50)] for a in (8, 20)]),
        "fc1": LayerCost(("in", "out"), ((128, 800), (8, 500)),
                         [[a * b / 400000 for b in (8, 500)] for a in (128, 800)]),
        "logits": LayerCost(("in",), ((8, 500),), [8 / 500, 1.0]),
    }
    signature = model_signature(model, 1, DEFAULT_FRACTIONS, 8, DependencyGraph(model),
                                fold_batchnorm=fold_batchnorm)
    return CostTable(layers, base_ms=1.0, multiple=8, batch_size=1,
                     machine=machine_key(runtime), signature=signature,
                     repeats=REPEATS, fit_seconds=FIT_SECONDS)  # as the script asks


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=128, num_test=32)


def _args(fmnist, checkpoint, *extra):
    return [
        "--model=lenet5", "--num_classes=10", f"--train_data={fmnist}/train-*.tfrecord",
        f"--test_data={fmnist}/test-*.tfrecord", "--batch_size=16", "--max_iteration=6",
        "--skip_step=3", "--save_step=3", "--progress=false", f"--checkpoint={checkpoint}",
        "--method=l1_filter", "--compression=2", "--compression_target=latency",
        "--starting_epoch=0.5", "--steps_per_epoch=4", *extra,
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("runtime, fold", [("tf", False), ("tflite", True)])
def test_compress_to_half_the_predicted_latency(fmnist, tmp_path, monkeypatch, runtime, fold):
    monkeypatch.setenv("TFCOMPRESS_LATENCY_CACHE", str(tmp_path / "cache"))
    table = _table(tfc.models.build("lenet5", 10, (28, 28, 1)), runtime, fold)
    save_table(table, model_name="lenet5")  # a cache hit: measure_cost_table reads it
    run = str(tmp_path / "run")
    flags = [f"--latency_runtime={runtime}"] + ["--latency_fold_batchnorm"] * fold
    result = training.compress(parse("compress", _args(fmnist, run, *flags)))
    compact = keras.saving.load_model(os.path.join(run, "final.keras"))
    c1, c2, f = (compact.get_layer(n).filters if n != "fc1" else compact.get_layer(n).units
                 for n in ("conv1", "conv2", "fc1"))
    assert all(n % 8 == 0 or n == full for n, full in ((c1, 20), (c2, 50), (f, 500)))
    latency = result["latency"]
    assert (latency["runtime"], latency["fold_batchnorm"]) == (runtime, fold)
    assert latency["target_ms"] == pytest.approx(2.5)  # half of 5 ms
    assert latency["predicted_original_ms"] == pytest.approx(5.0)
    assert latency["predicted_ms"] == pytest.approx(_ms(c1, c2, f))
    assert latency["predicted_ms"] <= 2.5
    assert latency["measured_ms"] > 0 and latency["measured_original_ms"] > 0
    assert latency["measured_speedup"] == pytest.approx(
        latency["measured_original_ms"] / latency["measured_ms"])
    with open(os.path.join(run, "run.json")) as fh:
        resolved = json.load(fh)["resolved"]
    assert CostTable.from_dict(resolved["cost_table"]) == table  # a restart prunes to it
    assert resolved["ratio"] == pytest.approx(0.5)


def test_an_unreachable_latency_target_is_refused_before_training(fmnist, tmp_path, monkeypatch):
    # the narrowest widths (8, 8, 8): 1 + 0.4 + 0.064 + 0.00256 + 0.016 = 1.48256 ms,
    # so at most 5 / 1.48256 = 3.37x; 4x is refused before anything is written
    monkeypatch.setenv("TFCOMPRESS_LATENCY_CACHE", str(tmp_path / "cache"))
    save_table(_table(tfc.models.build("lenet5", 10, (28, 28, 1))), model_name="lenet5")
    run = tmp_path / "run"
    args = [a if a != "--compression=2" else "--compression=4" for a in _args(fmnist, run)]
    with pytest.raises(ValueError, match=re.escape(
            "compression=4 with compression_target='latency': the target 1.25 ms (1/4 of "
            "the predicted 5 ms per batch of 1) is below the fastest the cost table "
            "predicts for model 'lenet5' pruned, 1.483 ms: the largest compression it can "
            "reach is 3.37.")):
        training.compress(parse("compress", args))
    assert not run.exists() or not os.listdir(run)


@pytest.mark.slow
def test_latency_only_cuts_the_named_groups(fmnist, tmp_path, monkeypatch):
    # conv2 and fc1 only: conv1 keeps its 20 filters (1 + 1 ms), so conv2 and fc1 must
    # fall to 1 + 0.02 c2 + 0.00004 c2 f + 0.002 f <= 2.5 ms between them
    monkeypatch.setenv("TFCOMPRESS_LATENCY_CACHE", str(tmp_path / "cache"))
    save_table(_table(tfc.models.build("lenet5", 10, (28, 28, 1))), model_name="lenet5")
    run = tmp_path / "run"
    result = training.compress(parse("compress", _args(
        fmnist, run, "--latency_only=conv2,fc1")))
    compact = keras.saving.load_model(run / "final.keras")
    c1, c2, f = (compact.get_layer("conv1").filters, compact.get_layer("conv2").filters,
                 compact.get_layer("fc1").units)
    assert c1 == 20 and (c2, f) != (50, 500)
    assert result["latency"]["predicted_ms"] == pytest.approx(_ms(c1, c2, f))
    assert result["latency"]["predicted_ms"] <= 2.5
    with pytest.raises(ValueError, match=re.escape(
            "latency_only=('dense',) matches none of the 3 mask layers of model 'lenet5'")):
        training.compress(parse("compress", _args(fmnist, tmp_path / "other",
                                                  "--latency_only=dense")))


def test_a_restart_prunes_to_the_table_in_run_json(tmp_path, monkeypatch):
    monkeypatch.setenv("TFCOMPRESS_LATENCY_CACHE", str(tmp_path / "empty"))  # nothing cached
    model = tfc.models.build("lenet5", 10, (28, 28, 1))
    table = _table(model)
    prune = cfg.PruneConfig("l1_filter", compression=2, compression_target="latency")
    existing = {"resolved": {"cost_table": table.to_dict()}}
    context = devices.Context(strategy=None)
    assert compress_lib.latency_table(model, prune, existing, context) == table
    params = cfg.PruneConfig("l1_filter", compression=2, compression_target="params")
    assert compress_lib.latency_table(model, params, None, context) is None
    worker = devices.Context(strategy=None, task_type="worker", task_id=1)
    with pytest.raises(ValueError, match="the workers of a multi-worker run would each "
                                         "measure their own"):
        compress_lib.latency_table(model, prune, None, worker)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "l1_filter", "ratio": 0.5, "compression_target": "latency"},
         "compression_target='latency' reads compression=N (1/N of the predicted latency). "
         "Received: compression=None, ratio=0.5"),
        ({"method": "soft_topk", "compression": 2, "compression_target": "latency"},
         "method 'soft_topk' cannot. Received: method='soft_topk'"),
        ({"method": "magnitude", "compression": 2, "compression_target": "latency"},
         "method 'magnitude' cannot. Received: method='magnitude'"),
        ({"method": "l1_filter", "compression": 2, "compression_target": "latency",
          "round_to": 8}, "it cannot be combined with round_to=8"),
        ({"method": "l1_filter", "compression": 2, "compression_target": "latency",
          "scope": "local"}, "cannot be combined with scope='local'."),  # the flag set alone
        ({"method": "slimming", "compression": 2, "compression_target": "latency",
          "ranking_rule": "strict_quantile"},
         "cannot be combined with ranking_rule='strict_quantile'."),
        ({"method": "l1_filter", "compression": 2, "latency_batch_size": 32},
         "latency_batch_size: read only with compression_target='latency'. Received: "
         "compression_target=None, latency_batch_size=32"),
        ({"method": "l1_filter", "compression": 2, "compression_target": "params",
          "latency_runtime": "tflite", "latency_fold_batchnorm": True},
         "latency_runtime, latency_fold_batchnorm: read only with "
         "compression_target='latency'"),
        ({"method": "l1_filter", "compression": 2, "compression_target": "latency",
          "latency_only": ("",)}, "latency_only must be a tuple of non-empty texts"),
        ({"method": "l1_filter", "compression": 2, "latency_only": ("conv",)},
         "latency_only: read only with compression_target='latency'"),
        ({"method": "l1_filter", "compression": 2, "compression_target": "latency",
          "latency_batch_size": 0}, "latency_batch_size must be an integer >= 1. "
         "Received: latency_batch_size=0"),
        ({"method": "l1_filter", "compression": 2, "compression_target": "latency",
          "latency_runtime": "onnx"}, "latency_runtime must be one of"),
        ({"method": "l1_filter", "compression": 2, "compression_target": "latency",
          "latency_fold_batchnorm": 1}, "latency_fold_batchnorm must be True or False. "
         "Received: latency_fold_batchnorm=1"),
    ],
)
def test_latency_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cfg.PruneConfig(**kwargs)


def test_latency_flags_reach_the_config():
    config = parse("compress", [
        "--model=lenet5", "--num_classes=10", "--train_data=x", "--checkpoint=y",
        "--epochs=2", "--method=taylor", "--compression=4", "--compression_target=latency",
        "--latency_batch_size=32", "--latency_runtime=tflite", "--latency_fold_batchnorm"])
    prune = config.prune
    assert (prune.compression_target, prune.latency_batch_size, prune.latency_runtime,
            prune.latency_fold_batchnorm) == ("latency", 32, "tflite", True)
    with pytest.raises(Exception, match="latency_runtime"):
        parse("compress", ["--train_data=x", "--checkpoint=y", "--epochs=2",
                           "--method=l1_filter", "--compression=2",
                           "--compression_target=latency", "--latency_runtime=onnx"])


def test_export_fold_batchnorm_writes_the_folded_model(tmp_path):
    """`export --fold_batchnorm`: the files serve the folded model (no BatchNorm, the
    same outputs); the report counts the model as trained."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    bn = model.get_layer("bn")
    bn.moving_mean.assign([0.1, -0.2, 0.3, 0.0])
    bn.moving_variance.assign([0.5, 2.0, 1.0, 0.25])
    path = str(tmp_path / "model.keras")
    model.save(path)
    out = str(tmp_path / "out")
    summary = training.export(parse("export", [
        f"--checkpoint={path}", f"--output_dir={out}", "--formats=keras,saved_model,report",
        "--fold_batchnorm"]))
    assert summary["fold_batchnorm"] == {"batchnorm_layers": [1, 0]}
    folded = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert not any(isinstance(x, keras.layers.BatchNormalization) for x in folded.layers)
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(folded(x), model(x), atol=1e-5)
    served = tfc.export.serve(os.path.join(out, "saved_model"), x)[0]
    np.testing.assert_allclose(served, model(x), atol=1e-5)
    assert summary["report"]["params_after"] == model.count_params()
    with pytest.raises(ValueError, match="fold_batchnorm must be True or False. Received: "
                                         "fold_batchnorm='yes'"):
        cfg.ExportConfig(path, out, fold_batchnorm="yes")
