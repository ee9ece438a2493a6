"""Contracts of the losses and of YOLOv2 decoding: values by hand, round trips, messages."""

import math
import re

import keras
import numpy as np
import pytest

from tfcompress.losses import (
    PAD_CLASS,
    ClassificationCrossEntropy,
    SegmentationCrossEntropy,
    YOLOv2RegionLoss,
    deep_supervision,
    pad_detection_targets,
)
from tfcompress.models import adapnet_pp
from tfcompress.models.yolov2 import VOC_ANCHORS
from tfcompress.models.yolov2_postprocess import decode, postprocess

ANCHORS = ((1.0, 1.0), (1.0, 2.5), (2.5, 1.0))
NUM_CLASSES = 3
GRID = (4, 5)
# Two images: a tall box (anchor 1) and a wide box (anchor 2); a small box (anchor 0).
BOXES = [
    np.array([[0.10, 0.05, 0.60, 0.25], [0.55, 0.45, 0.80, 0.90]], np.float32),
    np.array([[0.30, 0.30, 0.50, 0.48]], np.float32),
]
CLASSES = [np.array([2, 0]), np.array([1])]


def _logit(p):
    return math.log(p / (1.0 - p))


def perfect_output(targets, grid=GRID, anchors=ANCHORS, num_classes=NUM_CLASSES, big=30.0):
    """The raw YOLOv2 output that encodes `targets` exactly (objectness/classes at +-big)."""
    grid_h, grid_w = grid
    out = np.zeros((len(targets), grid_h, grid_w, len(anchors), 5 + num_classes), np.float32)
    out[..., 4] = -big
    for b, rows in enumerate(targets):
        for ymin, xmin, ymax, xmax, c in rows:
            if c < 0:
                continue
            cx, cy = (xmin + xmax) / 2 * grid_w, (ymin + ymax) / 2 * grid_h
            w, h = (xmax - xmin) * grid_w, (ymax - ymin) * grid_h
            ious = [
                min(w, aw) * min(h, ah) / (w * h + aw * ah - min(w, aw) * min(h, ah))
                for aw, ah in anchors
            ]
            a = int(np.argmax(ious))
            col, row = int(cx), int(cy)
            aw, ah = anchors[a]
            cell = out[b, row, col, a]
            cell[:5] = [_logit(cx - col), _logit(cy - row), math.log(w / aw), math.log(h / ah), big]
            cell[5 + int(c)] = big
    return out.reshape(len(targets), grid_h, grid_w, -1)


def _loss(targets, output, **kwargs):
    loss = YOLOv2RegionLoss(NUM_CLASSES, anchors=ANCHORS, **kwargs)
    return float(loss(targets, output))


def test_pad_detection_targets_layout():
    targets = pad_detection_targets(BOXES, CLASSES, max_boxes=4)
    assert targets.shape == (2, 4, 5) and targets.dtype == np.float32
    np.testing.assert_allclose(targets[0, :2, :4], BOXES[0])
    np.testing.assert_array_equal(targets[:, :, 4], [[2, 0, PAD_CLASS, PAD_CLASS], [1, -1, -1, -1]])


def test_yolov2_loss_is_zero_on_a_perfect_prediction():
    targets = pad_detection_targets(BOXES, CLASSES, max_boxes=4)
    assert _loss(targets, perfect_output(targets)) < 1e-6


def test_yolov2_loss_ignores_padding_rows():
    few = pad_detection_targets(BOXES, CLASSES, max_boxes=2)
    many = pad_detection_targets(BOXES, CLASSES, max_boxes=6)
    output = perfect_output(few) + np.random.default_rng(0).normal(0, 0.3, (2, *GRID, 24))
    assert _loss(few, output) == pytest.approx(_loss(many, output), rel=1e-6)


