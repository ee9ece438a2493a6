"""MeanIoU against hszhao/semseg's counting: out-of-range ids, invalid labels, averaging."""

import keras
import numpy as np
import pytest

from tfcompress.metrics import MeanIoU
from tfcompress.training import tasks


def semseg_scores(labels, preds, num_classes, ignore_index=255):
    """hszhao/semseg's `intersectionAndUnion` summed over the set, then its test.py means."""
    output, target = np.array(preds).ravel().copy(), np.array(labels).ravel()
    output[target == ignore_index] = ignore_index
    bins = np.arange(num_classes + 1)
    inter = np.histogram(output[output == target], bins=bins)[0].astype(float)
    area_output = np.histogram(output, bins=bins)[0]
    area_target = np.histogram(target, bins=bins)[0]
    union = area_output + area_target - inter
    iou, acc = inter / (union + 1e-10), inter / (area_target + 1e-10)
    return {"mIoU": iou.mean(), "mAcc": acc.mean(), "allAcc": inter.sum() / area_target.sum()}


def _scores(metric):
    return {k: v for k, v in metric.results().items() if k in ("mIoU", "mAcc", "allAcc")}


def test_prediction_out_of_range_counts_as_wrong():
    metric = MeanIoU(2)
    metric.update_state(np.array([0, 1, 1]), np.array([0, 1, 7]))
    # confusion (rows truth, last column "predicted out of range"): [[1, 0, 0], [0, 1, 1]]
    # IoU = [1, 1/2], recall = [1, 1/2]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(metric.confusion), [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    )
    results = metric.results()
    assert results["allAcc"] == pytest.approx(2 / 3)
    assert results["mIoU"] == pytest.approx(3 / 4)
    assert results["mAcc"] == pytest.approx(3 / 4)
    assert results["invalid_labels"] == 0


def test_negative_prediction_counts_as_wrong():
    metric = MeanIoU(3)
    metric.update_state(np.array([2, 2]), np.array([2, -1]))
    assert metric.results()["allAcc"] == pytest.approx(1 / 2)
    np.testing.assert_allclose(metric.per_class_iou(), [np.nan, np.nan, 1 / 2])


def test_label_out_of_range_is_a_false_positive_and_reported():
    metric = MeanIoU(2)
    metric.update_state(np.array([0, 5, 1, -3, 255]), np.array([0, 1, 1, 0, 1]))
    # labels 5 and -3 have no true class: FPs of classes 1 and 0; 255 is ignored.
    # IoU = [1/2, 1/2], recall = [1, 1], allAcc = 2/2
    results = metric.results()
    assert results["invalid_labels"] == 2
    assert results["mIoU"] == pytest.approx(1 / 2)
    assert results["mAcc"] == pytest.approx(1.0)
    assert results["allAcc"] == pytest.approx(1.0)


def test_average_all_counts_absent_classes_as_zero():
    labels, preds = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    # IoU = [1/2, 2/3, absent, absent]; recall = [1/2, 1, absent, absent]
    every, present = MeanIoU(4), MeanIoU(4, average="present")
    every.update_state(labels, preds)
    present.update_state(labels, preds)
    assert float(every.result()) == pytest.approx((1 / 2 + 2 / 3) / 4)
    assert float(every.mean_accuracy()) == pytest.approx((1 / 2 + 1) / 4)
    assert float(present.result()) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert float(present.mean_accuracy()) == pytest.approx((1 / 2 + 1) / 2)
    assert float(every.pixel_accuracy()) == float(present.pixel_accuracy()) == 0.75


def test_mean_iou_matches_semseg_on_random_labels_with_bad_ids():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, (3, 17, 19))
    labels[rng.uniform(size=labels.shape) < 0.1] = 255
    labels[rng.uniform(size=labels.shape) < 0.05] = 9  # a data bug: class 9 of 6
    preds = rng.integers(0, 6, labels.shape)
    preds[rng.uniform(size=labels.shape) < 0.05] = 11
    metric = MeanIoU(6)
    for i in range(3):  # streamed per image
        metric.update_state(labels[i], preds[i])
    expected = semseg_scores(labels, preds, 6)
    for key, value in _scores(metric).items():
        assert value == pytest.approx(expected[key], abs=1e-6), key
    assert metric.results()["invalid_labels"] == int(np.sum(labels == 9))


def test_mean_iou_defaults_to_semseg_average_and_segmentation_evaluation_uses_it():
    assert MeanIoU(3).average == "all"
    assert tasks.TASKS[tasks.SEGMENTATION].eval_metric(19).metric.average == "all"


def test_mean_iou_counts_bad_ids_alike_inside_evaluate():
    inputs = keras.Input((1, 5, 2))
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    model.compile(loss=lambda y, scores: 0.0 * keras.ops.mean(scores), metrics=[MeanIoU(2)])
    labels = np.array([[[0, 5, 1, -3, 255]]])
    scores = keras.ops.convert_to_numpy(keras.ops.one_hot(np.array([[[0, 1, 1, 0, 1]]]), 2))
    result = model.evaluate(scores, labels, verbose=0, return_dict=True)
    assert result["mean_iou"] == pytest.approx(1 / 2)


def test_mean_iou_config_round_trip_keeps_average():
    metric = MeanIoU(7, ignore_label=0, average="present")
    clone = MeanIoU.from_config(metric.get_config())
    assert clone.average == "present" and clone.get_config() == metric.get_config()
    restored = keras.metrics.deserialize(keras.metrics.serialize(MeanIoU(3)))
    assert restored.average == "all"
