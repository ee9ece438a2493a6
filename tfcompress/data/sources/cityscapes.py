"""Cityscapes ``leftImg8bit/`` + ``gtFine/`` -> segmentation ``Source`` with the 19 train ids.

Layout::

    root/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png
    root/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png

labelIds 0..33 map to train ids 0..18 (``TRAIN_IDS``) or 255 (ignore); any other id in a
label PNG is outside the label map and an error. Images are stored as their original PNG.
"""

import functools
import os

import numpy as np

from tfcompress.data import encode
from tfcompress.data.convert import Item, Source
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.sources.common import (
    SPLITS,
    apply_lut,
    check_size,
    read_label,
    require_dir,
    segmentation_record,
)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"

CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip

# labelId -> trainId (cityscapesScripts/helpers/labels.py); ids absent here are ignored (255).
TRAIN_IDS = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
NUM_LABEL_IDS = 34  # labelIds 0..33 are defined


def label_lut():
    """256-entry labelId -> trainId table: 255 for ignored ids, -1 for undefined ids."""
    lut = np.full(256, -1, np.int32)
    lut[:NUM_LABEL_IDS] = 255
    for label_id, train_id in TRAIN_IDS.items():
        lut[label_id] = train_id
    return lut


def _load(image_path, label_path, lut):
    image = encode.read_image(image_path)
    if not os.path.exists(label_path):
        raise CorruptInputError(f"Image without its label: {image_path} (expected {label_path})")
    ids = read_label(label_path)
    check_size(image, ids, label_path)
    return segmentation_record(image, apply_lut(ids, lut, label_path))


def source(root, splits=None):
    """``splits``: names under ``leftImg8bit/`` (default: whichever of train/val/test exist)."""
    images_root = require_dir(os.path.join(root, "leftImg8bit"), "Cityscapes leftImg8bit")
    labels_root = require_dir(os.path.join(root, "gtFine"), "Cityscapes gtFine")
    if splits is None:
        splits = [s for s in SPLITS if os.path.isdir(os.path.join(images_root, s))]
        if not splits:
            raise FileNotFoundError(f"No train/val/test folder in {images_root}")
    lut = label_lut()
    items = {}
    for split in splits:
        split_dir = require_dir(os.path.join(images_root, split), "Cityscapes split")
        items[split] = []
        for city in sorted(os.listdir(split_dir)):
            city_dir = os.path.join(split_dir, city)
            if city.startswith(".") or not os.path.isdir(city_dir):  # README.txt, .DS_Store
                continue
            for name in sorted(os.listdir(city_dir)):
                if not name.endswith(IMAGE_SUFFIX):
                    continue
                stem = name[: -len(IMAGE_SUFFIX)]
                image_path = os.path.join(city_dir, name)
                label_path = os.path.join(labels_root, split, city, stem + LABEL_SUFFIX)
                items[split].append(
                    Item(image_path, functools.partial(_load, image_path, label_path, lut))
                )
        if not items[split]:
            raise ValueError(f"No *{IMAGE_SUFFIX} images under {split_dir}")
    label_map = {str(k): int(v) for k, v in enumerate(lut[:NUM_LABEL_IDS])}
    return Source("segmentation", items, CLASSES, label_map=label_map)
