"""Contracts of the training library's small parts: the poly policy, config validation,
the pruning timeline, flags -> config (seed names and aliases), the run directory check."""

import json
import os

import keras
import numpy as np
import pytest
from absl import flags

from tfcompress.training import config as cfg
from tfcompress.training import devices, inputs, methods, runs
from tfcompress.training.lr import PolyLR, StepLR

from .test_scripts_helpers import parse

MODEL = cfg.ModelConfig("lenet5", num_classes=10)


def _train(**kw):
    return cfg.TrainConfig(
        **{"model": MODEL, "train_data": "d/*", "checkpoint": "c", "max_iteration": 100, **kw}
    )


def test_poly_lr_follows_the_seed_formula_and_round_trips():
    schedule = PolyLR(0.01, max_iteration=100, power=0.9)
    for step in (0, 1, 50, 99, 100, 150):
        expected = 0.01 * (1 - min(step, 100) / 100) ** 0.9
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    again = PolyLR.from_config(schedule.get_config())
    assert again.get_config() == {"learning_rate": 0.01, "max_iteration": 100, "power": 0.9}
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, PolyLR) and float(restored(50)) == float(schedule(50))
    serialized = keras.optimizers.serialize(keras.optimizers.SGD(schedule, momentum=0.9))
    assert "PolyLR" in json.dumps(serialized, default=str)
    optimizer = keras.optimizers.deserialize(serialized)
    assert float(optimizer.learning_rate) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"learning_rate": 0}, "learning_rate must be a number > 0. Received: learning_rate=0"),
        ({"max_iteration": 0}, "max_iteration must be an integer >= 1. Received: max_iteration=0"),
        ({"power": -1}, "power must be a number >= 0. Received: power=-1"),
    ],
)
@pytest.mark.slow
def test_poly_lr_rejects_bad_values(kwargs, message):
    args = {"learning_rate": 0.1, "max_iteration": 10, "power": 0.9, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PolyLR(**args)


def test_step_lr_changes_at_its_boundaries_and_round_trips():
    schedule = StepLR([3, 5], [0.1, 0.01, 0.001])
    rates = [float(schedule(step)) for step in range(7)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, StepLR)
    assert restored.get_config() == {"boundaries": [3, 5], "values": [0.1, 0.01, 0.001]}


_STEP_LR_ERRORS = [
    (([3, 3], [1.0, 0.5, 0.2]),
     r"boundaries must be strictly increasing integers >= 1 \(steps\). "
     r"Received: boundaries=\[3, 3\]"),
    (([0], [1.0, 0.5]), r"Received: boundaries=\[0\]"),
    (([3], [1.0]),
     r"values must be 2 numbers > 0 \(one more than boundaries\). "
     r"Received: values=\[1.0\]"),
    (([3], [1.0, 0.0]), r"Received: values=\[1.0, 0.0\]"),
    (([2.5], [1.0, 0.5]), r"Received: boundaries=\[2.5\]"),
    (([3], [1.0, float("nan")]), r"Received: values=\[1.0, nan\]"),
]  # fmt: skip


@pytest.mark.parametrize("args, message", _STEP_LR_ERRORS)
def test_step_lr_rejects_bad_values(args, message):
    with pytest.raises(ValueError, match=message):
        StepLR(*args)


_STEP_POLICY_ERRORS = [
    ({"lr_boundaries": (80.0,)},
     r"lr_values must be 2 numbers > 0 \(one more than lr_boundaries\). Received: lr_values=\[\]"),
    ({"lr_boundaries": (120.0, 80.0), "lr_values": (0.1, 0.01, 0.001)},
     r"lr_boundaries must be strictly increasing numbers > 0 \(epochs\). "
     r"Received: lr_boundaries=\[120.0, 80.0\]"),
    ({"lr_boundaries": (-1.0,), "lr_values": (0.1, 0.01)}, r"Received: lr_boundaries=\[-1.0\]"),
    ({"lr_boundaries": (1.0,), "lr_values": (0.1, 0)},
     r"lr_values must be 2 numbers > 0 \(one more than lr_boundaries\). "
     r"Received: lr_values=\[0.1, 0\]"),
    ({"lr_boundaries": [1.0], "lr_values": (0.1, 0.01)},
     "lr_boundaries and lr_values must be tuples"),
]  # fmt: skip


@pytest.mark.parametrize("kwargs, message", _STEP_POLICY_ERRORS)
def test_train_config_checks_the_step_policy(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _train(**kwargs)


def test_step_policy_flags_reach_the_config_and_refuse_the_poly_flags():
    base = ["--model=lenet5", "--num_classes=10", "--train_data=d/*", "--checkpoint=c",
            "--max_iteration=100"]  # fmt: skip
    config = parse("train", [*base, "--lr_boundaries=1,2.5", "--lr_values=0.1,0.01,0.001"])
    assert config.lr_boundaries == (1.0, 2.5) and config.lr_values == (0.1, 0.01, 0.001)
    assert parse("train", base).lr_boundaries == ()
    with pytest.raises(ValueError, match="--learning_rate, --power: flags of the poly "
                       "learning-rate policy; with --lr_boundaries the rates are --lr_values"):
        parse("train", [*base, "--lr_boundaries=1", "--lr_values=0.1,0.01",
                        "--learning_rate=0.1", "--power=1"])  # fmt: skip
    with pytest.raises(ValueError, match="lr_values must be numbers. Received: "):
        parse("train", [*base, "--lr_boundaries=1", "--lr_values=0.1,fast"])
    deep = [*base[:4], "--recipe=deep_compression", "--method=magnitude", "--lr_boundaries=1"]
    with pytest.raises(ValueError, match="--lr_boundaries: flags of --recipe=prune"):
        parse("compress", deep)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: _train(max_iteration=None), "Give exactly one of max_iteration"),
        (lambda: _train(epochs=2.0), "Give exactly one of max_iteration"),
        (
            lambda: _train(batch_size=0),
            "batch_size must be an integer >= 1. Received: batch_size=0",
        ),
        (
            lambda: _train(momentum=1.5),
            r"momentum must be a number in \[0, 1\). Received: momentum=1.5",
        ),
        (lambda: cfg.ModelConfig("lenet5", 0), "num_classes must be an integer >= 1"),
        (lambda: cfg.DeviceConfig(strategy="tpu"), "strategy must be one of"),
        (lambda: cfg.DeviceConfig(num_cpu_devices=2), "num_cpu_devices=2 splits the CPU for "
         "strategy 'mirrored' to train on; strategy 'default' would run on one of them"),
        (lambda: cfg.PruneConfig("pruneall", ratio=0.5), "method must be one of"),
        (lambda: cfg.PruneConfig("l1_filter"), "Give exactly one pruning target"),
        (lambda: cfg.PruneConfig("l1_filter", ratio=0.5, compression=2), "exactly one pruning"),
        (
            lambda: cfg.PruneConfig("l1_filter", ratio=1.0),
            r"ratio must be a number in \[0, 1\). Received: ratio=1.0",
        ),
        (lambda: cfg.PruneConfig("taylor", quality=1.0), "quality is Han's magnitude threshold"),
        (  # refused with the flags, not when the callback is built after the data
            lambda: cfg.PruneConfig("magnitude", quality=0.7, scope="global"),
            r"quality thresholds each layer by its own weights' std; scope='global' applies "
            r"to a ratio only. Received: quality=0.7, scope='global'",
        ),
        (
            lambda: cfg.PruneConfig("l1_filter", ratio=0.5, starting_epoch=3, ending_epoch=1),
            "ending_epoch must be at or after starting_epoch. Received: starting_epoch=3",
        ),
        (lambda: cfg.ExportConfig("c", "o", quantization="int8"), "give calibration_data"),
        (lambda: cfg.ExportConfig("c", "o", formats=("keras",), quantization="dynamic"),
         "quantization is for the TFLite file, which formats=.'keras',. does not write: add "
         "tflite to formats, or leave quantization out. Received: quantization='dynamic'"),
        (lambda: cfg.ExportConfig("c", "o", formats=("keras", "report"), calibration_data="x*"),
         "calibration_data is for the TFLite file"),
        (  # before: "give calibration_data", which was then refused as not for tflite
            lambda: cfg.ExportConfig("c", "o", formats=("keras",), quantization="int8"),
            "quantization is for the TFLite file, which formats=.'keras',. does not write: add "
            "tflite to formats, or leave quantization out. Received: quantization='int8'",
        ),
        (  # accepted and ignored before (and recorded, so a restart changing them failed)
            lambda: cfg.PruneConfig("magnitude", ratio=0.5, min_channels=4, round_to=8),
            r"method 'magnitude' does not read \['min_channels', 'round_to'\]: leave them "
            r"out. Received: min_channels=4, round_to=8",
        ),
        (
            lambda: cfg.PruneConfig("soft_topk", ratio=0.5, s=0.5),
            r"method 'soft_topk' does not read \['s'\]: leave them out. Received: s=0.5",
        ),
        (  # refused before the baseline is evaluated (it was after it)
            lambda: cfg.EvalConfig("c", "t", prune_ratios=(0.5,), method="taylor"),
            r"method must be one of \['l1_filter', 'slimming', 'magnitude'\]. Received: "
            r"method='taylor'",
        ),
        (  # ignored without a sweep before
            lambda: cfg.EvalConfig("c", "t", method="slimming", recalibrate_batches=5),
            r"\['method', 'recalibrate_batches'\] apply to the pruning sweep only, which "
            r"prune_ratios asks for; none was given. Received: method='slimming', "
            r"recalibrate_batches=5",
        ),
    ],
)
@pytest.mark.slow
def test_configs_reject_bad_values_naming_them(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make()


def test_cache_data_must_be_a_bool():
    with pytest.raises(TypeError, match="cache_data='yes'"):
        _train(cache_data="yes")


def test_timeline_and_schedules():
    prune = cfg.PruneConfig("l1_filter", ratio=0.6, starting_epoch=1, ending_epoch=3)
    timeline = methods.Timeline.of(prune, steps_per_epoch=10, total_steps=40)
    assert (timeline.begin, timeline.end, timeline.every) == (10, 30, 10)
    schedule = methods.ratio_schedule(prune, 0.6, timeline)
    events = [(s, r) for s in range(40) for should, r in [schedule(s)] if should]
    assert [s for s, _ in events] == [10, 20, 30]
    assert events[-1][1] == pytest.approx(0.6)
    one_shot = cfg.PruneConfig("slimming", ratio=0.7, starting_epoch=2)
    shot = methods.ratio_schedule(one_shot, 0.7, methods.Timeline.of(one_shot, 10, 40))
    assert [s for s in range(40) if shot(s)[0]] == [20]
    # slimming's penalty is on until it prunes, then off (the seed's -sr, then -refine)
    timeline = methods.Timeline.of(one_shot, 10, 40)
    assert methods.penalty_active(one_shot, timeline, 19)
    assert not methods.penalty_active(one_shot, timeline, 20)
    assert methods.wrap_options(one_shot) == {"penalty": 1e-4}


@pytest.mark.parametrize("scope, expected", [(None, "local"), ("global", "global")])
def test_magnitude_callback_takes_the_configured_scope(scope, expected):
    prune = cfg.PruneConfig("magnitude", ratio=0.8, scope=scope)
    timeline = methods.Timeline.of(prune, steps_per_epoch=10, total_steps=40)
    callback = methods.METHODS["magnitude"].callback(prune, 0.8, timeline)
    assert callback.scope == expected


def test_timeline_rejects_pruning_after_the_run():
    prune = cfg.PruneConfig("l1_filter", ratio=0.5, starting_epoch=1, ending_epoch=4)
    with pytest.raises(
        ValueError, match=r"Pruning ends at epoch 4 = step 40, but the run has only 40 steps"
    ):
        methods.Timeline.of(prune, steps_per_epoch=10, total_steps=40)
    soft = cfg.PruneConfig("soft_topk", ratio=0.5, starting_epoch=1)
    with pytest.raises(ValueError, match="ending_epoch must be after starting_epoch"):
        methods.Timeline.of(soft, steps_per_epoch=10, total_steps=40)


def test_flags_keep_the_seed_names_and_aliases():
    config = parse(
        "compress",
        [
            "--model=lenet5", "--num_classes=10", "--train_data=d/*", "--checkpoint=c",
            "--intialize=runs/base", "--max_iteration=500", "--percent=0.7",
            "--method=slimming", "--s=0.001", "--gpu_id=1", "--height=32", "--width=40",
            "--skip_step=5", "--save_step=50", "--learning_rate=0.2", "--power=1.0",
            "--batch_size=16", "--model_option=foo=3", "--model_option=bar=baz",
        ],
    )  # fmt: skip
    train = config.train
    assert train.initialize == "runs/base"
    assert (train.max_iteration, train.skip_step, train.save_step) == (500, 5, 50)
    assert (train.learning_rate, train.power, train.batch_size) == (0.2, 1.0, 16)
    assert (train.model.height, train.model.width) == (32, 40)
    assert train.model.options == (("foo", 3), ("bar", "baz"))
    assert train.devices.gpu_id == "1"
    assert (config.prune.ratio, config.prune.s, config.prune.method) == (0.7, 0.001, "slimming")
    soft = parse(
        "compress",
        ["--model=resnet18", "--num_classes=10", "--train_data=d/*", "--checkpoint=c",
         "--epochs=3", "--method=soft_topk", "--final_sparsity=0.75", "--starting_epoch=0",
         "--ending_epoch=2"],
    )  # fmt: skip
    assert soft.prune.ratio == 0.75 and soft.train.epochs == 3.0
    assert not soft.train.cache_data
    cached = parse(
        "train",
        ["--model=lenet5", "--num_classes=10", "--train_data=d/*", "--checkpoint=c",
         "--epochs=1", "--cache_data"],
    )  # fmt: skip
    assert cached.cache_data


@pytest.mark.parametrize(
    "line, message",
    [
        ("--model=resnet999", "flag --model=resnet999: value should be one of"),
        ("--method=prune_everything", "flag --method=prune_everything: value should be one of"),
    ],
)
@pytest.mark.slow
def test_a_flagfile_naming_an_unknown_model_or_method_fails_to_parse(tmp_path, line, message):
    flagfile = tmp_path / "bad.cfg"
    flagfile.write_text(
        f"--model=lenet5\n--num_classes=10\n--train_data=d/*\n--checkpoint=c\n"
        f"--max_iteration=5\n--method=l1_filter\n--ratio=0.5\n{line}\n"
    )
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        parse("compress", [f"--flagfile={flagfile}"])


def test_inputs_check_names_the_flag_file_and_values():
    info = inputs.DataInfo(
        flag="train_data", pattern="data/x/train-*", files=("a",), task="classification",
        image_shape=(28, 28, 1), num_classes=10, num_examples=100, manifest="data/x/manifest.json",
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"num_classes=5 does not match train_data: its manifest "
                       r"\(data/x/manifest.json\) lists 10 classes"):  # fmt: skip
        inputs.check(info, "classification", "lenet5", 5)
    with pytest.raises(ValueError, match="holds classification records, but model 'pspnet' is a "
                       "segmentation model"):  # fmt: skip
        inputs.check(info, "segmentation", "pspnet", 10)
    assert inputs.steps_per_epoch(info, 32) == 3
    with pytest.raises(ValueError, match="batch_size=128 is larger than train_data"):
        inputs.steps_per_epoch(info, 128)


def test_run_directory_refuses_another_run(tmp_path):
    context = devices.Context(strategy=None)
    run = runs.RunDirectory(str(tmp_path / "run"), context)
    record = runs.record_of(_train())
    assert run.check("train", record) is None
    run.start("train", record, {"input_shape": [28, 28, 1]})
    assert run.check("train", runs.record_of(_train(skip_step=99, checkpoint="other")))
    other_model = runs.record_of(_train(model=cfg.ModelConfig("vgg16_bn", 10)))
    with pytest.raises(ValueError, match="holds a train run of model 'lenet5' num_classes=10; "
                       "this train command builds 'vgg16_bn'"):  # fmt: skip
        run.check("train", other_model)
    with pytest.raises(ValueError, match=r"started with other settings: learning_rate=0.01 "
                       r"\(this command: 0.5\)"):  # fmt: skip
        run.check("train", runs.record_of(_train(learning_rate=0.5)))
    with open(tmp_path / "run" / "run.json") as f:
        assert json.load(f)["kind"] == "train"


def test_a_run_started_before_a_setting_existed_resumes_at_its_default(tmp_path):
    """run.json written before `latency_batch_size` was a setting: a restart with it at its
    default resumes; at another value it is another run."""
    context = devices.Context(strategy=None)
    config = cfg.CompressConfig(_train(), cfg.PruneConfig("l1_filter", ratio=0.5))
    run = runs.RunDirectory(str(tmp_path / "run"), context)
    old = runs.record_of(config)
    del old["prune"]["latency_batch_size"], old["prune"]["latency_only"]
    run.start("compress", old, {})
    defaults = runs.defaults_of(config)
    assert run.check("compress", runs.record_of(config), defaults)["config"] == old
    with pytest.raises(ValueError, match="started with other settings: "
                                         "prune.latency_batch_size=None"):
        run.check("compress", runs.record_of(config))  # without the defaults
    other = cfg.CompressConfig(_train(), cfg.PruneConfig(
        "l1_filter", compression=2, compression_target="latency", latency_batch_size=32))
    with pytest.raises(ValueError, match=r"prune.latency_batch_size=None \(this command: 32\)"):
        run.check("compress", runs.record_of(other), runs.defaults_of(other))


def test_a_restart_naming_the_methods_default_is_the_same_run(tmp_path):
    """`--normalize=l2` is what taylor does when --normalize is not given: restarting a
    run with it (or without it) resumes; another value is another run."""
    context = devices.Context(strategy=None)
    run = runs.RunDirectory(str(tmp_path / "run"), context)

    def check(**prune):
        config = cfg.CompressConfig(_train(), cfg.PruneConfig("taylor", ratio=0.5, **prune))
        return run.check("compress", runs.record_of(config), runs.defaults_of(config),
                         methods.resolve_record)

    assert check() is None
    run.start("compress", runs.record_of(
        cfg.CompressConfig(_train(), cfg.PruneConfig("taylor", ratio=0.5))), {})
    explicit = dict(normalize="l2", scope="global", taylor_aggregation="sum_then_abs")
    assert check(**explicit) is not None
    with pytest.raises(ValueError, match=r"prune.normalize='l2' \(this command: 'max'\)"):
        check(normalize="max")
    with pytest.raises(ValueError, match=r"prune.scope='global' \(this command: 'local'\)"):
        check(scope="local")
    # a per-group ranking normalises nothing by default: l2 there is another run
    local = runs.RunDirectory(str(tmp_path / "local"), context)
    config = cfg.CompressConfig(_train(), cfg.PruneConfig("taylor", ratio=0.5, scope="local"))
    local.start("compress", runs.record_of(config), {})
    l2 = cfg.CompressConfig(_train(), cfg.PruneConfig("taylor", ratio=0.5, scope="local",
                                                      normalize="l2"))
    with pytest.raises(ValueError, match=r"prune.normalize='none' \(this command: 'l2'\)"):
        local.check("compress", runs.record_of(l2), runs.defaults_of(l2), methods.resolve_record)
    # and the other way round: started explicit, restarted leaving it to the method
    other = runs.RunDirectory(str(tmp_path / "explicit"), context)
    config = cfg.CompressConfig(_train(), cfg.PruneConfig("taylor", ratio=0.5, **explicit))
    other.start("compress", runs.record_of(config), {})
    plain = cfg.CompressConfig(_train(), cfg.PruneConfig("taylor", ratio=0.5))
    assert other.check("compress", runs.record_of(plain), runs.defaults_of(plain),
                       methods.resolve_record) is not None


def test_mask_digests_agree_for_equal_masks():
    import tfcompress as tfc
    from tfcompress import models
    from tfcompress.training import weights

    masked = tfc.wrap(models.build("lenet5", 10, (28, 28, 1)), "l1_filter")
    first = weights.mask_digests(masked)
    tfc.prune(masked, 0.5)
    second = weights.mask_digests(masked)
    assert len(first) == len(second) == 1 and first != second
    assert np.all([len(d) == 64 for d in second])


def test_gpu_id_on_a_machine_without_gpus_logs_and_goes_on(monkeypatch, caplog):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with caplog.at_level("WARNING"):
        devices.select_gpu("1")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert "gpu_id=1: no GPU is visible on this machine" in caplog.text
    assert "running on the CPU" in caplog.text


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="strategy=multi_worker reads the cluster from the "
                       "TF_CONFIG environment variable"):  # fmt: skip
        devices.make_strategy("multi_worker")


