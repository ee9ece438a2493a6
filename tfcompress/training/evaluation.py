"""Evaluating a model on a dataset with its task's metric (accuracy, mIoU, VOC mAP)."""

import time

import numpy as np
import tensorflow as tf

from tfcompress.training import tasks


def predict_function(model, jit_compile=False):
    """`model(x, training=False)` as a tf.function (XLA-compiled if `jit_compile`)."""

    @tf.function(jit_compile=jit_compile)
    def predict(x):
        return model(x, training=False)

    return predict


def evaluate_model(model, dataset, task, num_classes, max_batches=None, predict=None):
    """Runs `model` over `dataset` (batches of `(x, y)`); returns the task's metrics plus
    `examples` and `seconds`."""
    metric = tasks.TASKS[task].eval_metric(num_classes)
    predict = predict or predict_function(model)
    start, examples = time.monotonic(), 0
    for i, (x, y) in enumerate(dataset):
        if max_batches is not None and i >= max_batches:
            break
        output = tasks.main_output(predict(x))
        metric.update(tf.nest.map_structure(np.asarray, y), np.asarray(output, np.float32))
        examples += int(x.shape[0])
    if examples == 0:
        raise ValueError("The evaluation data holds no example.")
    return {**metric.result(), "examples": examples, "seconds": time.monotonic() - start}
