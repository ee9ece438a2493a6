"""YOLOv2 post-processing: decode raw outputs into boxes, then class-wise NMS.

`decode` is pure `keras.ops`; `postprocess` is the evaluation edge and uses
`tf.image.non_max_suppression` per class and image, returning NumPy arrays ready for
`tfcompress.metrics.VOCMeanAP.update_state`.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from tfcompress.models import yolov2_grid
from tfcompress.models.yolov2 import VOC_ANCHORS, check_anchors


def decode(outputs, num_classes, anchors=VOC_ANCHORS):
    """Raw `[B, S_h, S_w, A * (5 + C)]` -> (boxes, objectness, class probabilities).

    Boxes are `[B, N, 4]` normalised `[ymin, xmin, ymax, xmax]` (N = S_h * S_w * A, clipped to
    the image), objectness `[B, N]` and class probabilities `[B, N, C]` (softmax).
    """
    anchors = check_anchors(anchors)
    outputs = ops.convert_to_tensor(outputs, "float32")
    grid_h, grid_w = outputs.shape[1], outputs.shape[2]
    txy, twh, obj, logits = yolov2_grid.split_outputs(outputs, len(anchors), num_classes)
    cxy, wh = yolov2_grid.grid_boxes(txy, twh, anchors)
    scale = ops.convert_to_tensor([grid_h, grid_w, grid_h, grid_w], "float32")
    boxes = ops.clip(yolov2_grid.corners(cxy, wh) / scale, 0.0, 1.0)
    batch = ops.shape(outputs)[0]
    return (
        ops.reshape(boxes, (batch, -1, 4)),
        ops.reshape(ops.sigmoid(obj), (batch, -1)),
        ops.reshape(ops.softmax(logits, axis=-1), (batch, -1, num_classes)),
    )


def _nms_one_image(boxes, scores, score_threshold, iou_threshold, max_detections):
    """Class-wise NMS for one image: boxes [N, 4], scores [N, C] -> (boxes, scores, classes)."""
    kept_boxes, kept_scores, kept_classes = [], [], []
    for c in range(scores.shape[1]):
        candidates = np.flatnonzero(scores[:, c] > score_threshold)
        if candidates.size == 0:
            continue
        keep = tf.image.non_max_suppression(
            boxes[candidates], scores[candidates, c], max_detections, iou_threshold
        ).numpy()
        kept_boxes.append(boxes[candidates[keep]])
        kept_scores.append(scores[candidates[keep], c])
        kept_classes.append(np.full(keep.size, c, np.int64))
    if not kept_boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    boxes, scores, classes = (np.concatenate(v) for v in (kept_boxes, kept_scores, kept_classes))
    order = np.argsort(-scores, kind="stable")[:max_detections]
    return boxes[order], scores[order], classes[order]


def postprocess(
    outputs,
    num_classes,
    anchors=VOC_ANCHORS,
    score_threshold=0.005,
    iou_threshold=0.45,
    max_detections=100,
):
    """Decodes a batch and applies class-wise NMS to the scores `objectness * P(class)`.

    Returns one `(boxes [k, 4] float32, scores [k] float32, classes [k] int64)` tuple per
    image, sorted by decreasing score, at most `max_detections` each.
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(
            f"iou_threshold must be in [0, 1]. Received: iou_threshold={iou_threshold}"
        )
    if max_detections < 1:
        raise ValueError(f"max_detections must be >= 1. Received: max_detections={max_detections}")
    boxes, objectness, probs = decode(outputs, num_classes, anchors)
    boxes = ops.convert_to_numpy(boxes)
    scores = ops.convert_to_numpy(objectness[..., None] * probs)
    return [
        _nms_one_image(b, s, score_threshold, iou_threshold, max_detections)
        for b, s in zip(boxes, scores, strict=True)
    ]
