"""A NumPy scalar is taken wherever an int (or a number) is (`tfcompress.numbers`): a count
read off an array, `np.int64(16)`, was refused by validators of their own that took only
`int`, while `16` was taken. A bool is never an int. What is kept is the Python value, so
configs stay JSON. (`tfc.report(sequence_length=)`: tests/test_report.py; `ChannelMask`:
tests/test_errors.py; `RankingOptions`: tests/test_ranking_options.py.)"""

import json
import re

import keras
import numpy as np
import pytest

from tfcompress.callbacks import PruningSummaries
from tfcompress.data import parse
from tfcompress.layers.space_to_depth import SpaceToDepth
from tfcompress.losses import SegmentationCrossEntropy, YOLOv2RegionLoss
from tfcompress.losses.detection_targets import pad_detection_targets
from tfcompress.metrics import MeanIoU, VOCMeanAP
from tfcompress.models import vgg
from tfcompress.numbers import check_count, check_int
from tfcompress.training.lr import PolyLR


@pytest.mark.parametrize("value", [np.int64(3), np.int32(3), np.uint16(3), 3])
def test_integer_checks_take_numpy_integers(value):
    check_count("n", value)
    check_int("n", value, minimum=3)


@pytest.mark.parametrize("bad", [True, np.bool_(False), 3.0, np.float64(3), "3", None])
def test_integer_checks_refuse_bools_floats_and_text(bad):
    with pytest.raises(ValueError, match=re.escape(
            f"n must be an integer >= 1. Received: n={bad!r}")):
        check_count("n", bad)
    with pytest.raises(ValueError, match=re.escape(f"n must be an integer. Received: n={bad!r}")):
        check_int("n", bad)
    check_int("n", None, none=True)


def _configs_are_plain(config, **expected):
    """The values are the Python ones (JSON, `==`), of the type given."""
    json.dumps(config)
    for key, value in expected.items():
        assert config[key] == value and type(config[key]) is type(value), key


def test_metrics_losses_and_layers_take_numpy_integers():
    _configs_are_plain(MeanIoU(np.int64(3), ignore_label=np.int64(255)).get_config(),
                       num_classes=3, ignore_label=255)
    _configs_are_plain(VOCMeanAP(np.int64(3)).get_config(), num_classes=3)
    loss = YOLOv2RegionLoss(np.int64(3), coord_scale=np.float32(2.0), ignore_thresh=np.float64(0.5))
    _configs_are_plain(loss.get_config(), num_classes=3, coord_scale=2.0, ignore_thresh=0.5)
    _configs_are_plain(SegmentationCrossEntropy(ignore_label=np.int64(-1)).get_config(),
                       ignore_label=-1)
    _configs_are_plain(SpaceToDepth(np.int64(2)).get_config(), block_size=2)
    schedule = PolyLR(np.float32(0.5), np.int64(100), power=np.int64(1))
    _configs_are_plain(schedule.get_config(), learning_rate=0.5, max_iteration=100, power=1)
    assert float(schedule(50)) == pytest.approx(0.25)
    assert pad_detection_targets([[[0, 0, 1, 1]]], [[2]], np.int64(2)).shape == (1, 2, 5)
    assert parse.DetectionParser((4, 4), max_boxes=np.int64(2)).max_boxes == 2
    assert type(parse.DetectionParser((4, 4), max_boxes=np.int64(2)).max_boxes) is int
    assert PruningSummaries("logs", update_freq=np.int64(5)).update_freq == 5


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: MeanIoU(True), "num_classes must be an integer >= 1. Received: num_classes=True"),
        (lambda: MeanIoU(3, ignore_label=2.0),
         "ignore_label must be an integer. Received: ignore_label=2.0"),
        (lambda: VOCMeanAP(np.bool_(True)),
         "num_classes must be an integer >= 1. Received: num_classes=np.True_"),
        (lambda: YOLOv2RegionLoss(2.0), "num_classes must be an integer >= 1. Received: "
         "num_classes=2.0"),
        (lambda: YOLOv2RegionLoss(3, object_scale=True), "object_scale must be a number >= 0. "
         "Received: object_scale=True"),
        (lambda: SegmentationCrossEntropy(ignore_label=True),
         "ignore_label must be an integer. Received: ignore_label=True"),
        (lambda: SpaceToDepth(1), "block_size must be an integer >= 2. Received: block_size=1"),
        (lambda: SpaceToDepth(True), "block_size must be an integer >= 2. Received: "
         "block_size=True"),
        (lambda: PolyLR(0.1, True), "max_iteration must be an integer >= 1. Received: "
         "max_iteration=True"),
        (lambda: pad_detection_targets([], [], 2.0), "max_boxes must be an integer >= 1. "
         "Received: max_boxes=2.0"),
        (lambda: parse.DetectionParser((4, 4), max_boxes=2.5), "max_boxes must be an integer "
         ">= 1. Received: max_boxes=2.5"),
        (lambda: PruningSummaries("logs", update_freq=True), "update_freq must be 'epoch' or a "
         "positive integer. Received: update_freq=True"),
    ],
)  # fmt: skip
def test_bools_and_floats_are_still_refused_by_name(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_model_builders_take_numpy_widths_bins_and_rates():
    cfg = [np.int64(4), "M", np.int32(8)]
    model = vgg.vgg_bn(10, (8, 8, 3), cfg)
    assert [lay.filters for lay in model.layers if isinstance(lay, keras.layers.Conv2D)] == [4, 8]
    json.dumps(model.get_config())
    with pytest.raises(ValueError, match=re.escape("Received: cfg=[True, 'M', 8]")):
        vgg.vgg_bn(10, (8, 8, 3), [True, "M", 8])


def test_a_numpy_float_fit_seconds_is_taken():
    from tfcompress.latency import measure_cost_table

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    # checked before verbose, which fails here: fit_seconds=np.float32(0.5) was refused
    with pytest.raises(ValueError, match=re.escape("verbose must be 0, 1 or 2. Received: "
                                                   "verbose=5")):
        measure_cost_table(model, fit_seconds=np.float32(0.5), verbose=5)
    with pytest.raises(ValueError, match=re.escape("fit_seconds must be a number >= 0. "
                                                   "Received: fit_seconds=True")):
        measure_cost_table(model, fit_seconds=True)


@pytest.mark.slow  # builds two segmentation models (~5 s)
def test_segmentation_builders_take_numpy_bins_and_dropout():
    from tfcompress import models

    small = dict(num_classes=2, input_shape=(32, 32, 3), width=0.0625)
    pspnet = models.build("pspnet", bins=(np.int64(1), np.int32(2)), **small)
    adapnet = models.build("adapnet_pp", dropout_rate=np.float32(0.5), **small)
    for model in (pspnet, adapnet):
        json.dumps(model.get_config())  # Python values in the layer configs
    dropouts = [lay.rate for lay in adapnet.layers if isinstance(lay, keras.layers.Dropout)]
    assert dropouts and all(type(r) is float and r == 0.5 for r in dropouts)
    with pytest.raises(ValueError, match=re.escape("Received: bins=(True, 2)")):
        models.build("pspnet", bins=(True, 2), **small)
