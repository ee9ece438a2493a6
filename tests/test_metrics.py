"""Contracts of the task metrics, checked against values worked out by hand."""

import re

import keras
import numpy as np
import pytest

from tfcompress.losses import SegmentationCrossEntropy
from tfcompress.metrics import MeanIoU, VOCMeanAP

# 2 x 4 labels with one ignored pixel; the 7 labelled (truth, prediction) pairs give the
# confusion matrix (rows = truth) [[1, 1, 0], [0, 2, 1], [1, 0, 1]]:
#   IoU = [1/3, 2/4, 1/3] -> mIoU 7/18; recall = [1/2, 2/3, 1/2] -> mAcc 5/9; allAcc 4/7.
Y_TRUE = np.array([[[0, 0, 1, 1], [2, 2, 255, 1]]])
Y_PRED = np.array([[[0, 1, 1, 1], [2, 0, 0, 2]]])


def test_mean_iou_confusion_matrix_by_hand_with_ignored_pixel():
    metric = MeanIoU(num_classes=3)
    metric.update_state(Y_TRUE, Y_PRED)
    # row / column 3 count labels / predictions out of range: none here
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(metric.confusion),
        [[1, 1, 0, 0], [0, 2, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]],
    )
    results = metric.results()
    assert results["mIoU"] == pytest.approx(7 / 18, abs=1e-6)
    assert results["mAcc"] == pytest.approx(5 / 9, abs=1e-6)
    assert results["allAcc"] == pytest.approx(4 / 7, abs=1e-6)
    np.testing.assert_allclose(results["per_class_iou"], [1 / 3, 1 / 2, 1 / 3], atol=1e-6)


def test_mean_iou_accepts_scores_and_trailing_axis_and_streams():
    scores = keras.ops.convert_to_numpy(keras.ops.one_hot(Y_PRED, 3)) * 5.0
    whole = MeanIoU(3)
    whole.update_state(Y_TRUE[..., None], scores)
    streamed = MeanIoU(3)
    streamed.update_state(Y_TRUE[:, :1], scores[:, :1])
    streamed.update_state(Y_TRUE[:, 1:], Y_PRED[:, 1:])
    assert float(whole.result()) == pytest.approx(7 / 18, abs=1e-6)
    assert float(streamed.result()) == pytest.approx(7 / 18, abs=1e-6)
    streamed.reset_state()
    assert float(streamed.result()) == 0.0


def test_mean_iou_present_average_skips_absent_classes_and_weights_images():
    metric = MeanIoU(num_classes=4, ignore_label=3, average="present")
    metric.update_state(np.where(Y_TRUE == 255, 3, Y_TRUE), Y_PRED)
    assert np.isnan(metric.results()["per_class_iou"][3])
    assert float(metric.result()) == pytest.approx(7 / 18, abs=1e-6)
    weighted = MeanIoU(3)
    weighted.update_state(
        np.concatenate([Y_TRUE, Y_TRUE]), np.concatenate([Y_PRED, Y_TRUE]), [1, 0]
    )
    assert float(weighted.result()) == pytest.approx(7 / 18, abs=1e-6)


def test_mean_iou_inside_evaluate():
    inputs = keras.Input((2, 4, 3))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss=SegmentationCrossEntropy(), metrics=[MeanIoU(3)])
    scores = keras.ops.convert_to_numpy(keras.ops.one_hot(Y_PRED, 3))
    result = model.evaluate(scores, Y_TRUE, verbose=0, return_dict=True)
    assert result["mean_iou"] == pytest.approx(7 / 18, abs=1e-6)


