"""The TFRecord feature schema: every key, per task, defined once for writer and reader.

Every record is a ``tf.train.Example`` holding the common image features plus its task's:

===============================================  =======  ======================================
key                                              type     meaning
===============================================  =======  ======================================
``image/encoded``                                bytes    PNG or JPEG bytes, or ``raw`` uint8
                                                          pixels in row-major [H, W, C] order
``image/format``                                 bytes    ``png``, ``jpeg`` or ``raw``
``image/height``, ``image/width``                int64    size of the encoded image
``image/channels``                               int64    1 (gray) or 3 (RGB)
``image/source_id``                              bytes    where the example came from
**classification**
``image/class/label``                            int64    class index ``0..C-1``
**segmentation**
``image/segmentation/class/encoded``             bytes    PNG (8-bit, 1 channel) label map:
                                                          class index per pixel, 255 = ignore
``image/segmentation/class/format``              bytes    ``png``
**detection**
``image/object/bbox/{ymin,xmin,ymax,xmax}``      float[]  normalised to [0, 1], pixel edges
``image/object/class/label``                     int64[]  class index ``0..C-1``
``image/object/difficult``                       int64[]  1 = difficult (VOC), else 0
===============================================  =======  ======================================
"""

import tensorflow as tf

CLASSIFICATION = "classification"
SEGMENTATION = "segmentation"
DETECTION = "detection"
TASKS = (CLASSIFICATION, SEGMENTATION, DETECTION)

IGNORE_LABEL = 255  # segmentation pixels with this value carry no loss and no metric
PAD_CLASS = -1  # detection classes beyond num_boxes after padding

IMAGE_FORMATS = ("png", "jpeg", "raw")  # raw: small images, left to the GZIP record compression

IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_CHANNELS = "image/channels"
SOURCE_ID = "image/source_id"

CLASS_LABEL = "image/class/label"

MASK_ENCODED = "image/segmentation/class/encoded"
MASK_FORMAT = "image/segmentation/class/format"

BBOX_YMIN = "image/object/bbox/ymin"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_YMAX = "image/object/bbox/ymax"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_KEYS = (BBOX_YMIN, BBOX_XMIN, BBOX_YMAX, BBOX_XMAX)
OBJECT_CLASS = "image/object/class/label"
OBJECT_DIFFICULT = "image/object/difficult"

_COMMON_FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string),
    IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="png"),
    IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64),
    IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64),
    IMAGE_CHANNELS: tf.io.FixedLenFeature((), tf.int64),
    SOURCE_ID: tf.io.FixedLenFeature((), tf.string, default_value=""),
}

_TASK_FEATURES = {
    CLASSIFICATION: {CLASS_LABEL: tf.io.FixedLenFeature((), tf.int64)},
    SEGMENTATION: {
        MASK_ENCODED: tf.io.FixedLenFeature((), tf.string),
        MASK_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="png"),
    },
    DETECTION: {
        **{k: tf.io.VarLenFeature(tf.float32) for k in BBOX_KEYS},
        OBJECT_CLASS: tf.io.VarLenFeature(tf.int64),
        OBJECT_DIFFICULT: tf.io.VarLenFeature(tf.int64),
    },
}

# A key only its task writes: how a record says which task it belongs to.
_TASK_MARKERS = {CLASSIFICATION: CLASS_LABEL, SEGMENTATION: MASK_ENCODED, DETECTION: OBJECT_CLASS}


def check_task(task):
    """Returns ``task`` if known, else raises naming it."""
    if task not in TASKS:
        raise ValueError(f"Unknown task. Expected one of {TASKS}. Received: task={task!r}")
    return task


def feature_spec(task):
    """The ``tf.io.parse_single_example`` spec of a task (a fresh dict)."""
    return {**_COMMON_FEATURES, **_TASK_FEATURES[check_task(task)]}


def task_of(feature_keys):
    """Infers the task from the feature keys of one record; raises if none matches."""
    keys = set(feature_keys)
    found = [task for task, marker in _TASK_MARKERS.items() if marker in keys]
    if len(found) != 1 or IMAGE_ENCODED not in keys:
        raise ValueError(
            f"Record does not follow the tfcompress schema (tasks matched: {found}). "
            f"Received keys: {sorted(keys)}"
        )
    return found[0]
