"""PASCAL VOC mean average precision, one image per `update_state`.

Follows the VOC devkit (`voc_eval.py`): per class, each detection, in decreasing score
order, is compared with the ground-truth box of its image it overlaps most. If that IoU is
above `iou_threshold` (strictly, as the devkit) and the box is difficult, the detection is
ignored; if the box is not yet matched, it is a true positive and the box becomes matched;
otherwise (low IoU or a duplicate) it is a false positive.
Difficult boxes do not count as positives. AP is the 11-point interpolated precision of
VOC2007 (`use_07_metric=True`) or the area under the monotone precision envelope (VOC2010+).

Boxes are `[ymin, xmin, ymax, xmax]` in any consistent unit; IoU uses continuous areas
(no `+1` pixel convention). The state is host-side (NumPy): update it eagerly from
post-processed detections, e.g. `tfcompress.models.yolov2_postprocess.postprocess`.
"""

import keras
import numpy as np

from tfcompress.numbers import check_count


def iou_matrix(a, b):
    """IoU of every box of `a [n, 4]` with every box of `b [m, 4]` -> `[n, m]`."""
    a, b = a[:, None, :], b[None, :, :]
    h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = h * w
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def average_precision(recall, precision, use_07_metric=True):
    """AP from cumulative recall/precision arrays (detections sorted by decreasing score)."""
    if use_07_metric:
        points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in
                  np.linspace(0.0, 1.0, 11)]  # fmt: skip
        return float(np.mean(points))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _as_array(value, dtype, shape_tail, name):
    array = np.asarray(value, dtype).reshape((-1, *shape_tail))
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite. Received: {name}={array!r}")
    return array


@keras.saving.register_keras_serializable(package="tfcompress")
class VOCMeanAP(keras.metrics.Metric):
    """Streaming PASCAL VOC mAP (see the module docstring).

    `update_state(gt_boxes [k, 4], gt_labels [k], gt_difficult [k], pred_boxes [d, 4],
    pred_labels [d], pred_scores [d])` adds ONE image; `result()` is the mean AP over the
    classes with at least one non-difficult ground-truth box; `per_class_ap()` gives every
    class's AP (NaN where the class has none).
    """

    def __init__(
        self, num_classes, use_07_metric=True, iou_threshold=0.5, name="voc_map", dtype=None
    ):
        check_count("num_classes", num_classes)
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(
                f"iou_threshold must be in (0, 1]. Received: iou_threshold={iou_threshold}"
            )
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)  # an np.int64 too; the config stays JSON
        self.use_07_metric = bool(use_07_metric)
        self.iou_threshold = float(iou_threshold)
        self.reset_state()

    def reset_state(self):
        self._num_positives = np.zeros(self.num_classes, np.int64)
        self._scores = [[] for _ in range(self.num_classes)]
        self._true_positive = [[] for _ in range(self.num_classes)]
        self._false_positive = [[] for _ in range(self.num_classes)]

    def update_state(self, gt_boxes, gt_labels, gt_difficult, pred_boxes, pred_labels, pred_scores):
        gt_boxes = _as_array(gt_boxes, np.float64, (4,), "gt_boxes")
        gt_labels = _as_array(gt_labels, np.int64, (), "gt_labels")
        gt_difficult = _as_array(gt_difficult, bool, (), "gt_difficult")
        pred_boxes = _as_array(pred_boxes, np.float64, (4,), "pred_boxes")
        pred_labels = _as_array(pred_labels, np.int64, (), "pred_labels")
        pred_scores = _as_array(pred_scores, np.float64, (), "pred_scores")
        if not len(gt_boxes) == len(gt_labels) == len(gt_difficult):
            raise ValueError(
                "gt_boxes, gt_labels and gt_difficult must describe the same boxes. Received: "
                f"{len(gt_boxes)} boxes, {len(gt_labels)} labels, {len(gt_difficult)} flags"
            )
        if not len(pred_boxes) == len(pred_labels) == len(pred_scores):
            raise ValueError(
                "pred_boxes, pred_labels and pred_scores must describe the same detections. "
                f"Received: {len(pred_boxes)} boxes, {len(pred_labels)} labels, "
                f"{len(pred_scores)} scores"
            )
        for labels, name in ((gt_labels, "gt_labels"), (pred_labels, "pred_labels")):
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(
                    f"{name} must lie in [0, {self.num_classes}). Received: {name}={labels}"
                )
        for c in np.union1d(gt_labels, pred_labels):
            self._update_class(
                c,
                gt_boxes[gt_labels == c],
                gt_difficult[gt_labels == c],
                pred_boxes[pred_labels == c],
                pred_scores[pred_labels == c],
            )

    def _update_class(self, c, gt_boxes, difficult, pred_boxes, scores):
        self._num_positives[c] += int(np.sum(~difficult))
        order = np.argsort(-scores, kind="stable")
        pred_boxes, scores = pred_boxes[order], scores[order]
        ious = iou_matrix(pred_boxes, gt_boxes)
        matched = np.zeros(len(gt_boxes), bool)
        for i in range(len(pred_boxes)):
            best = int(np.argmax(ious[i])) if len(gt_boxes) else -1
            if best < 0 or ious[i, best] <= self.iou_threshold:
                tp, fp = 0, 1
            elif difficult[best]:
                continue
            elif matched[best]:
                tp, fp = 0, 1
            else:
                matched[best] = True
                tp, fp = 1, 0
            self._scores[c].append(scores[i])
            self._true_positive[c].append(tp)
            self._false_positive[c].append(fp)

    def per_class_ap(self):
        """AP of every class as float64 `[num_classes]`; NaN for classes without positives."""
        aps = np.full(self.num_classes, np.nan)
        for c in range(self.num_classes):
            if self._num_positives[c] == 0:
                continue
            order = np.argsort(-np.asarray(self._scores[c], np.float64), kind="stable")
            tp = np.cumsum(np.asarray(self._true_positive[c], np.float64)[order])
            fp = np.cumsum(np.asarray(self._false_positive[c], np.float64)[order])
            recall = tp / self._num_positives[c]
            precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            aps[c] = average_precision(recall, precision, self.use_07_metric)
        return aps

    def result(self):
        aps = self.per_class_ap()
        return float(np.nanmean(aps)) if np.any(~np.isnan(aps)) else 0.0

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "use_07_metric": self.use_07_metric,
            "iou_threshold": self.iou_threshold,
        }