def _voc_fixture(metric):
    """One class-0 PR curve worked out by hand (npos = 3), plus classes 1-3.

    Class 0, by score: d1 TP, d2 duplicate FP, d3 TP, d4 on a difficult box (ignored), d5 FP,
    d6 TP -> recall 1/3, 1/3, 2/3, 2/3, 1; precision 1, 1/2, 2/3, 1/2, 3/5.
    11-point AP: (4 * 1 + 3 * 2/3 + 4 * 3/5) / 11 = 8.4 / 11; area AP: (1 + 2/3 + 3/5) / 3.
    Class 1: one perfect detection (AP 1). Class 2: a detection, no truth (NaN, left out of
    the mean). Class 3: a box nobody detects (AP 0).
    """
    box_a, box_b, box_d = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]
    metric.update_state(
        gt_boxes=[box_a, box_b, box_d, [0, 60, 10, 70]],
        gt_labels=[0, 0, 0, 3],
        gt_difficult=[False, False, True, False],
        pred_boxes=[box_a, box_a, box_d, [60, 60, 70, 70], box_b, [5, 5, 9, 9]],
        pred_labels=[0, 0, 0, 0, 0, 2],
        pred_scores=[0.9, 0.8, 0.6, 0.5, 0.3, 0.99],
    )
    metric.update_state(
        gt_boxes=[[0, 0, 10, 10], [50, 50, 60, 60]],
        gt_labels=[0, 1],
        gt_difficult=[False, False],
        pred_boxes=[[0, 0, 10, 10], [50, 50, 60, 60]],
        pred_labels=[0, 1],
        pred_scores=[0.7, 0.9],
    )


@pytest.mark.parametrize(
    "use_07_metric, class0_ap",
    [(True, 8.4 / 11), (False, (1 + 2 / 3 + 3 / 5) / 3)],
)
def test_voc_map_by_hand(use_07_metric, class0_ap):
    metric = VOCMeanAP(num_classes=4, use_07_metric=use_07_metric)
    _voc_fixture(metric)
    aps = metric.per_class_ap()
    np.testing.assert_allclose(aps[[0, 1, 3]], [class0_ap, 1.0, 0.0], atol=1e-9)
    assert np.isnan(aps[2])
    assert metric.result() == pytest.approx((class0_ap + 1.0 + 0.0) / 3, abs=1e-9)
    metric.reset_state()
    assert metric.result() == 0.0


def test_voc_map_iou_threshold_is_strict_and_configurable():
    # IoU([0, 0, 10, 10], [0, 0, 10, 5]) = 0.5 exactly: not a match at 0.5, a match at 0.4.
    for threshold, expected in ((0.5, 0.0), (0.4, 1.0)):
        metric = VOCMeanAP(1, iou_threshold=threshold)
        metric.update_state([[0, 0, 10, 10]], [0], [False], [[0, 0, 10, 5]], [0], [0.9])
        assert metric.result() == pytest.approx(expected)


@pytest.mark.parametrize(
    "metric",
    [
        MeanIoU(5, ignore_label=0, name="miou", average="present"),
        VOCMeanAP(7, use_07_metric=False, iou_threshold=0.7),
    ],
)
def test_metric_config_round_trip(metric):
    config = metric.get_config()
    clone = type(metric).from_config(config)
    assert clone.get_config() == config
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(restored) is type(metric) and restored.get_config() == config


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: MeanIoU(0), "num_classes must be an integer >= 1. Received: num_classes=0"),
        (lambda: MeanIoU(3, ignore_label="x"), "Received: ignore_label='x'"),
        (
            lambda: MeanIoU(3, average="mean"),
            "average must be one of ['all', 'present']. Received: average='mean'",
        ),
        (lambda: VOCMeanAP(2.0), "Received: num_classes=2.0"),
        (lambda: VOCMeanAP(2, iou_threshold=0), "Received: iou_threshold=0"),
        (
            lambda: MeanIoU(3).update_state(np.zeros((2, 4)), np.zeros((2, 5))),
            "Received: y_true.shape=(2, 4), y_pred.shape=(2, 5)",
        ),
        (
            lambda: VOCMeanAP(2).update_state([[0, 0, 1, 1]], [0], [], [], [], []),
            "Received: 1 boxes, 1 labels, 0 flags",
        ),
        (
            lambda: VOCMeanAP(2).update_state([], [], [], [[0, 0, 1, 1]], [2], [0.5]),
            "pred_labels must lie in [0, 2). Received: pred_labels=[2]",
        ),
    ],
)
def test_bad_metric_arguments_raise_clear_messages(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()
