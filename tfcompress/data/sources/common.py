"""Helpers shared by the sources: folder checks, file listing and record builders."""

import os

import numpy as np

from tfcompress.data import encode
from tfcompress.data.convert import Record
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.schema import IGNORE_LABEL

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".tif", ".tiff")
SPLITS = ("train", "val", "test")


def require_dir(path, what):
    """Returns ``path`` if it is a directory, else raises naming it and what it should hold."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Missing {what} folder: {path}")
    return path


def list_images(directory, suffix=""):
    """Sorted image files in ``directory`` (not recursive) whose stem ends with ``suffix``."""
    names = sorted(os.listdir(directory))
    return [
        os.path.join(directory, n)
        for n in names
        if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
        and os.path.splitext(n)[0].endswith(suffix)
    ]


def classification_record(image, label):
    return Record(encode.classification_example(image, label), {int(label): 1})


def segmentation_record(image, mask):
    counts = np.bincount(mask.reshape(-1), minlength=1)
    histogram = {int(k): int(v) for k, v in enumerate(counts) if v}
    return Record(encode.segmentation_example(image, mask), histogram)


def detection_record(image, boxes, classes, difficult=None):
    counts = np.bincount(np.asarray(classes, np.int64).reshape(-1), minlength=1)
    histogram = {int(k): int(v) for k, v in enumerate(counts) if v}
    return Record(encode.detection_example(image, boxes, classes, difficult), histogram)


def check_size(image, mask, label_path):
    """Raises ``CorruptInputError`` naming both files when image and label map sizes differ."""
    if mask.shape[:2] != (image.height, image.width):
        raise CorruptInputError(
            f"Image/label size mismatch: {image.source_id} is {image.height}x{image.width} but "
            f"{label_path} is {mask.shape[0]}x{mask.shape[1]}"
        )


def apply_lut(ids, lut, label_path):
    """Maps a uint8 id image through a 256-entry table; -1 entries are ids outside the map."""
    mapped = lut[ids]
    if (mapped < 0).any():
        bad = sorted(set(np.unique(ids[mapped < 0]).tolist()))
        raise CorruptInputError(f"Label id(s) {bad} outside the label map in {label_path}")
    return mapped.astype(np.uint8)


def id_lut(id_map, num_classes):
    """256-entry table for ``apply_lut``: ``id_map`` ({source id: class index}) or, when None,
    the identity on ``0..num_classes-1`` plus 255 -> 255. Unmapped ids get -1."""
    lut = np.full(256, -1, np.int32)
    if id_map is None:
        lut[:num_classes] = np.arange(num_classes)
        lut[IGNORE_LABEL] = IGNORE_LABEL
        return lut
    for key, value in id_map.items():
        if not 0 <= key <= 255:
            raise ValueError(f"Label map id {key} does not fit an 8-bit label image")
        lut[key] = value
    return lut
