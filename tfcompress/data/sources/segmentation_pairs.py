"""An image folder + a label folder (AdapNet++ / Freiburg Forest style) -> segmentation.

``image_dir/{stem}.{png,jpg,...}`` pairs with ``label_dir/{stem}{label_suffix}.{png,...}``.
Labels are either 1-channel id maps or RGB colour maps. A label-map JSON file turns them
into class indices::

    {"0": 255, "1": 0, "2": 1}                       # source id -> class index (255 = ignore)
    {"170,170,170": 0, "0,255,0": 1, "0,0,0": 255}   # RGB colour -> class index

A pixel whose id / colour is not in the map is an error naming the file. Without a map the
ids are the class indices and must be ``< num_classes`` or 255.
"""

import functools
import json
import os

import numpy as np

from tfcompress.data import encode
from tfcompress.data.convert import Item, Source
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.schema import IGNORE_LABEL
from tfcompress.data.sources.common import (
    apply_lut,
    check_mask_classes,
    check_size,
    id_lut,
    list_images,
    read_label,
    require_dir,
    segmentation_record,
)


def load_label_map(path):
    """Reads a label-map JSON file (see ``parse_label_map``)."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"Label map file not found: {path}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"Label map {path} is not valid JSON: {e}") from e
    return parse_label_map(raw, origin=path)


def parse_label_map(raw, origin="label map"):
    """``{"id" or "r,g,b": class index}`` -> ``{(id,) or (r, g, b): class index}``."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"Label map {origin} must be a non-empty JSON object")
    label_map = {}
    for key, value in raw.items():
        parts = key.split(",")
        if len(parts) not in (1, 3) or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"Label map {origin}: key {key!r} is neither an id nor 'r,g,b'")
        if not (isinstance(value, int) and 0 <= value <= IGNORE_LABEL):
            raise ValueError(f"Label map {origin}: value {value!r} of {key!r} is not 0..255")
        label_map[tuple(int(p) for p in parts)] = value
    if len({len(k) for k in label_map}) != 1:
        raise ValueError(f"Label map {origin} mixes ids and 'r,g,b' colours")
    return label_map


def _map_colours(rgb, label_map, label_path):
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    out = np.full(codes.shape, -1, np.int32)
    for (r, g, b), value in label_map.items():
        out[codes == (r << 16 | g << 8 | b)] = value
    if (out < 0).any():
        bad = sorted({tuple(c) for c in rgb[out < 0][:1000].tolist()})[:5]
        raise CorruptInputError(f"Label colour(s) {bad} outside the label map in {label_path}")
    return out.astype(np.uint8)


def _load(image_path, label_path, lut, label_map, expected):
    if label_path is None:
        raise CorruptInputError(f"Image without its label: {image_path} (expected {expected})")
    image = encode.read_image(image_path)
    labels = read_label(label_path, colours=lut is None)
    check_size(image, labels, label_path)
    if lut is not None:
        mask = apply_lut(labels, lut, label_path)
    else:
        mask = _map_colours(labels, label_map, label_path)
    return segmentation_record(image, mask)


def source(
    image_dir,
    label_dir,
    split="train",
    label_map=None,
    num_classes=None,
    label_suffix="",
    classes=None,
):
    """``label_map``: a dict from ``load_label_map`` (or None with ``num_classes``)."""
    require_dir(image_dir, "image")
    require_dir(label_dir, "label")
    if label_map is None and num_classes is None:
        raise ValueError("segmentation_pairs needs a label_map or num_classes")
    if num_classes is not None:
        check_mask_classes(num_classes)
    if num_classes is None:
        num_classes = max([v for v in label_map.values() if v != IGNORE_LABEL], default=-1) + 1
    is_colour = label_map is not None and len(next(iter(label_map))) == 3
    lut = (
        None
        if is_colour
        else id_lut(label_map and {k[0]: v for k, v in label_map.items()}, num_classes)
    )
    labels = {}
    for path in list_images(label_dir, label_suffix):
        stem = os.path.splitext(os.path.basename(path))[0]
        key = stem[: len(stem) - len(label_suffix)]
        if key not in labels or path.lower().endswith(".png"):  # a PNG before any other
            labels[key] = path
    images = list_images(image_dir)
    if not images:
        raise ValueError(f"No images found in {image_dir}")
    items = []
    for path in images:
        stem = os.path.splitext(os.path.basename(path))[0]
        expected = os.path.join(label_dir, f"{stem}{label_suffix}.png")
        load = functools.partial(_load, path, labels.get(stem), lut, label_map, expected)
        items.append(Item(path, load))
    classes = list(classes) if classes else [str(i) for i in range(num_classes)]
    serial_map = (
        None if label_map is None else {",".join(map(str, k)): v for k, v in label_map.items()}
    )
    return Source("segmentation", {split: items}, classes, label_map=serial_map)
