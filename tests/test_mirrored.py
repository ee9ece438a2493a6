"""The pruning callbacks under tf.distribute.MirroredStrategy with two logical CPU
devices (configured before TensorFlow initialises, hence a subprocess): scores and masks
agree on every replica, and the pruned model strips exactly."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import json, os, sys
    sys.path.insert(0, os.getcwd())
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import tfcompress as tfc
    from tfcompress import callbacks as cb, schedules
    from tests.pruning_models import compile_model, conv_bn_net, data

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x, y = data(128)
    recipes = {
        "taylor": lambda: cb.StructuredPruning(
            schedules.Iterative(0.5, begin_step=3, end_step=12, frequency=3), method="taylor",
            scope="global"),
        "magnitude": lambda: cb.MagnitudePruning(
            schedules.Polynomial(0.0, 0.75, begin_step=0, end_step=12, frequency=3)),
        "soft_topk": lambda: cb.SoftTopK(  # 8-channel layers: ACoSP's 8 would keep all
            schedules.ACoSPTemperature(0.5, ending_epoch=1), min_channels=1),
    }
    PRUNING_STATE = {"mask", "kernel_mask", "taylor_sum", "taylor_count", "score",
                     "temperature", "keep", "hard"}
    report = {"replicas": strategy.num_replicas_in_sync}
    for method, make in recipes.items():
        keras.utils.set_random_seed(0)
        with strategy.scope():
            masked = compile_model(tfc.wrap(conv_bn_net(), method))
        masked.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[make()])
        disagree, checked = [], 0
        for var in masked.variables:
            per_replica = getattr(var.value, "values", None)
            if per_replica is None or var.name not in PRUNING_STATE:
                continue  # (BatchNorm moving statistics are per replica in Keras)
            values = [np.asarray(v) for v in per_replica]
            checked += 1
            if any(not np.array_equal(values[0], v) for v in values[1:]):
                disagree.append(var.path)
        compact = tfc.strip(masked)
        a, b = np.asarray(masked(x[:16])), np.asarray(compact(x[:16]))
        report[method] = {
            "checked": checked, "disagree": disagree,
            "stats": tfc.pruners.mask_stats(masked),
            "parity": float(np.abs(a - b).max() / np.abs(a).max()),
        }
    print("REPORT " + json.dumps(report))
''')


@pytest.fixture(scope="module")
def report():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow",
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return json.loads(lines[-1][len("REPORT "):])


@pytest.mark.slow
def test_two_replicas(report):
    assert report["replicas"] == 2


@pytest.mark.parametrize("method", ["taylor", "magnitude", "soft_topk"])
def test_masks_and_scores_agree_on_every_replica(report, method):
    r = report[method]
    assert r["checked"] > 0 and r["disagree"] == []
    assert r["parity"] <= 1e-4
    key = "weight_sparsity" if method == "magnitude" else "channel_sparsity"
    assert r["stats"][key] >= 0.45