def test_yolov2_loss_terms_by_hand():
    targets = pad_detection_targets(BOXES, CLASSES, max_boxes=4)
    perfect = perfect_output(targets).reshape(2, *GRID, 3, 8)
    # image 1's box: centre (1.95, 1.6), size 0.9 x 0.8 cells -> anchor 0 of cell (row 1, col 1)
    w_norm, h_norm = 0.18, 0.20
    off = perfect.copy()
    off[1, 1, 1, 0, 2] += 0.5  # tw off by 0.5
    expected = 2.0 * (2.0 - w_norm * h_norm) * 0.25 / 2  # coord_scale 2, batch mean
    assert _loss(targets, off.reshape(2, *GRID, 24), coord_scale=2.0) == pytest.approx(
        expected, rel=1e-4
    )
    off = perfect.copy()
    off[1, 1, 1, 0, 4] = 0.0  # objectness 1/2 on the responsible anchor
    assert _loss(targets, off.reshape(2, *GRID, 24)) == pytest.approx(5.0 * 0.25 / 2, rel=1e-4)
    off = perfect.copy()
    off[0, 3, 0, 0, 4] = 0.0  # objectness 1/2 on an empty cell
    assert _loss(targets, off.reshape(2, *GRID, 24)) == pytest.approx(0.25 / 2, rel=1e-4)
    off = perfect.copy()
    off[1, 1, 1, 0, 5:] = 0.0  # uniform class scores
    assert _loss(targets, off.reshape(2, *GRID, 24)) == pytest.approx(math.log(3) / 2, rel=1e-4)


@pytest.mark.parametrize("component", [0, 2, 4, 7])
def test_yolov2_loss_grows_with_the_error(component):
    # tx, tw pushed up; objectness and the true class (2) logit pushed down
    targets = pad_detection_targets(BOXES, CLASSES, max_boxes=4)
    perfect = perfect_output(targets, big=4.0).reshape(2, *GRID, 3, 8)
    sign = -1.0 if component in (4, 7) else 1.0
    values = []
    for error in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
        out = perfect.copy()
        out[0, 1, 0, 1, component] += sign * error  # the tall box's responsible anchor
        values.append(_loss(targets, out.reshape(2, *GRID, 24)))
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values


def test_yolov2_loss_matches_the_best_anchor_shape():
    targets = pad_detection_targets(BOXES, CLASSES, max_boxes=4)
    perfect = perfect_output(targets).reshape(2, *GRID, 3, 8)
    swapped = perfect.copy()
    swapped[0, 1, 0, [0, 1]] = perfect[0, 1, 0, [1, 0]]  # predict the tall box on anchor 0
    assert _loss(targets, swapped.reshape(2, *GRID, 24)) > 1.0


def test_yolov2_loss_trains_a_grid_of_logits():
    import tensorflow as tf  # gradient tape and tf.function: the test's edge

    targets = tf.constant(pad_detection_targets(BOXES, CLASSES, max_boxes=4))
    logits = keras.Variable(np.zeros((2, *GRID, 24), np.float32))
    loss = YOLOv2RegionLoss(NUM_CLASSES, anchors=ANCHORS)
    optimizer = keras.optimizers.Adam(0.1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = loss(targets, logits)
        optimizer.apply([tape.gradient(value, logits)], [logits])
        return value

    first = float(step())
    for _ in range(100):
        last = float(step())
    assert last < 0.05 * first


def test_decode_and_postprocess_recover_the_boxes():
    targets = pad_detection_targets(BOXES, CLASSES, max_boxes=4)
    output = perfect_output(targets, big=8.0)
    boxes, objectness, probs = decode(output, NUM_CLASSES, ANCHORS)
    assert tuple(boxes.shape) == (2, 4 * 5 * 3, 4) and tuple(probs.shape) == (2, 60, 3)
    detections = postprocess(output, NUM_CLASSES, ANCHORS, score_threshold=0.5)
    for (det_boxes, scores, classes), gt_boxes, gt_classes in zip(
        detections, BOXES, CLASSES, strict=True
    ):
        order = np.argsort(classes)
        np.testing.assert_allclose(det_boxes[order], gt_boxes[np.argsort(gt_classes)], atol=1e-5)
        np.testing.assert_array_equal(classes[order], np.sort(gt_classes))
        assert np.all(scores > 0.99)


def test_postprocess_suppresses_duplicates_within_a_class_only():
    targets = pad_detection_targets([BOXES[1]], [CLASSES[1]], max_boxes=1)
    out = perfect_output(targets, big=8.0).reshape(1, *GRID, 3, 8)
    out[0, 1, 1, 1, :4] = out[0, 1, 1, 0, :4] + [0.0, 0.0, 0.05, 0.0]  # near-copy, anchor 1
    out[0, 1, 1, 1, 3] += math.log(1.0 / 2.5)  # same height despite anchor 1's 2.5
    out[0, 1, 1, 1, 4] = 6.0
    out[0, 1, 1, 1, 5:] = [-8, 8, -8]  # same class -> suppressed
    ((boxes, _, classes),) = postprocess(out.reshape(1, *GRID, 24), NUM_CLASSES, ANCHORS, 0.5)
    assert len(boxes) == 1
    out[0, 1, 1, 1, 5:] = [8, -8, -8]  # another class -> kept
    ((boxes, _, classes),) = postprocess(out.reshape(1, *GRID, 24), NUM_CLASSES, ANCHORS, 0.5)
    assert sorted(classes.tolist()) == [0, 1]


def test_segmentation_cross_entropy_by_hand_with_ignored_pixels():
    # logits (0, log 3): p = (1/4, 3/4). Valid pixels: label 0, label 1 (twice).
    logits = np.tile(np.array([0.0, math.log(3.0)], np.float32), (2, 1, 3, 1))
    labels = np.array([[[0, 1, 255]], [[1, 255, 255]]])
    expected = (math.log(4.0) + 2 * math.log(4.0 / 3.0)) / 3
    loss = SegmentationCrossEntropy(ignore_label=255)
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-6)
    assert float(loss(labels[..., None], logits)) == pytest.approx(expected, rel=1e-6)
    probs = keras.ops.softmax(logits)
    probability_loss = SegmentationCrossEntropy(from_logits=False)
    assert float(probability_loss(labels, probs)) == pytest.approx(expected, rel=1e-5)
    all_ignored = np.full_like(labels, 255)
    assert float(loss(all_ignored, logits)) == 0.0


