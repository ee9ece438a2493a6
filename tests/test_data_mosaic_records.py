"""Mosaic route: Fashion-MNIST mosaics -> shards -> build_dataset, exact masks and boxes."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tfcompress.data import build_dataset, convert, fashion_mnist, mosaic
from tfcompress.data.sources import mosaic as mosaic_source


@pytest.mark.slow
def test_segmentation_round_trip_exact(tmp_path, fmnist_dir):
    src = mosaic_source.source("segmentation", {"train": 12, "test": 5}, fmnist_dir, seed=7)
    manifest = convert.convert(src, str(tmp_path), 3)
    assert manifest["num_classes"] == 11 and manifest["classes"][0] == "background"
    images, labels = fashion_mnist.load(fmnist_dir, "test")
    canvases, masks = mosaic.segmentation_mosaic(images, labels, 5, seed=8)  # test: seed + 1
    ds = build_dataset(str(tmp_path / "test-*"), "segmentation", 5, training=False)
    x, y = next(iter(ds))
    assert x.shape == (5, 64, 64, 1) and y.shape == (5, 64, 64)
    np.testing.assert_array_equal(x.numpy(), canvases / np.float32(255))
    np.testing.assert_array_equal(y.numpy(), masks)
    hist = manifest["splits"]["test"]["class_histogram"]
    assert sum(hist.values()) == 5 * 64 * 64  # pixel counts


@pytest.mark.slow
def test_detection_round_trip_exact(tmp_path, fmnist_dir):
    src = mosaic_source.source("detection", {"train": 4, "test": 6}, fmnist_dir, seed=3)
    convert.convert(src, str(tmp_path), 2)
    images, labels = fashion_mnist.load(fmnist_dir, "test")
    canvases, boxes, classes = mosaic.detection_mosaic(images, labels, 6, seed=4)
    ds = build_dataset(str(tmp_path / "test-*"), "detection", 6, training=False, max_boxes=6)
    x, target = next(iter(ds))
    np.testing.assert_array_equal(x.numpy(), canvases / np.float32(255))
    for i in range(6):
        k = len(classes[i])
        assert target["num_boxes"][i] == k
        np.testing.assert_array_equal(target["boxes"][i, :k].numpy(), boxes[i])
        assert target["classes"][i].numpy().tolist() == classes[i].tolist() + [-1] * (6 - k)


@pytest.mark.slow
def test_command_line(tmp_path, fmnist_dir):
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.mosaic", "--task=detection", "--num_train=3",
         "--num_test=2", "--canvas_size=56", f"--output_dir={tmp_path}", "--num_shards=1",
         "--image_format=raw"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ds = build_dataset(str(tmp_path / "train-*"), "detection", 3, training=False)
    x, target = next(iter(ds))
    assert x.shape == (3, 56, 56, 1) and target["boxes"].shape == (3, 100, 4)
