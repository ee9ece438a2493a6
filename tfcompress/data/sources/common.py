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


# Label files hold class ids or colours pixel by pixel: a lossy format (JPEG) changes them.
LOSSLESS_LABEL_FORMATS = ("PNG", "BMP", "GIF", "PPM", "TIFF")


def read_label(label_path, colours=False):
    """A label image as an array: 8-bit ids (H, W) (a palette image's indices, as VOC's
    SegmentationClass PNGs hold them), or with `colours` RGB (H, W, 3) (a palette image's
    colours). Raises `CorruptInputError` naming the file for a lossy format or a mode whose
    pixels are not 8-bit ids / colours (1-bit, 16-bit or float images, which an id table
    would misread)."""
    img = encode.open_image(label_path)
    if img.format not in LOSSLESS_LABEL_FORMATS:
        raise CorruptInputError(
            f"Label {label_path} is a {img.format} file: a lossy format changes pixels' "
            "classes. Store labels as PNG.")
    if colours:
        if img.mode in ("P", "RGBA", "RGB"):
            return np.asarray(img.convert("RGB"))
        raise CorruptInputError(
            f"Label {label_path} must be an RGB colour image (the label map names colours); "
            f"it is a {_mode_name(img.mode)} image")
    if img.mode not in ("L", "P"):
        raise CorruptInputError(
            f"Label {label_path} must be an 8-bit 1-channel id image (or a palette image of "
            f"ids); it is a {_mode_name(img.mode)} image")
    return np.asarray(img)


def _mode_name(mode):
    return {"1": "1-bit", "I": "32-bit integer", "I;16": "16-bit", "I;16B": "16-bit",
            "F": "floating-point", "RGB": "3-channel RGB", "RGBA": "4-channel RGBA",
            "LA": "2-channel gray + alpha", "CMYK": "CMYK"}.get(mode, f"mode-{mode}")


def apply_lut(ids, lut, label_path):
    """Maps an id image (8-bit ids: any integer dtype holding 0..255) through a 256-entry
    table; -1 entries are ids outside the map. Ids beyond 8 bits raise naming them (a cast
    to uint8 would wrap 300 to 44)."""
    ids = np.asarray(ids)
    if ids.dtype != np.uint8:
        if not np.issubdtype(ids.dtype, np.integer):
            raise CorruptInputError(
                f"Label ids in {label_path} must be integers; they are {ids.dtype}")
        outside = (ids < 0) | (ids > 255)
        if outside.any():
            bad = sorted(set(np.unique(ids[outside]).tolist()))[:5]
            raise CorruptInputError(
                f"Label id(s) {bad} in {label_path} do not fit 8 bits (ids are 0..255)")
        ids = ids.astype(np.uint8)
    mapped = lut[ids]
    if (mapped < 0).any():
        bad = sorted(set(np.unique(ids[mapped < 0]).tolist()))
        raise CorruptInputError(f"Label id(s) {bad} outside the label map in {label_path}")
    return mapped.astype(np.uint8)


def check_mask_classes(num_classes):
    """Raises unless ``num_classes`` fits an 8-bit mask: 1..255 (class ids 0..num_classes-1;
    255 is the ignore label)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or not (
        1 <= num_classes <= IGNORE_LABEL
    ):
        raise ValueError(
            f"num_classes must be in 1..{IGNORE_LABEL}: masks hold 8-bit class ids and "
            f"{IGNORE_LABEL} is the ignore label. Received: num_classes={num_classes!r}"
        )


def id_lut(id_map, num_classes):
    """256-entry table for ``apply_lut``: ``id_map`` ({source id: class index}) or, when None,
    the identity on ``0..num_classes-1`` (``check_mask_classes``) plus 255 -> 255. Unmapped
    ids get -1."""
    lut = np.full(256, -1, np.int32)
    if id_map is None:
        check_mask_classes(num_classes)
        lut[:num_classes] = np.arange(num_classes)
        lut[IGNORE_LABEL] = IGNORE_LABEL
        return lut
    for key, value in id_map.items():
        if not 0 <= key <= 255:
            raise ValueError(f"Label map id {key} does not fit an 8-bit label image")
        lut[key] = value
    return lut