def _run_two_steps(task, model, y):
    import tensorflow as tf

    from tfcompress.training import devices, loop, tasks

    x = np.zeros((2,) + tuple(model.input.shape[1:]), "float32")
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    optimizer = keras.optimizers.SGD(0.0)
    trainer = loop.Trainer(
        model,
        optimizer,
        tasks.Objective(task, "yolov2" if task == tasks.DETECTION else "lenet5", 3),
        task,
        devices.Context(tf.distribute.get_strategy()),
    )
    return loop.train_loop(
        trainer, data, 2, progress=False, metric_name=tasks.batch_metric_of(task)
    )


def test_a_detection_run_reports_no_training_accuracy():
    """Detection has no per-batch metric: its result has no "accuracy": null."""
    from tfcompress.models.yolov2 import yolov2

    model = yolov2(3, (32, 32, 1), width=0.125)
    y = {
        "boxes": np.array([[[0.1, 0.1, 0.5, 0.5]]] * 2, "float32"),
        "classes": np.zeros((2, 1), "int32"),
        "num_boxes": np.ones((2,), "int32"),
        "difficult": np.zeros((2, 1), "int32"),
    }
    result = _run_two_steps("detection", model, y)
    assert result["steps"] == 2 and np.isfinite(result["loss"])
    assert set(result) == {"steps", "loss", "seconds"}


def test_a_classification_run_reports_its_training_accuracy():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    result = _run_two_steps("classification", model, np.zeros((2,), "int32"))
    assert set(result) == {"steps", "loss", "seconds", "accuracy"}
    assert 0.0 <= result["accuracy"] <= 1.0
