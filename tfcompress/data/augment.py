"""Augmentation as small pure TensorFlow functions.

Every random function takes a stateless ``seed`` (int32/int64 ``[2]``) first, so the same seed
gives the same result whatever the pipeline's parallelism. Images are float32 ``[H, W, C]``,
segmentation masks uint8 ``[H, W]`` (255 = ignore), boxes float32 ``[k, 4]`` normalised
``[ymin, xmin, ymax, xmax]``. Nothing here changes the dtype of a mask or the meaning of a box.
"""

import math

import tensorflow as tf

from tfcompress.data.schema import IGNORE_LABEL


def split_seed(seed, num):
    """``num`` independent seeds ``[num, 2]`` from one seed."""
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num)


def _uniform(seed, minval, maxval):
    return tf.random.stateless_uniform([], seed, minval=minval, maxval=maxval)


def _random_int(seed, maxval_inclusive):
    return tf.random.stateless_uniform(
        [], seed, minval=0, maxval=maxval_inclusive + 1, dtype=tf.int32
    )


def flip_boxes_left_right(boxes):
    """Mirrors normalised boxes about the vertical centre line."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, 4, axis=-1)
    return tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)


def random_flip_left_right(seed, image, mask=None, boxes=None):
    """With probability 1/2 mirrors the image and, when given, the mask and boxes."""
    flip = _uniform(seed, 0.0, 1.0) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    if mask is not None:
        mask = tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask)
    if boxes is not None:
        boxes = tf.cond(flip, lambda: flip_boxes_left_right(boxes), lambda: boxes)
    return image, mask, boxes


def resize(image, size, mask=None):
    """Bilinear image / nearest-neighbour mask resize to ``size``; a no-op at equal size."""
    size = tf.convert_to_tensor(size, tf.int32)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    image = tf.cond(same, lambda: image, lambda: tf.image.resize(image, size))
    if mask is not None:
        mask = tf.cond(
            same,
            lambda: mask,
            lambda: tf.image.resize(mask[..., None], size, method="nearest")[..., 0],
        )
    return image, mask


def random_scale(seed, image, mask=None, scale_range=(0.5, 2.0)):
    """Resizes by one random factor in ``scale_range`` (aspect ratio kept)."""
    scale = _uniform(seed, scale_range[0], scale_range[1])
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    size = tf.maximum(tf.cast(tf.round(hw * scale), tf.int32), 1)
    return resize(image, size, mask)


def random_crop_or_pad(seed, image, size, mask=None, image_fill=0.0, mask_fill=IGNORE_LABEL):
    """Pads (at a random offset) to at least ``size``, then crops ``size`` at a random offset.

    Padding uses ``image_fill`` for the image and ``mask_fill`` (the ignore label) for the mask,
    so padded pixels never count as a class.
    """
    py_seed, px_seed, cy_seed, cx_seed = tf.unstack(split_seed(seed, 4))
    out_h, out_w = size
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    pad_h, pad_w = tf.maximum(out_h - h, 0), tf.maximum(out_w - w, 0)
    top = _random_int(py_seed, pad_h)
    left = _random_int(px_seed, pad_w)
    paddings = [[top, pad_h - top], [left, pad_w - left]]
    image = tf.pad(image, paddings + [[0, 0]], constant_values=image_fill)
    if mask is not None:
        mask = tf.pad(mask, paddings, constant_values=tf.cast(mask_fill, mask.dtype))
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    y = _random_int(cy_seed, h - out_h)
    x = _random_int(cx_seed, w - out_w)
    image = tf.ensure_shape(image[y : y + out_h, x : x + out_w], [out_h, out_w, image.shape[-1]])
    if mask is not None:
        mask = tf.ensure_shape(mask[y : y + out_h, x : x + out_w], [out_h, out_w])
    return image, mask


def random_shift_flip_batch(seed, images, max_shift, flip=True):
    """Per example: a random window of the image zero-padded by ``max_shift`` on each side
    (i.e. a shift by up to ``max_shift`` pixels) and, if ``flip``, a random mirror.

    Vectorised over the batch ``[B, H, W, C]`` with two gathers, so its cost does not grow
    with the number of small per-example ops.
    """
    y_seed, x_seed, flip_seed = tf.unstack(split_seed(seed, 3))
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    p = max_shift
    padded = tf.pad(images, [[0, 0], [p, p], [p, p], [0, 0]])
    dy = tf.random.stateless_uniform([batch], y_seed, 0, 2 * p + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform([batch], x_seed, 0, 2 * p + 1, dtype=tf.int32)
    rows = dy[:, None] + tf.range(height)[None]
    cols = tf.range(width)[None]
    if flip:
        mirrored = tf.random.stateless_uniform([batch], flip_seed) < 0.5
        cols = tf.where(mirrored[:, None], width - 1 - cols, cols)
    cols = dx[:, None] + cols
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def rotation_transform(angle, height, width):
    """The 8-vector projective transform rotating ``angle`` radians about the image centre."""
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    return tf.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0]
    )


def _transform(images, transform, interpolation, fill_value):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images[None],
        transforms=transform[None],
        output_shape=tf.shape(images)[:2],
        fill_value=tf.cast(fill_value, tf.float32),
        interpolation=interpolation,
        fill_mode="CONSTANT",
    )[0]


def random_rotate(seed, image, mask=None, max_degrees=10.0):
    """Rotates by a random angle in ``[-max_degrees, max_degrees]`` about the centre.

    The image is sampled bilinearly with 0 outside; the mask by nearest neighbour with the
    ignore label outside.
    """
    limit = max_degrees * math.pi / 180.0
    angle = _uniform(seed, -limit, limit)
    transform = rotation_transform(angle, tf.shape(image)[0], tf.shape(image)[1])
    image = _transform(image, transform, "BILINEAR", 0.0)
    if mask is not None:
        mask = _transform(mask[..., None], transform, "NEAREST", IGNORE_LABEL)[..., 0]
    return image, mask


def scale_crop_boxes(boxes, scaled_size, offset, output_size):
    """Moves normalised boxes from a ``scaled_size`` image into the crop at ``offset``.

    Returns ``(boxes, keep)``: boxes clipped to the crop, and a bool ``[k]`` that is False for
    boxes left with no area (to be dropped with their classes).
    """
    scaled = tf.cast(tf.tile(scaled_size, [2]), tf.float32)
    shift = tf.cast(tf.tile(offset, [2]), tf.float32)
    out = tf.cast(tf.tile(output_size, [2]), tf.float32)
    boxes = tf.clip_by_value((boxes * scaled - shift) / out, 0.0, 1.0)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, keep


def random_scale_crop_with_boxes(seed, image, boxes, output_size, scale_range=(0.5, 1.5)):
    """Resizes to ``output_size * s`` (s random in ``scale_range``), then crops or pads
    (bottom/right, zeros) to ``output_size`` at a random offset.

    Returns ``(image, boxes, keep)``: boxes clipped to the crop and the mask of boxes to keep.
    """
    scale_seed, y_seed, x_seed = tf.unstack(split_seed(seed, 3))
    out = tf.convert_to_tensor(output_size, tf.int32)
    scale = _uniform(scale_seed, scale_range[0], scale_range[1])
    scaled = tf.maximum(tf.cast(tf.round(tf.cast(out, tf.float32) * scale), tf.int32), 1)
    image, _ = resize(image, scaled)
    offset = tf.stack(
        [
            _random_int(y_seed, tf.maximum(scaled[0] - out[0], 0)),
            _random_int(x_seed, tf.maximum(scaled[1] - out[1], 0)),
        ]
    )
    image = image[offset[0] : offset[0] + out[0], offset[1] : offset[1] + out[1]]
    image = tf.image.pad_to_bounding_box(image, 0, 0, out[0], out[1])
    image = tf.ensure_shape(image, [output_size[0], output_size[1], image.shape[-1]])
    boxes, keep = scale_crop_boxes(boxes, scaled, offset, out)
    return image, boxes, keep
