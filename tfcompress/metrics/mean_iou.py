"""Streaming mean IoU with an ignore label, plus mean class accuracy and pixel accuracy."""

import keras
from keras import ops

from tfcompress.numbers import check_count, check_int

AVERAGES = ("all", "present")


def _size(shape):
    """Number of elements of a static shape, None if any dimension is unknown."""
    size = 1
    for d in shape:
        if d is None:
            return None
        size *= int(d)
    return size


def _mean(values, counted, average):
    """Mean of `values` over all classes, or over the classes where `counted` holds."""
    if average == "all":
        return ops.mean(ops.where(counted, values, 0.0))
    counted = ops.cast(counted, "float64")
    return ops.sum(values * counted) / ops.maximum(ops.sum(counted), 1.0)


@keras.saving.register_keras_serializable(package="tfcompress")
class MeanIoU(keras.metrics.Metric):
    """Accumulates a confusion matrix (rows: truth, cols: prediction) of `num_classes + 1`
    rows and columns; index `num_classes` stands for "out of range".

    `update_state(y_true, y_pred, sample_weight=None)`: `y_true` holds class ids (`[..., 1]`
    trailing axis allowed); `y_pred` holds class ids of the same shape or per-class scores with
    one more axis (argmax is taken); `sample_weight` is per pixel or per image. Pixels labelled
    `ignore_label` are skipped. The rest count as hszhao/semseg's `intersectionAndUnion`
    counts them:

    - a predicted id outside `[0, num_classes)` is a wrong prediction: a false negative of
      the true class (it lowers that class's IoU and accuracy and allAcc);
    - a label outside `[0, num_classes)` (other than `ignore_label`) is a data bug: the pixel
      has no true class, so it is a false positive of the class predicted there and is left
      out of the accuracies; `invalid_label_count()` (`results()["invalid_labels"]`) reports
      how many such pixels were seen.

    `result()` is the mIoU, IoU = TP / (TP + FP + FN) averaged as `average` says:
    `"all"` (default, semseg's `mean(intersection / (union + 1e-10))`): over all
    `num_classes` classes, a class that never occurs counting 0; `"present"`: over the classes
    that occur in the truth or the predictions (Keras' `keras.metrics.MeanIoU`).
    `mean_accuracy()` (mAcc, TP / truth count per class) averages over all classes or over the
    classes present in the truth, alike. `per_class_iou()` (NaN where a class never occurs),
    `pixel_accuracy()` (allAcc, TP sum / pixels with a label in range) and `results()` read the
    same state.
    """

    def __init__(
        self, num_classes, ignore_label=255, *, average="all", name="mean_iou", dtype=None
    ):
        check_count("num_classes", num_classes)
        check_int("ignore_label", ignore_label)
        if average not in AVERAGES:
            raise ValueError(
                f"average must be one of {list(AVERAGES)}. Received: average={average!r}"
            )
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)  # an np.int64 too; the config stays JSON
        self.ignore_label = int(ignore_label)
        self.average = average
        self.confusion = self.add_variable(
            (self.num_classes + 1, self.num_classes + 1),
            initializer="zeros",
            dtype="float64",
            name="confusion",
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
        labelled = labels != self.ignore_label
        labels = ops.where((labels >= 0) & (labels < n), labels, n)
        preds = ops.where((preds >= 0) & (preds < n), preds, n)
        weights = ops.cast(labelled, "float64")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float64")
            while len(sample_weight.shape) < len(y_true.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)  # per-image weights [B]
            sample_weight = ops.broadcast_to(sample_weight, ops.shape(y_true))
            weights = weights * ops.reshape(sample_weight, (-1,))
        counts = ops.bincount(labels * (n + 1) + preds, weights=weights, minlength=(n + 1) ** 2)
        self.confusion.assign_add(ops.reshape(ops.cast(counts, "float64"), (n + 1, n + 1)))

    def _diag_rows_cols(self):
        """TP, truth count (incl. out-of-range predictions), predicted count (incl. pixels
        with an out-of-range label) per class."""
        cm = ops.convert_to_tensor(self.confusion)
        n = self.num_classes
        return ops.diagonal(cm)[:n], ops.sum(cm, axis=1)[:n], ops.sum(cm, axis=0)[:n]

    def per_class_iou(self):
        tp, truth, predicted = self._diag_rows_cols()
        union = truth + predicted - tp
        return ops.where(union > 0, tp / ops.maximum(union, 1.0), float("nan"))

    def result(self):
        tp, truth, predicted = self._diag_rows_cols()
        union = truth + predicted - tp
        iou = tp / ops.maximum(union, 1.0)
        return ops.cast(_mean(iou, union > 0, self.average), "float32")

    def mean_accuracy(self):
        tp, truth, _ = self._diag_rows_cols()
        acc = tp / ops.maximum(truth, 1.0)
        return ops.cast(_mean(acc, truth > 0, self.average), "float32")

    def pixel_accuracy(self):
        tp, truth, _ = self._diag_rows_cols()
        return ops.cast(ops.sum(tp) / ops.maximum(ops.sum(truth), 1.0), "float32")

    def invalid_label_count(self):
        """Pixels (weighted) whose label lies outside `[0, num_classes)`, not `ignore_label`."""
        return ops.sum(ops.convert_to_tensor(self.confusion)[self.num_classes])

    def results(self):
        """`{"mIoU", "mAcc", "allAcc", "invalid_labels", "per_class_iou"}` as Python floats /
        an int / a list."""
        return {
            "mIoU": float(self.result()),
            "mAcc": float(self.mean_accuracy()),
            "allAcc": float(self.pixel_accuracy()),
            "invalid_labels": round(float(self.invalid_label_count())),
            "per_class_iou": [float(v) for v in ops.convert_to_numpy(self.per_class_iou())],
        }

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
            "average": self.average,
        }