def test_classification_cross_entropy_matches_keras():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4)).astype("float32")
    labels = rng.integers(0, 4, 6)
    ours = ClassificationCrossEntropy()(labels, logits)
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)
    one_hot = keras.ops.one_hot(labels, 4)
    smoothed = ClassificationCrossEntropy(label_smoothing=0.2)(labels, logits)
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    assert float(smoothed) == pytest.approx(float(reference(one_hot, logits)), rel=1e-5)


def test_deep_supervision_weights_auxiliary_outputs():
    loss = SegmentationCrossEntropy()
    kwargs = deep_supervision(loss, adapnet_pp.AUX_WEIGHTS)
    assert kwargs == {"loss": [loss, loss, loss], "loss_weights": [1.0, 0.6, 0.5]}


@pytest.mark.parametrize(
    "loss",
    [
        SegmentationCrossEntropy(ignore_label=0, from_logits=False, name="seg"),
        ClassificationCrossEntropy(label_smoothing=0.1, reduction="sum"),
        YOLOv2RegionLoss(20),
        YOLOv2RegionLoss(2, anchors=ANCHORS, noobject_scale=0.5, ignore_thresh=0.7),
    ],
)
def test_loss_config_round_trip(loss):
    config = loss.get_config()
    assert type(loss).from_config(config).get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == config
    if isinstance(loss, YOLOv2RegionLoss):
        assert restored.anchors == loss.anchors


def test_yolov2_loss_defaults_to_voc_anchors():
    assert YOLOv2RegionLoss(20).anchors == VOC_ANCHORS


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: YOLOv2RegionLoss(0), "num_classes must be an integer >= 1. Received: "
         "num_classes=0"),
        (lambda: YOLOv2RegionLoss(2, anchors=[]), "Received: anchors=[]"),
        (lambda: YOLOv2RegionLoss(2, object_scale=-1), "Received: object_scale=-1"),
        (lambda: SegmentationCrossEntropy(ignore_label=None), "Received: ignore_label=None"),
        (lambda: ClassificationCrossEntropy(label_smoothing=1.0), "label_smoothing=1.0"),
        (lambda: deep_supervision("x", (-0.5,)), "Received: aux_weights=(-0.5,)"),
        (lambda: pad_detection_targets(BOXES, CLASSES, 0), "Received: max_boxes=0"),
        (lambda: pad_detection_targets(BOXES, CLASSES, 1), "image 0 has 2 boxes"),
        (lambda: pad_detection_targets(BOXES, CLASSES[:1], 4), "len(classes)=1"),
        (lambda: postprocess(np.zeros((1, 2, 2, 8)), 3, ANCHORS[:1], iou_threshold=2), "=2"),
    ],
)
@pytest.mark.slow
def test_bad_loss_arguments_raise_clear_messages(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()
