"""What a task means for training: its loss, its per-batch and evaluation metrics.

One small class per task, picked from a table (`TASKS`) by the data's task; models map to a
task through `MODEL_TASKS`. Models with auxiliary outputs (`OUTPUTS[0]` main, others aux)
are trained with deep supervision: each auxiliary loss weighted by the model module's
`AUX_WEIGHTS`.
"""

import sys

import numpy as np
from keras import ops

from tfcompress import losses, metrics, models
from tfcompress.models import yolov2_postprocess

CLASSIFICATION, SEGMENTATION, DETECTION = "classification", "segmentation", "detection"
MODEL_TASKS = {"adapnet_pp": SEGMENTATION, "pspnet": SEGMENTATION, "yolov2": DETECTION}


def task_of_model(name):
    """The task model `name` of `tfcompress.models.REGISTRY` solves."""
    if name not in models.REGISTRY:
        raise ValueError(f"Unknown model name {name!r}. Known names: {sorted(models.REGISTRY)}")
    return MODEL_TASKS.get(name, CLASSIFICATION)


def aux_weights(name):
    """The deep-supervision weights of model `name`'s auxiliary outputs (() if none)."""
    return tuple(getattr(sys.modules[models.REGISTRY[name].__module__], "AUX_WEIGHTS", ()))


def main_output(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


class Accuracy:
    """Host-side streaming top-1 accuracy."""

    name = "accuracy"

    def __init__(self):
        self.correct, self.count = 0, 0

    def update(self, y, output):
        pred = np.argmax(np.asarray(output), axis=-1)
        self.correct += int(np.sum(pred == np.asarray(y)))
        self.count += int(pred.shape[0])

    def result(self):
        return {"accuracy": self.correct / max(self.count, 1)}


class MeanIoU:
    """Host-side mIoU, mean class accuracy and pixel accuracy (`tfcompress.metrics.MeanIoU`)."""

    name = "mean_iou"

    def __init__(self, num_classes):
        self.metric = metrics.MeanIoU(num_classes)

    def update(self, y, output):
        self.metric.update_state(y, output)

    def result(self):
        return {k: float(v) for k, v in self.metric.results().items() if np.ndim(v) == 0}


class VOCMeanAP:
    """VOC mAP of YOLOv2 outputs after decoding and class-wise NMS."""

    name = "voc_map"

    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.metric = metrics.VOCMeanAP(num_classes)

    def update(self, y, output):
        detections = yolov2_postprocess.postprocess(np.asarray(output), self.num_classes)
        for i, (boxes, scores, classes) in enumerate(detections):
            n = int(y["num_boxes"][i])
            self.metric.update_state(
                np.asarray(y["boxes"][i][:n]),
                np.asarray(y["classes"][i][:n]),
                np.asarray(y["difficult"][i][:n]),
                boxes,
                classes,
                scores,
            )

    def result(self):
        return {"voc_map": float(self.metric.result())}


class Classification:
    name = CLASSIFICATION
    metric_name = Accuracy.name
    batch_metric_name = "accuracy"

    def loss(self, num_classes):
        return losses.ClassificationCrossEntropy(reduction="none")

    def target(self, y):
        return y

    def batch_metric(self, y, output):
        """Training accuracy of the batch (a scalar tensor)."""
        pred = ops.cast(ops.argmax(output, axis=-1), "int32")
        return ops.mean(ops.cast(ops.equal(pred, ops.cast(y, "int32")), "float32"))

    def eval_metric(self, num_classes):
        return Accuracy()


class Segmentation:
    name = SEGMENTATION
    metric_name = MeanIoU.name
    batch_metric_name = "pixel_accuracy"

    def loss(self, num_classes):
        return losses.SegmentationCrossEntropy()

    def target(self, y):
        return y

    def batch_metric(self, y, output):
        """Pixel accuracy over the labelled pixels of the batch."""
        y = ops.cast(y, "int32")
        valid = ops.cast(ops.logical_and(y >= 0, y < output.shape[-1]), "float32")
        hit = ops.cast(ops.equal(ops.cast(ops.argmax(output, axis=-1), "int32"), y), "float32")
        return ops.sum(hit * valid) / ops.maximum(ops.sum(valid), 1.0)

    def eval_metric(self, num_classes):
        return MeanIoU(num_classes)


class Detection:
    name = DETECTION
    metric_name = VOCMeanAP.name
    batch_metric_name = None  # no per-batch metric: mAP needs the whole evaluation set

    def loss(self, num_classes):
        return losses.YOLOv2RegionLoss(num_classes, reduction="none")

    def target(self, y):
        """The pipeline's dict -> the region loss's `[B, M, 5]` (boxes, class)."""
        classes = ops.expand_dims(ops.cast(y["classes"], "float32"), -1)
        return ops.concatenate([ops.cast(y["boxes"], "float32"), classes], axis=-1)

    def batch_metric(self, y, output):
        return None

    def eval_metric(self, num_classes):
        return VOCMeanAP(num_classes)


TASKS = {CLASSIFICATION: Classification(), SEGMENTATION: Segmentation(), DETECTION: Detection()}


def _batch_mean(value):
    # Losses reduce here, not in Keras: "sum_over_batch_size" would also divide by the
    # number of replicas under tf.distribute, and the loop already does that.
    return ops.mean(value) if len(value.shape) else value


class Objective:
    """The training loss of one model on one replica's batch: the task loss of the main
    output plus the weighted auxiliary losses, each the batch mean."""

    def __init__(self, task, model_name, num_classes):
        self.task = TASKS[task]
        self.loss = self.task.loss(num_classes)
        self.aux_weights = aux_weights(model_name)

    def __call__(self, y, outputs):
        target = self.task.target(y)
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        total = _batch_mean(self.loss(target, outs[0]))
        for w, out in zip(self.aux_weights, outs[1:]):
            total = total + w * _batch_mean(self.loss(target, out))
        return total


def batch_metric_of(task):
    """The name of `task`'s per-batch training metric, None if it has none (detection)."""
    return TASKS[task].batch_metric_name


def metric_of(task):
    """The name of `task`'s evaluation metric (accuracy, mean_iou, voc_map)."""
    return TASKS[task].metric_name


__all__ = [
    "MODEL_TASKS",
    "TASKS",
    "Objective",
    "aux_weights",
    "batch_metric_of",
    "main_output",
    "metric_of",
    "task_of_model",
]
