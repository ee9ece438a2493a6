"""Coupled (the seeds': PyTorch, Caffe, TF1) and decoupled (Keras) SGD weight decay."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcompress.training import config as cfg
from tfcompress.training.optimizers import SGD

LR, MOMENTUM, WD, STEPS = 0.1, 0.9, 1e-4, 1000


def _torch_sgd(w, grads, lr, momentum, weight_decay):
    """A NumPy transcription of `torch.optim.SGD.step` (dampening 0, no nesterov)."""
    buf = None
    for g in grads:
        d_p = g + weight_decay * w
        buf = d_p.copy() if buf is None else momentum * buf + d_p
        w = w - lr * buf
    return w


def _run(mode, steps=STEPS, **kwargs):
    w = keras.Variable(np.ones((2,), "float32"), name="w")
    opt = SGD(LR, momentum=MOMENTUM, weight_decay=WD, weight_decay_mode=mode, **kwargs)
    opt.build([w])
    zero = tf.zeros((2,))

    @tf.function
    def train():  # one graph, a while loop of `steps` optimizer steps
        for _ in tf.range(steps):
            opt.apply([zero], [w])

    train()
    assert int(opt.iterations) == steps
    return np.asarray(w)


def test_coupled_weight_decay_matches_torch_sgd():
    expected = _torch_sgd(np.ones(2), [np.zeros(2)] * STEPS, LR, MOMENTUM, WD)
    coupled = _run("coupled")
    np.testing.assert_allclose(coupled, expected, rtol=1e-4)
    assert coupled[0] == pytest.approx(0.906, abs=1e-3)
    decoupled = _run("decoupled")
    np.testing.assert_allclose(decoupled, (1 - LR * WD) ** STEPS, rtol=1e-4)
    assert decoupled[0] == pytest.approx(0.990, abs=1e-3)


def test_coupled_weight_decay_matches_torch_sgd_with_gradients():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) for _ in range(20)]
    w = keras.Variable(np.ones(3, "float32"))
    opt = SGD(0.05, momentum=0.9, weight_decay=0.01)
    for g in grads:
        opt.apply([g.astype("float32")], [w])
    expected = _torch_sgd(np.ones(3), grads, 0.05, 0.9, 0.01)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5)


def test_weight_decay_default_is_coupled():
    assert cfg.DEFAULT_WEIGHT_DECAY_MODE == "coupled"
    assert SGD(0.1, weight_decay=WD).weight_decay_mode == "coupled"
    assert cfg.TrainConfig(cfg.ModelConfig("lenet5", 10), "d", "c", epochs=1).weight_decay_mode == (
        "coupled"
    )


def test_coupled_weight_decay_skips_excluded_variables():
    kept = keras.Variable(np.ones(2, "float32"), name="logits")
    decayed = keras.Variable(np.ones(2, "float32"), name="kernel")
    opt = SGD(LR, momentum=MOMENTUM, weight_decay=WD)
    opt.exclude_from_weight_decay(var_names=["logits"])
    zero = np.zeros(2, "float32")
    for _ in range(10):
        opt.apply([zero, zero], [kept, decayed])
    np.testing.assert_array_equal(np.asarray(kept), 1.0)
    assert np.asarray(decayed)[0] < 1.0


def test_sgd_config_round_trips_the_weight_decay_mode():
    opt = SGD(0.1, momentum=0.9, weight_decay=WD, weight_decay_mode="decoupled")
    config = opt.get_config()
    assert config["weight_decay_mode"] == "decoupled"
    clone = SGD.from_config(config)
    assert clone.weight_decay_mode == "decoupled"
    assert clone.get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored, SGD) and restored.weight_decay_mode == "decoupled"


def test_sgd_rejects_an_unknown_weight_decay_mode():
    with pytest.raises(ValueError, match="Received: weight_decay_mode='l2'"):
        SGD(0.1, weight_decay=WD, weight_decay_mode="l2")


def test_train_config_rejects_an_unknown_weight_decay_mode():
    with pytest.raises(ValueError, match="Received: weight_decay_mode='adamw'"):
        cfg.TrainConfig(
            cfg.ModelConfig("lenet5", 10), "d", "c", epochs=1, weight_decay_mode="adamw"
        )


def test_prune_config_rejects_an_unknown_normalize():
    with pytest.raises(ValueError, match="Received: normalize='l1'"):
        cfg.PruneConfig("taylor", ratio=0.5, normalize="l1")


MIRRORED = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, os.getcwd())
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfcompress.training.optimizers import SGD

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        w = keras.Variable(np.ones(2, "float32"))
        opt = SGD(0.1, momentum=0.9, weight_decay=0.01)
        opt.build([w])

    # each replica's gradient is 0.5: summed over the replicas, 1.0
    step = tf.function(lambda: strategy.run(lambda: opt.apply([tf.fill((2,), 0.5)], [w])))
    for _ in range(50):
        step()
    values = [np.asarray(v).tolist() for v in w.value.values]
    steps = int(np.asarray(opt.iterations.value.values[0]))
    print("REPORT " + json.dumps({"values": values, "steps": steps}))
""")


@pytest.mark.slow
def test_coupled_weight_decay_under_mirrored_strategy_matches_torch_sgd():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "KERAS_BACKEND": "tensorflow",
        "CUDA_VISIBLE_DEVICES": "",
    }
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    report = json.loads(lines[-1][len("REPORT ") :])
    expected = _torch_sgd(np.ones(2), [np.ones(2)] * 50, 0.1, 0.9, 0.01)
    assert report["steps"] == 50
    for replica in report["values"]:  # the decay is added once, after the all-reduce
        np.testing.assert_allclose(replica, expected, rtol=1e-5)


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_make_optimizer_builds_the_configured_weight_decay_mode(mode):
    from tfcompress.training import common

    config = cfg.TrainConfig(
        cfg.ModelConfig("lenet5", 10), "d", "c", epochs=1, weight_decay_mode=mode
    )
    plan = common.Plan("classification", None, None, (28, 28, 1), steps_per_epoch=10,
                       total_steps=100)
    opt = common.make_optimizer(config, plan)
    assert isinstance(opt, SGD)
    assert (opt.weight_decay_mode, opt.weight_decay, opt.momentum) == (mode, 1e-4, 0.9)


def test_coupled_weight_decay_under_a_loss_scale_optimizer():
    w = keras.Variable(np.ones(2, "float32"))
    inner = SGD(LR, momentum=MOMENTUM, weight_decay=0.01)
    opt = keras.optimizers.LossScaleOptimizer(inner)
    for _ in range(5):
        opt.apply([np.zeros(2, "float32")], [w])
    expected = _torch_sgd(np.ones(2), [np.zeros(2)] * 5, LR, MOMENTUM, 0.01)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5)
