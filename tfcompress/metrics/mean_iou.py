"""Streaming mean IoU with an ignore label, plus mean class accuracy and pixel accuracy."""

import keras
from keras import ops


def _size(shape):
    """Number of elements of a static shape, None if any dimension is unknown."""
    size = 1
    for d in shape:
        if d is None:
            return None
        size *= int(d)
    return size


@keras.saving.register_keras_serializable(package="tfcompress")
class MeanIoU(keras.metrics.Metric):
    """Accumulates a `num_classes x num_classes` confusion matrix (rows: truth, cols: prediction).

    `update_state(y_true, y_pred, sample_weight=None)`: `y_true` holds class ids (`[..., 1]`
    trailing axis allowed); `y_pred` holds class ids of the same shape or per-class scores with
    one more axis (argmax is taken); `sample_weight` is per pixel or per image. Pixels labelled
    `ignore_label`, or whose label or predicted id lies outside `[0, num_classes)`, are skipped.

    `result()` is the mIoU: the mean IoU = TP / (TP + FP + FN) over the classes that occur in
    the truth or the predictions. `per_class_iou()` (NaN where a class never occurs),
    `mean_accuracy()` (mAcc, mean of TP / truth count over classes present in the truth),
    `pixel_accuracy()` (allAcc, TP sum / labelled pixels) and `results()` (all four in a dict)
    read the same state.
    """

    def __init__(self, num_classes, ignore_label=255, name="mean_iou", dtype=None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"num_classes must be an int >= 1. Received: num_classes={num_classes!r}"
            )
        if isinstance(ignore_label, bool) or not isinstance(ignore_label, int):
            raise ValueError(
                f"ignore_label must be an int. Received: ignore_label={ignore_label!r}"
            )
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.confusion = self.add_variable(
            (num_classes, num_classes), initializer="zeros", dtype="float64", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        same_rank = len(y_pred.shape) == len(y_true.shape)
        if same_rank and y_true.shape[-1] == 1 and y_pred.shape[-1] != 1:
            y_true = ops.squeeze(y_true, axis=-1)  # ids [..., 1] against scores [..., C]
        if len(y_pred.shape) == len(y_true.shape) + 1:
            y_pred = ops.argmax(y_pred, axis=-1)
        true_size, pred_size = _size(y_true.shape), _size(y_pred.shape)
        if true_size is not None and pred_size is not None and true_size != pred_size:
            raise ValueError(
                "y_pred must hold class ids shaped like y_true or scores with one more axis. "
                f"Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
            )
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        preds = ops.reshape(ops.cast(y_pred, "int32"), (-1,))
        n = self.num_classes
        valid = (labels != self.ignore_label) & (labels >= 0) & (labels < n)
        valid = valid & (preds >= 0) & (preds < n)
        weights = ops.cast(valid, "float64")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float64")
            while len(sample_weight.shape) < len(y_true.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)  # per-image weights [B]
            sample_weight = ops.broadcast_to(sample_weight, ops.shape(y_true))
            weights = weights * ops.reshape(sample_weight, (-1,))
        index = ops.where(valid, labels * n + preds, 0)
        counts = ops.bincount(index, weights=weights, minlength=n * n)
        self.confusion.assign_add(ops.reshape(ops.cast(counts, "float64"), (n, n)))

    def _diag_rows_cols(self):
        cm = ops.convert_to_tensor(self.confusion)
        return ops.diagonal(cm), ops.sum(cm, axis=1), ops.sum(cm, axis=0)

    def per_class_iou(self):
        tp, truth, predicted = self._diag_rows_cols()
        union = truth + predicted - tp
        return ops.where(union > 0, tp / ops.maximum(union, 1.0), float("nan"))

    def result(self):
        tp, truth, predicted = self._diag_rows_cols()
        union = truth + predicted - tp
        present = ops.cast(union > 0, "float64")
        iou = tp / ops.maximum(union, 1.0)
        return ops.cast(ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0), "float32")

    def mean_accuracy(self):
        tp, truth, _ = self._diag_rows_cols()
        present = ops.cast(truth > 0, "float64")
        acc = tp / ops.maximum(truth, 1.0)
        return ops.cast(ops.sum(acc * present) / ops.maximum(ops.sum(present), 1.0), "float32")

    def pixel_accuracy(self):
        tp, truth, _ = self._diag_rows_cols()
        return ops.cast(ops.sum(tp) / ops.maximum(ops.sum(truth), 1.0), "float32")

    def results(self):
        """`{"mIoU", "mAcc", "allAcc", "per_class_iou"}` as Python floats / a list."""
        return {
            "mIoU": float(self.result()),
            "mAcc": float(self.mean_accuracy()),
            "allAcc": float(self.pixel_accuracy()),
            "per_class_iou": [float(v) for v in ops.convert_to_numpy(self.per_class_iou())],
        }

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
        }
