"""Parsing: decoded dict -> model inputs, with a training (augmenting) and an eval path.

One small parser per task (Model Garden style). ``parse_train(decoded, seed)`` augments with
the stateless ``seed``; ``parse_eval(decoded)`` only converts and resizes. Both return
``(image, target)`` with ``image = float32(uint8) / 255`` of shape ``[*output_size, C]``:

    classification:  target = label int32 []
    segmentation:    target = mask int32 [H, W]        (255 = ignore, also on padding)
    detection:       target = {"boxes": float32 [max_boxes, 4], "classes": int32 [max_boxes],
                               "difficult": int32 [max_boxes], "num_boxes": int32 []}
                     rows >= num_boxes are padding: boxes 0, classes -1, difficult 0.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfcompress.data import augment, schema
from tfcompress.numbers import check_count, is_int


def to_float(image):
    """uint8 -> float32 in [0, 1], exactly ``float32(x) / 255``.

    ``divide_no_nan`` rather than ``/``: TensorFlow turns ``x / 255.0`` into ``x * (1 /
    255)`` (1 ulp off for half the values) in functions it optimises on their own, such as
    ``decode_classification_batch``'s never-inlined routes; ``DivNoNan`` stays a division.
    """
    return tf.math.divide_no_nan(tf.cast(image, tf.float32), 255.0)


def check_output_size(output_size):
    """``output_size`` as ``(height, width)`` of Python ints; raises a ValueError naming it
    unless it is a pair (tuple, list or 1-D array) of integers >= 1, NumPy's too. The one
    check of an ``output_size``: the parsers' and ``build_dataset``'s."""
    pair = isinstance(output_size, (tuple, list)) or (
        isinstance(output_size, np.ndarray) and output_size.ndim == 1
    )
    if pair and len(output_size) == 2 and all(is_int(v) and v >= 1 for v in output_size):
        return tuple(int(v) for v in output_size)
    raise ValueError(
        "output_size must be (height, width): a tuple, list or 1-D array of 2 integers >= 1. "
        f"Received: output_size={output_size!r}"
    )


def _set_output_size(parser):
    object.__setattr__(parser, "output_size", check_output_size(parser.output_size))


def _check_range(name, value):
    lo, hi = value
    if not 0 < lo <= hi:
        raise ValueError(f"{name} must be (lo, hi) with 0 < lo <= hi. Received: {name}={value}")


@dataclasses.dataclass(frozen=True)
class ClassificationParser:
    """Train: resize, then per example a random shift by up to ``crop_padding`` pixels (zero
    padded crop) and a random flip.

    The augmentation is vectorised (``augment_batch``), so ``build_dataset`` runs it once per
    batch; ``parse_train`` applies the same function to a batch of one.
    """

    output_size: tuple
    crop_padding: int = 2
    flip: bool = True

    def __post_init__(self):
        _set_output_size(self)
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0. Received: {self.crop_padding}")

    def prepare(self, image):
        """uint8 ``[h, w, C]`` -> float32 ``[*output_size, C]`` (resized if needed)."""
        image, _ = augment.resize(to_float(image), self.output_size)
        return tf.ensure_shape(image, [*self.output_size, image.shape[-1]])

    def augment_batch(self, images, seed):
        """float32 ``[B, H, W, C]`` -> randomly shifted (and flipped) ``[B, H, W, C]``."""
        return augment.random_shift_flip_batch(seed, images, self.crop_padding, self.flip)

    def parse_eval(self, decoded):
        return self.prepare(decoded["image"]), tf.cast(decoded["label"], tf.int32)

    def parse_train(self, decoded, seed):
        image = self.augment_batch(self.prepare(decoded["image"])[None], seed)[0]
        return image, tf.cast(decoded["label"], tf.int32)


@dataclasses.dataclass(frozen=True)
class SegmentationParser:
    """Train: random scale, crop/pad with the ignore label, random flip, random rotation."""

    output_size: tuple
    scale_range: tuple = (0.5, 2.0)
    max_rotation_degrees: float = 10.0
    flip: bool = True

    def __post_init__(self):
        _set_output_size(self)
        _check_range("scale_range", self.scale_range)

    def parse_eval(self, decoded):
        image, mask = augment.resize(to_float(decoded["image"]), self.output_size, decoded["mask"])
        return self._finish(image, mask)

    def parse_train(self, decoded, seed):
        seeds = tf.unstack(augment.split_seed(seed, 4))
        image, mask = to_float(decoded["image"]), decoded["mask"]
        image, mask = augment.random_scale(seeds[0], image, mask, self.scale_range)
        image, mask = augment.random_crop_or_pad(seeds[1], image, self.output_size, mask)
        if self.flip:
            image, mask, _ = augment.random_flip_left_right(seeds[2], image, mask)
        if self.max_rotation_degrees:
            image, mask = augment.random_rotate(seeds[3], image, mask, self.max_rotation_degrees)
        return self._finish(image, mask)

    def _finish(self, image, mask):
        image = tf.ensure_shape(image, [*self.output_size, image.shape[-1]])
        return image, tf.ensure_shape(tf.cast(mask, tf.int32), self.output_size)


def pad_objects(boxes, classes, difficult, max_boxes):
    """Truncates/pads objects to ``max_boxes`` rows; padding classes are ``PAD_CLASS``."""
    num = tf.minimum(tf.shape(classes)[0], max_boxes)
    pad = max_boxes - num
    boxes = tf.pad(boxes[:num], [[0, pad], [0, 0]])
    classes = tf.pad(tf.cast(classes[:num], tf.int32), [[0, pad]], constant_values=schema.PAD_CLASS)
    difficult = tf.pad(tf.cast(difficult[:num], tf.int32), [[0, pad]])
    return {
        "boxes": tf.ensure_shape(boxes, [max_boxes, 4]),
        "classes": tf.ensure_shape(classes, [max_boxes]),
        "difficult": tf.ensure_shape(difficult, [max_boxes]),
        "num_boxes": num,
    }


@dataclasses.dataclass(frozen=True)
class DetectionParser:
    """Train: random flip, random scale and crop; boxes clipped, emptied boxes dropped."""

    output_size: tuple
    max_boxes: int = 100
    scale_range: tuple = (0.5, 1.5)
    flip: bool = True

    def __post_init__(self):
        _set_output_size(self)
        _check_range("scale_range", self.scale_range)
        check_count("max_boxes", self.max_boxes)
        object.__setattr__(self, "max_boxes", int(self.max_boxes))  # an np.int64 too

    def parse_eval(self, decoded):
        image, _ = augment.resize(to_float(decoded["image"]), self.output_size)
        return self._finish(image, decoded["boxes"], decoded["classes"], decoded["difficult"])

    def parse_train(self, decoded, seed):
        flip_seed, crop_seed = tf.unstack(augment.split_seed(seed, 2))
        image, boxes = to_float(decoded["image"]), decoded["boxes"]
        if self.flip:
            image, _, boxes = augment.random_flip_left_right(flip_seed, image, boxes=boxes)
        image, boxes, keep = augment.random_scale_crop_with_boxes(
            crop_seed, image, boxes, self.output_size, self.scale_range
        )
        classes = tf.boolean_mask(decoded["classes"], keep)
        difficult = tf.boolean_mask(decoded["difficult"], keep)
        return self._finish(image, tf.boolean_mask(boxes, keep), classes, difficult)

    def _finish(self, image, boxes, classes, difficult):
        image = tf.ensure_shape(image, [*self.output_size, image.shape[-1]])
        return image, pad_objects(boxes, classes, difficult, self.max_boxes)


PARSERS = {
    schema.CLASSIFICATION: ClassificationParser,
    schema.SEGMENTATION: SegmentationParser,
    schema.DETECTION: DetectionParser,
}


def make_parser(task, output_size, **kwargs):
    """The default parser of ``task``; ``kwargs`` override its augmentation settings."""
    return PARSERS[schema.check_task(task)](output_size=output_size, **kwargs)
