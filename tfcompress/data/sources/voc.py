"""PASCAL VOC (``VOCdevkit/VOC2007``) -> detection ``Source``.

Layout::

    voc_dir/ImageSets/Main/{train,val,trainval,test}.txt   one image id per line
    voc_dir/Annotations/{id}.xml
    voc_dir/JPEGImages/{id}.jpg

VOC boxes are 1-based inclusive pixel indices; they are stored in pixel-edge coordinates
``[(ymin - 1) / H, (xmin - 1) / W, ymax / H, xmax / W]`` with ``H, W`` the JPEG's size
(which must equal the XML ``<size>``). JPEG bytes are stored unchanged. Classes are indexed
in ``CLASSES`` order; the ``difficult`` flag is kept.
"""

import functools
import os
import xml.etree.ElementTree as ET

import numpy as np

from tfcompress.data import encode
from tfcompress.data.convert import Item, Source
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.sources.common import detection_record, require_dir

CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
_CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}


def _number(node, tag, xml_path):
    child = node.find(tag)
    try:
        value = float(child.text)
    except (AttributeError, TypeError, ValueError) as e:
        raise CorruptInputError(f"Missing or non-numeric <{tag}> in {xml_path}") from e
    if not np.isfinite(value):
        raise CorruptInputError(f"<{tag}> is {child.text.strip()} in {xml_path}")
    return value


def _int(node, tag, xml_path):
    return int(_number(node, tag, xml_path))


def _difficult(obj, xml_path):
    """An object's <difficult> flag: 0 or 1 (absent or empty: 0)."""
    text = (obj.findtext("difficult") or "0").strip() or "0"
    if text not in ("0", "1"):
        raise CorruptInputError(f"<difficult> must be 0 or 1, not {text!r}, in {xml_path}")
    return int(text)


def parse_annotation(xml_path):
    """``(height, width, boxes_px [k, 4] ymin,xmin,ymax,xmax 1-based, classes, difficult)``."""
    if not os.path.exists(xml_path):
        raise CorruptInputError(f"Image without its label: annotation {xml_path} is missing")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise CorruptInputError(f"Cannot parse annotation {xml_path}: {e}") from e
    size = root.find("size")
    if size is None:
        raise CorruptInputError(f"Missing <size> in {xml_path}")
    height, width = _int(size, "height", xml_path), _int(size, "width", xml_path)
    boxes, classes, difficult = [], [], []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in _CLASS_INDEX:
            raise CorruptInputError(
                f"Unknown class name {name!r} in {xml_path}: expected one of the 20 VOC classes"
            )
        box = obj.find("bndbox")
        if box is None:
            raise CorruptInputError(f"Object {name!r} without <bndbox> in {xml_path}")
        # (pixel coordinates as written: a fractional one is kept, not truncated)
        boxes.append([_number(box, t, xml_path) for t in ("ymin", "xmin", "ymax", "xmax")])
        classes.append(_CLASS_INDEX[name])
        difficult.append(_difficult(obj, xml_path))
    return height, width, np.asarray(boxes, np.float32).reshape(-1, 4), classes, difficult


def _check_boxes(boxes, classes, height, width, xml_path):
    """Raises ``CorruptInputError`` for the first box (``[ymin, xmin, ymax, xmax]`` VOC
    pixels) that is inverted (a min beyond its max) or outside the image (pixels 1..width
    across, 1..height down), naming the file, the object (index and class) and its
    coordinates."""
    for i, (ymin, xmin, ymax, xmax) in enumerate(boxes.tolist()):
        obj = f"object {i} ({CLASSES[classes[i]]!r}) in {xml_path}"
        coords = f"xmin={xmin:g}, ymin={ymin:g}, xmax={xmax:g}, ymax={ymax:g}"
        inverted = [f"{a}={lo:g} > {b}={hi:g}"
                    for a, lo, b, hi in (("xmin", xmin, "xmax", xmax), ("ymin", ymin, "ymax", ymax))
                    if lo > hi]  # fmt: skip
        if inverted:
            raise CorruptInputError(f"Inverted box of {obj}: {', '.join(inverted)} ({coords})")
        if min(xmin, ymin) < 1 or xmax > width or ymax > height:
            raise CorruptInputError(
                f"Box of {obj} is outside the {height}x{width} image (x in 1..{width}, y in "
                f"1..{height}): {coords}"
            )


def _load(image_path, xml_path):
    height, width, boxes, classes, difficult = parse_annotation(xml_path)
    image = encode.read_image(image_path)
    if (image.height, image.width) != (height, width):
        raise CorruptInputError(
            f"Image/label size mismatch: {image_path} is {image.height}x{image.width} but "
            f"{xml_path} says {height}x{width}"
        )
    _check_boxes(boxes, classes, height, width, xml_path)
    scale = np.array([height, width, height, width], np.float32)
    normalised = (boxes - np.array([1, 1, 0, 0], np.float32)) / scale
    return detection_record(image, normalised, classes, difficult)


def source(voc_dir, splits=None):
    """``splits``: list-file names in ``ImageSets/Main`` (default: whichever of train, val,
    test exist)."""
    require_dir(voc_dir, "VOC")
    lists = require_dir(os.path.join(voc_dir, "ImageSets", "Main"), "VOC ImageSets/Main")
    annotations = require_dir(os.path.join(voc_dir, "Annotations"), "VOC Annotations")
    jpegs = require_dir(os.path.join(voc_dir, "JPEGImages"), "VOC JPEGImages")
    if splits is None:
        splits = [
            s for s in ("train", "val", "test") if os.path.exists(os.path.join(lists, f"{s}.txt"))
        ]
        if not splits:
            raise FileNotFoundError(f"No train.txt, val.txt or test.txt in {lists}")
    items = {}
    for split in splits:
        list_path = os.path.join(lists, f"{split}.txt")
        if not os.path.exists(list_path):
            raise FileNotFoundError(f"Missing VOC split list: {list_path}")
        with open(list_path) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        items[split] = [
            Item(
                os.path.join(jpegs, f"{i}.jpg"),
                functools.partial(
                    _load, os.path.join(jpegs, f"{i}.jpg"), os.path.join(annotations, f"{i}.xml")
                ),
            )
            for i in ids
        ]
    return Source("detection", items, CLASSES)
