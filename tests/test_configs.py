"""Every flagfile under configs/ is a contract: its first lines give the command that runs
it; a full-scale config parses into a valid config whose schedule fits its run and whose
model builds; a small config runs to the end (with the smoke overlay, on tiny real data)."""

import glob
import os

import pytest

from tfcompress import training
from tfcompress.training import methods, weights

from .test_scripts_helpers import (
    CONFIGS,
    REPO,
    data_flags,
    make_fmnist,
    make_mosaic,
    parse,
    script_of,
)

ALL = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CONFIGS, "*.cfg")))
# Deep Compression recipes: tested by test_deep_compression_script.py
DEEP = [n for n in ALL if n.endswith("_deep_compression.cfg")]
SMALL = [n for n in ALL if n.endswith("_small.cfg") or n.startswith("demo_")]
FULL = [n for n in ALL if n not in SMALL and n not in DEEP and n != "smoke.cfg"]

# The full-scale datasets: (channels, training examples) of what their converters write.
DATASETS = {
    "cityscapes": (3, 2975),
    "cifar10": (3, 50000),
    "voc2007": (3, 5011),
    "mnist": (1, 60000),
}
# Input sizes at which the big models are built here (same layers, smaller activations).
REDUCED = {"adapnet_pp": (64, 128), "pspnet": (96, 96), "yolov2": (128, 128)}
_BUILT = {}


def _header(name):
    with open(os.path.join(CONFIGS, name)) as f:
        return [next(f, "") for _ in range(16)]


def test_every_recipe_has_a_config():
    expected = {
        "adapnet_pp_cityscapes_taylor.cfg",
        "vgg19_bn_cifar10_slimming.cfg",
        "yolov2_voc2007_magnitude.cfg",
        "yolov2_voc2007_l1_filter.cfg",
        "lenet5_mnist_magnitude.cfg",
        *(f"pspnet_cityscapes_soft_topk_{r}x.cfg" for r in (2, 4, 8, 16)),
        *(f"resnet18_cifar10_soft_topk_{r}x.cfg" for r in (2, 4, 8, 16)),
    }
    assert expected <= set(FULL)
    assert len(SMALL) >= 7


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n != "smoke.cfg"])
def test_header_gives_the_command(name):
    header = "".join(_header(name))
    script = script_of(os.path.join(CONFIGS, name))
    assert f"python -m tfcompress.scripts.{script} --flagfile=configs/{name}" in header


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL)
def test_full_scale_config_parses_and_builds(name, monkeypatch):
    monkeypatch.chdir(REPO)
    script = script_of(os.path.join(CONFIGS, name))
    config = parse(script, [f"--flagfile=configs/{name}"])
    train = config.train if script == "compress" else config
    dataset = next(k for k in DATASETS if f"data/{k}/" in train.train_data)
    channels, examples = DATASETS[dataset]
    steps_per_epoch = examples // train.batch_size
    total = train.total_steps(steps_per_epoch)
    if script == "compress":
        timeline = methods.Timeline.of(config.prune, steps_per_epoch, total)
        assert timeline.end < total
    model = train.model
    size = REDUCED.get(model.name, (model.height or 28, model.width or 28))
    key = (model.name, model.num_classes, model.width_multiplier, model.options, size, channels)
    if key not in _BUILT:
        built = weights.build_model(model, (*size, channels))
        outputs = built.outputs if isinstance(built.outputs, list) else [built.outputs]
        _BUILT[key] = (built.count_params(), outputs[0].shape[-1])
    params, last_axis = _BUILT[key]
    assert params > 0
    if model.name != "yolov2":  # YOLOv2's head is anchors x (5 + classes)
        assert last_axis == model.num_classes


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("small_data")
    return {
        "fashion_mnist": make_fmnist(str(root / "fmnist"), num_train=256, num_test=64),
        "mosaic_segmentation": make_mosaic(str(root / "seg"), "segmentation"),
        "mosaic_detection": make_mosaic(str(root / "det"), "detection"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", SMALL)
def test_small_config_runs_to_the_end(name, small_data, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    path = os.path.join(CONFIGS, name)
    script = script_of(path)
    with open(path) as f:
        text = f.read()
    dataset = next(k for k in small_data if f"out/data/{k}/" in text)
    argv = [
        f"--flagfile=configs/{name}",
        "--flagfile=configs/smoke.cfg",
        *data_flags(small_data[dataset]),
        f"--checkpoint={tmp_path / 'run'}",
    ]
    config = parse(script, argv)
    run = getattr(training, script)
    result = run(config)
    train = config.train if script == "compress" else config
    assert result["steps"] == train.total_steps(train.steps_per_epoch)
    assert os.path.exists(tmp_path / "run" / "final.keras")
    assert result["test"]["examples"] > 0
    if script == "compress":
        for f in ("plan.json", "report.json", "report.txt"):
            assert os.path.exists(tmp_path / "run" / f)
        assert result["weight_sparsity"] > 0
