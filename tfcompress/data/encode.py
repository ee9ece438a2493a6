"""Writer side of the schema: images, masks and boxes -> serialized ``tf.train.Example``.

PIL and protocol buffers only (no TensorFlow ops), so converters stay fast. Every key comes
from ``schema``; ``decode`` reads the same keys back.
"""

import dataclasses
import io
import struct
import warnings
import zlib

import numpy as np
import tensorflow as tf
from PIL import Image

from tfcompress.data import schema
from tfcompress.data.errors import CorruptInputError

_KEEP_FORMATS = {"PNG": "png", "JPEG": "jpeg"}  # stored as-is; anything else becomes PNG
_CHANNELS = {"L": 1, "RGB": 3}


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """Encoded image bytes and what a reader needs to know about them."""

    data: bytes
    format: str  # one of schema.IMAGE_FORMATS
    height: int
    width: int
    channels: int
    source_id: str = ""


def encode_array(array, source_id="", image_format="png"):
    """uint8 ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` -> lossless ``EncodedImage``.

    ``image_format="raw"`` stores the pixels as they are: for small images (Fashion-MNIST,
    mosaics) it decodes several times faster than PNG and the GZIP record compression makes
    it as small.
    """
    if image_format == "png":
        return encode_png(array, source_id)
    if image_format != "raw":
        raise ValueError(f"image_format must be 'png' or 'raw'. Received: {image_format!r}")
    array = _check_pixels(array, source_id)
    channels = 1 if array.ndim == 2 else 3
    return EncodedImage(array.tobytes(), "raw", array.shape[0], array.shape[1], channels, source_id)


def _check_pixels(array, source_id):
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"Images must be uint8. Received: dtype={array.dtype} ({source_id})")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(
            f"Images must be [H, W], [H, W, 1] or [H, W, 3]. Received: shape={array.shape} "
            f"({source_id})"
        )
    return np.ascontiguousarray(array)


def encode_png(array, source_id=""):
    """uint8 ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` array -> lossless PNG ``EncodedImage``."""
    array = _check_pixels(array, source_id)
    channels = 1 if array.ndim == 2 else 3
    return EncodedImage(
        png_bytes(array), "png", array.shape[0], array.shape[1], channels, source_id
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(tag, data):
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def png_bytes(array):
    """Minimal lossless 8-bit PNG (gray ``[H, W]`` or RGB ``[H, W, 3]``): no row filters and
    stored (level 0) deflate blocks, since the GZIP record compression compresses across
    records anyway. Several times faster to write than PIL, and cheaper to decode."""
    h, w = array.shape[:2]
    color_type = 0 if array.ndim == 2 else 2
    rows = np.empty((h, 1 + array[0].size), np.uint8)
    rows[:, 0] = 0  # filter type "None" on every row
    rows[:, 1:] = array.reshape(h, -1)
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 0)),
            _png_chunk(b"IEND", b""),
        )
    )


def open_image(path):
    """Opens and fully decodes an image file; raises ``CorruptInputError`` naming it."""
    return _open(path)[0]


