"""Exporters: SavedModel (named signature), `.keras`, TFLite. All write atomically.
`fold_batchnorm` folds inference-mode BatchNorm into the conv / dense layer before it."""

from tfcompress.export.fold import fold_batchnorm
from tfcompress.export.keras_file import keras_file
from tfcompress.export.saved_model import saved_model, serve
from tfcompress.export.tflite import TFLiteCheck, float32_copy, run_tflite, tflite

__all__ = [
    "TFLiteCheck",
    "float32_copy",
    "fold_batchnorm",
    "keras_file",
    "run_tflite",
    "saved_model",
    "serve",
    "tflite",
]
