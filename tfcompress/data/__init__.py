"""Datasets for tfcompress: TFRecord schema, converters' library side and tf.data pipelines.

Modules (``build_dataset`` is re-exported here, loaded on first use so that the NumPy-only
``fashion_mnist`` and ``mosaic`` modules import without TensorFlow):

- ``schema``      feature keys per task, defined once
- ``encode``      images / masks / boxes -> serialized records (writer side)
- ``decode``      serialized record -> dict of tensors (reader side)
- ``parse``       decoded dict -> model inputs, train (augmenting) vs eval
- ``augment``     small pure tf augmentation functions
- ``pipeline``    ``build_dataset`` (element structure documented there)
- ``shards``      atomic sharded writing + manifest JSON
- ``convert``     ``Source`` -> shards + manifest
- ``records``     ``verify_records``, ``inspect_records``
- ``sources``     readers of dataset layouts (Fashion-MNIST, mosaics, image folders,
                  Cityscapes, segmentation pairs, VOC, TFDS)
- ``fashion_mnist``, ``mosaic``  NumPy data: idx loader and real-image mosaics
"""

import importlib

_LAZY = {"build_dataset": "tfcompress.data.pipeline"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfcompress.data' has no attribute {name!r}")


__all__ = ["build_dataset"]
