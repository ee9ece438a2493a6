"""Datasets for tfcompress: TFRecord schema, converters' library side and tf.data pipelines.

Modules (``build_dataset`` is re-exported here):

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

from tfcompress.data.errors import CorruptInputError, SkippedRecords
from tfcompress.data.pipeline import build_dataset

__all__ = ["CorruptInputError", "SkippedRecords", "build_dataset"]
