"""Reader side of the schema: serialized ``tf.train.Example`` -> dict of tensors.

Decoding knows nothing about training or models (that is ``parse``). Output per task::

    common:          image uint8 [H, W, channels], height int64, width int64, source_id string
    classification:  label int64 []
    segmentation:    mask uint8 [H, W]        (class index per pixel, 255 = ignore)
    detection:       boxes float32 [k, 4]     (normalised ymin, xmin, ymax, xmax)
                     classes int64 [k], difficult int64 [k]
"""

import tensorflow as tf

from tfcompress.data import schema


def decode_image(encoded, channels):
    """PNG or JPEG bytes -> uint8 ``[H, W, channels]``.

    JPEGs use the accurate integer IDCT, so pixels equal those of libjpeg's default decode
    (e.g. PIL) exactly; TensorFlow's default fast IDCT differs by a few levels.
    """
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=channels, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(encoded, channels=channels),
    )
    return tf.ensure_shape(image, [None, None, channels])


def check_raw_size(encoded, height, width, stored_channels, source_id=""):
    """An assertion that raw ``encoded`` holds ``height * width * stored_channels`` bytes; its
    error names the record's ``source_id`` and both sizes."""
    size = tf.strings.length(encoded)
    expected = tf.cast(height * width * stored_channels, tf.int32)
    return tf.debugging.Assert(
        tf.equal(size, expected),
        ["Corrupt raw image", source_id, "holds", size, "bytes; its header says", height, "x",
         width, "x", stored_channels, "=", expected],
    )  # fmt: skip


def decode_raw_image(encoded, height, width, stored_channels, channels, source_id=""):
    """Raw uint8 pixels ``[H, W, stored_channels]`` -> ``[H, W, channels]`` (gray <-> RGB)."""
    with tf.control_dependencies(
        [check_raw_size(encoded, height, width, stored_channels, source_id)]
    ):
        pixels = tf.io.decode_raw(encoded, tf.uint8)
    image = tf.reshape(pixels, tf.stack([height, width, -1]))
    image = tf.ensure_shape(image, [None, None, None])
    if channels == 3:
        image = tf.cond(
            tf.equal(stored_channels, 1), lambda: tf.tile(image, [1, 1, 3]), lambda: image
        )
    elif channels == 1:
        image = tf.cond(
            tf.equal(stored_channels, 3),
            lambda: tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))),
                            tf.uint8),
            lambda: image,
        )  # fmt: skip
    return tf.ensure_shape(image, [None, None, channels])


def decode_record_image(features, channels):
    """The image of parsed record ``features`` (any ``schema.IMAGE_FORMATS``)."""
    return tf.cond(
        tf.equal(features[schema.IMAGE_FORMAT], "raw"),
        lambda: decode_raw_image(
            features[schema.IMAGE_ENCODED],
            features[schema.IMAGE_HEIGHT],
            features[schema.IMAGE_WIDTH],
            features[schema.IMAGE_CHANNELS],
            channels,
            features.get(schema.SOURCE_ID, ""),
        ),
        lambda: decode_image(features[schema.IMAGE_ENCODED], channels),
    )


def _decode_common(features, channels):
    return {
        "image": decode_record_image(features, channels),
        "height": features[schema.IMAGE_HEIGHT],
        "width": features[schema.IMAGE_WIDTH],
        "source_id": features[schema.SOURCE_ID],
    }


def _decode_classification(features):
    return {"label": features[schema.CLASS_LABEL]}


def _decode_segmentation(features):
    mask = tf.io.decode_png(features[schema.MASK_ENCODED], channels=1)
    return {"mask": tf.ensure_shape(mask[..., 0], [None, None])}


def _decode_detection(features):
    coords = [tf.sparse.to_dense(features[k]) for k in schema.BBOX_KEYS]
    classes = tf.sparse.to_dense(features[schema.OBJECT_CLASS])
    difficult = tf.sparse.to_dense(features[schema.OBJECT_DIFFICULT])
    difficult = tf.cond(  # optional: an empty list means none is difficult
        tf.equal(tf.size(difficult), 0), lambda: tf.zeros_like(classes), lambda: difficult
    )
    return {"boxes": tf.stack(coords, axis=-1), "classes": classes, "difficult": difficult}


_TASK_DECODERS = {
    schema.CLASSIFICATION: _decode_classification,
    schema.SEGMENTATION: _decode_segmentation,
    schema.DETECTION: _decode_detection,
}


def decode_features(features, task, channels=3):
    """Decodes the parsed features of one record of ``task`` (``schema.feature_spec``)."""
    return {**_decode_common(features, channels), **_TASK_DECODERS[task](features)}


def decode(serialized, task, channels=3):
    """Decodes one serialized record of ``task`` (graph-safe: use inside ``Dataset.map``).
    No validation: ``validate.decode_checked`` is the checked route."""
    features = tf.io.parse_single_example(serialized, schema.feature_spec(task))
    return decode_features(features, task, channels)