def _open(path):
    """``(image, the file's bytes)``: the image checked with PIL's ``verify()`` (for a PNG,
    every chunk's CRC and the IEND chunk: ``load()`` alone accepts a PNG cut after its
    pixels or with a bad CRC, which TensorFlow's decoder refuses at read time) and fully
    decoded. Raises ``CorruptInputError`` naming the file.

    An image of more than ``2 * PIL.Image.MAX_IMAGE_PIXELS`` pixels is refused (PIL's
    ``DecompressionBombError``); a smaller one beyond ``MAX_IMAGE_PIXELS`` is decoded without
    PIL's ``DecompressionBombWarning`` (the converter reads the user's own dataset)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.verify()  # (leaves img unusable: decoded from a fresh open below)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                copy = img.copy()
                copy.format = img.format  # (a copy has none: read_image keeps PNG / JPEG bytes)
                return copy, data
    except FileNotFoundError as e:
        raise CorruptInputError(f"Image file not found: {path}") from e
    except Image.DecompressionBombError as e:
        raise CorruptInputError(f"Image {path} is too large to decode: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise CorruptInputError(f"Cannot decode image {path}: {e}") from e


def read_image(path):
    """Reads an image file as an ``EncodedImage``.

    PNG and JPEG bytes in gray or RGB are stored unchanged (readers decode exactly what was on
    disk); other formats or modes are converted to RGB (or gray) PNG. A 16-bit gray image is
    scaled to 8 bits (v / 257, as TensorFlow decodes a 16-bit PNG to uint8), not clipped;
    a floating-point one is refused (its range is unknown).
    """
    img, data = _open(path)
    fmt = _KEEP_FORMATS.get(img.format)
    if fmt and img.mode in _CHANNELS:
        return EncodedImage(data, fmt, img.height, img.width, _CHANNELS[img.mode], str(path))
    if img.mode.startswith("I"):
        return encode_png(_eight_bits(np.asarray(img), img.mode, path), source_id=str(path))
    if img.mode == "F":
        raise CorruptInputError(
            f"Image {path} holds floating-point pixels, whose range is unknown: store it as "
            "8-bit (or 16-bit) gray or RGB")
    mode = "L" if img.mode in ("1", "L") else "RGB"
    return encode_png(np.asarray(img.convert(mode)), source_id=str(path))


def _eight_bits(pixels, mode, path):
    """A 16-bit ("I;16*", or "I" holding 0..65535) gray image as uint8: v / 257 rounded;
    an "I" image of 0..255 as it is."""
    pixels = pixels.astype(np.int64)
    low, high = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
    if low < 0 or high > 65535:
        raise CorruptInputError(
            f"Image {path} holds pixel values {low}..{high}, beyond 16 bits: store it as "
            "8-bit or 16-bit gray or RGB")
    if mode == "I" and high <= 255:
        return pixels.astype(np.uint8)
    return np.round(pixels / 257.0).astype(np.uint8)


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _image_features(image):
    return {
        schema.IMAGE_ENCODED: _bytes(image.data),
        schema.IMAGE_FORMAT: _bytes(image.format.encode()),
        schema.IMAGE_HEIGHT: _ints([image.height]),
        schema.IMAGE_WIDTH: _ints([image.width]),
        schema.IMAGE_CHANNELS: _ints([image.channels]),
        schema.SOURCE_ID: _bytes(image.source_id.encode()),
    }


def _serialize(features):
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def classification_example(image, label):
    """Serialized classification record."""
    return _serialize({**_image_features(image), schema.CLASS_LABEL: _ints([int(label)])})


def segmentation_example(image, mask):
    """Serialized segmentation record; ``mask`` is uint8 ``[H, W]`` (255 = ignore)."""
    mask = np.asarray(mask)
    if mask.dtype != np.uint8 or mask.shape != (image.height, image.width):
        raise CorruptInputError(
            f"Image/label size mismatch for {image.source_id}: image is "
            f"{image.height}x{image.width}, label map is {'x'.join(map(str, mask.shape))} "
            f"({mask.dtype})"
        )
    mask_png = encode_png(mask).data
    return _serialize(
        {
            **_image_features(image),
            schema.MASK_ENCODED: _bytes(mask_png),
            schema.MASK_FORMAT: _bytes(b"png"),
        }
    )


def detection_example(image, boxes, classes, difficult=None):
    """Serialized detection record.

    Args:
      image: ``EncodedImage``.
      boxes: float ``[k, 4]`` normalised ``[ymin, xmin, ymax, xmax]`` in ``[0, 1]``.
      classes: int ``[k]``.
      difficult: optional int/bool ``[k]`` (default all 0).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes, np.int64).reshape(-1)
    difficult = np.zeros_like(classes) if difficult is None else np.asarray(difficult, np.int64)
    if not len(boxes) == len(classes) == len(difficult):
        raise CorruptInputError(
            f"{image.source_id}: {len(boxes)} boxes, {len(classes)} classes and "
            f"{len(difficult)} difficult flags must have equal length"
        )
    bad = (boxes < 0) | (boxes > 1)
    if bad.any() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise CorruptInputError(
            f"{image.source_id}: boxes must be normalised [ymin, xmin, ymax, xmax] in [0, 1] "
            f"with min <= max. Received: {boxes.tolist()}"
        )
    features = _image_features(image)
    for i, key in enumerate(schema.BBOX_KEYS):
        features[key] = _floats(boxes[:, i].tolist())
    features[schema.OBJECT_CLASS] = _ints(classes.tolist())
    features[schema.OBJECT_DIFFICULT] = _ints(difficult.tolist())
    return _serialize(features)
