"""What a valid record is, per task: the one definition ``build_dataset`` and ``verify`` use.

Two layers, both naming the feature and the value in their reason:

- ``structure_problem(record, task)``: Python, on serialized bytes. The record is a
  ``tf.train.Example`` whose schema features have the right type and count. TensorFlow's
  parser raises on these (naming no file), so they are checked before TensorFlow parses:
  ``find_invalid`` and the shard scan (``integrity.check_shards``) call it.
- in-graph checks on parsed features (``parse_tolerant``; a missing feature reads as a
  sentinel rather than raising):

  - every task: ``image/encoded``, ``image/height``, ``image/width``, ``image/channels``
    present; format ``png``, ``jpeg`` or ``raw``; height and width >= 1; channels 1 or 3;
    raw pixels as many bytes as the header says; a PNG or JPEG decodes to the header's size,
    gray or colour as its channels say;
  - classification: ``image/class/label`` in ``[0, num_classes)``, checked on the int64
    value before any cast (without ``num_classes``: in ``[0, 2**31)``);
  - segmentation: the mask stored as PNG (a JPEG mask is lossy: pixels change class), of
    the image's size, its ids in ``[0, num_classes)`` or 255 (ignore);
  - detection: the four bbox lists and the class list of equal length (boxes without
    classes are rejected), ``difficult`` empty or as long, coordinates finite, in
    ``[0, 1]`` with ``ymin <= ymax`` and ``xmin <= xmax``, classes in ``[0, num_classes)``.

Each check is a ``(bad, reason)`` pair: ``bad`` a bool tensor, ``reason()`` builds the
message only when a record failed (in the branch taken for it), so valid records pay only
for the comparisons. ``find_invalid`` runs both layers eagerly over a list of records.
"""

import functools
import re

import tensorflow as tf
from google.protobuf import message as protobuf_message

from tfcompress.data import decode, schema
from tfcompress.data.graph_fn import graph_fn
from tfcompress.messages import tf_error_line

MISSING = -(2**63)  # what a missing int64 feature parses to (no valid record holds it)
LABEL_LIMIT = 2**31  # labels are cast to int32: without num_classes they must stay below
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNDECODABLE = f"{schema.IMAGE_ENCODED} or its mask does not decode"
_KINDS = {tf.int64: "int64_list", tf.float32: "float_list", tf.string: "bytes_list"}
# Present in every record of their task; a list (the boxes of a detection record) may be
# empty: an image without objects is a detection record, one without the lists is not.
_REQUIRED = {
    schema.IMAGE_ENCODED, schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH, schema.IMAGE_CHANNELS,
    schema.CLASS_LABEL, schema.MASK_ENCODED, *schema.BBOX_KEYS, schema.OBJECT_CLASS,
}  # fmt: skip


def tolerant_spec(task):
    """``schema.feature_spec(task)`` where a missing required feature parses to a sentinel
    (``MISSING``, or ``""`` for bytes) instead of raising."""
    spec = schema.feature_spec(task)
    for key, feature in spec.items():
        if isinstance(feature, tf.io.FixedLenFeature) and feature.default_value is None:
            default = "" if feature.dtype == tf.string else MISSING
            spec[key] = tf.io.FixedLenFeature(feature.shape, feature.dtype, default)
    return spec


def parse_tolerant(serialized, task, keys=None):
    """``parse_example`` (a batch ``[B]``) or ``parse_single_example`` (a scalar) of the
    ``tolerant_spec`` (restricted to ``keys``)."""
    spec = tolerant_spec(task)
    if keys is not None:
        spec = {k: spec[k] for k in keys}
    if serialized.shape.rank == 0:
        return tf.io.parse_single_example(serialized, spec)
    return tf.io.parse_example(serialized, spec)


# -- structure (Python) -------------------------------------------------------------------


@functools.cache
def _structure(task):
    """``[(key, kind, fixed, required)]`` of ``task``'s schema features, computed once."""
    return [
        (key, _KINDS[spec.dtype], isinstance(spec, tf.io.FixedLenFeature), key in _REQUIRED)
        for key, spec in schema.feature_spec(task).items()
    ]


def structure_problem(record, task):
    """Why serialized ``record`` cannot be parsed as a ``task`` record, or ``None``: not a
    ``tf.train.Example``, a schema feature of the wrong type, a required one missing (a
    detection record's box and class lists may be empty, not absent), or a single-valued
    one holding another count."""
    try:
        features = tf.train.Example.FromString(bytes(record)).features.feature
    except (protobuf_message.DecodeError, ValueError) as e:
        return f"not a tf.train.Example ({e})"
    for key, expected, fixed, required in _structure(task):
        if key not in features:
            if required:
                return f"{key} missing"
            continue
        feature = features[key]
        kind = feature.WhichOneof("kind")
        if kind is None:  # an empty Feature: no list at all (an empty one, if a list)
            if required and fixed:
                return f"{key} missing (an empty feature)"
            continue
        if kind != expected:
            return f"{key} is a {kind}, expected a {expected}"
        if fixed:
            count = len(getattr(feature, kind).value)
            if count != 1 and (count or required):
                return f"{key} holds {count} values, expected 1"
    return None


# -- in-graph checks ------------------------------------------------------------------------


def _s(x):
    return tf.strings.as_string(x)


def header_checks(f, task, num_classes, signatures=True):
    """``[(bad, reason)]`` on parsed header features (scalars or ``[B]``), before decoding.
    ``signatures=False`` leaves out whether a PNG or JPEG starts with its signature (string
    ops on every record; a batch route leaves it to the decoder's error, which
    ``reader.map_named`` names)."""
    encoded, fmt = f[schema.IMAGE_ENCODED], f[schema.IMAGE_FORMAT]
    h, w, c = f[schema.IMAGE_HEIGHT], f[schema.IMAGE_WIDTH], f[schema.IMAGE_CHANNELS]
    checks = [_missing(schema.IMAGE_ENCODED, encoded, "")]
    checks += [_missing(key, f[key]) for key in (schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH,
                                                 schema.IMAGE_CHANNELS)]  # fmt: skip
    known = tf.reduce_any(tf.stack([tf.equal(fmt, x) for x in schema.IMAGE_FORMATS]), axis=0)
    formats = ", ".join(schema.IMAGE_FORMATS)
    checks += [
        (~known, lambda: tf.strings.join(
            [f"{schema.IMAGE_FORMAT} '", fmt, f"' is not one of {formats}"])),
        ((h < 1) & (h != MISSING), lambda: tf.strings.join(
            [f"{schema.IMAGE_HEIGHT} ", _s(h), " < 1"])),
        ((w < 1) & (w != MISSING), lambda: tf.strings.join(
            [f"{schema.IMAGE_WIDTH} ", _s(w), " < 1"])),
        ((c != 1) & (c != 3) & (c != MISSING), lambda: tf.strings.join(
            [f"{schema.IMAGE_CHANNELS} ", _s(c), " is not 1 or 3"])),
    ]  # fmt: skip
    if signatures:
        signed = tf.equal(tf.strings.substr(encoded, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
        signed = signed | tf.io.is_jpeg(encoded)
        checks.append((
            known & tf.not_equal(fmt, "raw") & ~signed & tf.not_equal(encoded, ""),
            lambda: tf.strings.join([f"{schema.IMAGE_ENCODED} is not a PNG or JPEG ("
                                     f"{schema.IMAGE_FORMAT} '", fmt, "')"]),
        ))  # fmt: skip
    size_ok = (h >= 1) & (w >= 1) & (h < 2**24) & (w < 2**24) & ((c == 1) | (c == 3))
    expected = tf.where(size_ok, h * w * c, 0)
    length = tf.cast(tf.strings.length(encoded), tf.int64)
    checks.append((
        size_ok & tf.equal(fmt, "raw") & tf.not_equal(length, expected) & tf.not_equal(encoded, ""),
        lambda: tf.strings.join([
            f"raw {schema.IMAGE_ENCODED} holds ", _s(length), " bytes, but height x width x "
            "channels = ", _s(h), " x ", _s(w), " x ", _s(c), " = ", _s(expected)]),
    ))  # fmt: skip
    if task == schema.CLASSIFICATION:
        label = f[schema.CLASS_LABEL]
        checks += [
            _missing(schema.CLASS_LABEL, label),
            _range_check(schema.CLASS_LABEL, label, num_classes, label != MISSING),
        ]
    if task == schema.SEGMENTATION:
        mask, mask_format = f[schema.MASK_ENCODED], f[schema.MASK_FORMAT]
        png = tf.equal(tf.strings.substr(mask, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
        checks += [
            _missing(schema.MASK_ENCODED, mask, ""),
            (tf.not_equal(mask_format, "png"), lambda: tf.strings.join([
                f"{schema.MASK_FORMAT} '", mask_format, "' is not png (a mask must be stored "
                "losslessly: JPEG changes class ids)"])),
            (~png & tf.not_equal(mask, ""), lambda: tf.strings.join([
                f"{schema.MASK_ENCODED} is not a PNG (", tf.where(
                    tf.io.is_jpeg(mask), "a JPEG: lossy, pixels change class", "unknown bytes"),
                ")"])),
        ]  # fmt: skip
        # its IHDR: bit depth (byte 24) and colour type (25) must be 8 and 0 (gray): a 16-bit
        # mask decodes to uint8 scaled by 1/257 (every id 0), a palette one to luminance
        # (only where an IHDR chunk is where it belongs: else the decoder names the damage)
        padded = tf.strings.join([mask, "\0" * 26])
        has_ihdr = tf.equal(tf.strings.substr(padded, 12, 4), "IHDR")
        ihdr = tf.strings.substr(padded, 24, 2)
        eight = tf.equal(tf.strings.substr(ihdr, 0, 1), "\x08")
        checks.append((
            png & has_ihdr & tf.not_equal(ihdr, "\x08\x00"),
            lambda: tf.strings.join([
                f"{schema.MASK_ENCODED} is a PNG of ", tf.where(
                    eight, "palette or colour pixels", "pixels not 8 bits deep"),
                ": a mask holds 8-bit gray class ids"]),
        ))  # fmt: skip
    if task == schema.DETECTION:
        checks += _object_list_checks(f)
    return checks


def _missing(key, value, sentinel=MISSING):
    """``(bad, reason)``: feature ``key`` was absent (``value`` is the parse sentinel)."""
    return tf.equal(value, sentinel), lambda: tf.fill(tf.shape(value), f"{key} missing")


def _limit(num_classes):
    return LABEL_LIMIT if num_classes is None else int(num_classes)


def _bound(num_classes):
    return "[0, 2**31)" if num_classes is None else f"[0, {int(num_classes)})"


def _range_check(key, value, num_classes, present=True):
    """``(bad, reason)``: ``value`` (int64, any shape) outside ``[0, num_classes)`` (without
    ``num_classes``: ``[0, 2**31)``)."""
    bad = present & ((value < 0) | (value >= _limit(num_classes)))
    return bad, lambda: tf.strings.join([f"{key} ", _s(value), f" outside {_bound(num_classes)}"])


def _stored_channels(encoded, fmt):
    """1 (gray) or 3 (colour) of each PNG or JPEG ``encoded`` (a scalar or ``[B]``) from its
    own header: a PNG's IHDR colour type (gray, with or without alpha: 1; RGB, palette,
    RGBA: 3), a JPEG's component count (1: 1, else 3); 0 where there is none to read (raw
    pixels, other bytes)."""
    padded = tf.strings.join([encoded, "\0" * 26])
    png = tf.equal(tf.strings.substr(padded, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)
    png &= tf.equal(tf.strings.substr(padded, 12, 4), "IHDR")
    colour_type = tf.strings.substr(padded, 25, 1)
    png_gray = tf.equal(colour_type, "\x00") | tf.equal(colour_type, "\x04")
    jpeg = tf.io.is_jpeg(encoded)

    def components(e):  # the JPEG's header only (its decoding succeeded or failed already)
        return tf.cond(tf.io.is_jpeg(e), lambda: tf.io.extract_jpeg_shape(e, tf.int64)[2],
                       lambda: tf.constant(0, tf.int64))  # fmt: skip

    if encoded.shape.rank == 0:
        jpeg_components = components(encoded)
    else:
        jpeg_components = tf.cond(
            tf.reduce_any(jpeg),
            lambda: tf.map_fn(components, encoded, fn_output_signature=tf.int64),
            lambda: tf.zeros(tf.shape(encoded), tf.int64),
        )
    one, three, none = (tf.constant(c, tf.int64) for c in (1, 3, 0))
    jpeg_channels = tf.where(tf.equal(jpeg_components, 1), one, three)
    stored = tf.where(png, tf.where(png_gray, one, three),
                      tf.where(jpeg & (jpeg_components > 0), jpeg_channels, none))  # fmt: skip
    return tf.where(tf.equal(fmt, "raw"), none, stored)


def channels_check(f):
    """``(bad, reason)``: a PNG or JPEG whose own header says gray where ``image/channels``
    says 3, or colour where it says 1 (scalars or ``[B]``; raw pixels are as many bytes as
    the channels say, ``header_checks``)."""
    encoded, c = f[schema.IMAGE_ENCODED], f[schema.IMAGE_CHANNELS]
    stored = _stored_channels(encoded, f[schema.IMAGE_FORMAT])
    bad = tf.not_equal(stored, 0) & tf.not_equal(stored, c) & ((c == 1) | (c == 3))
    return bad, lambda: tf.strings.join([
        f"{schema.IMAGE_CHANNELS} ", _s(c), f" but {schema.IMAGE_ENCODED} is a ",
        tf.where(tf.equal(stored, 1), "gray", "colour"), " ",
        tf.where(tf.io.is_jpeg(encoded), "JPEG", "PNG")])  # fmt: skip


def content_checks(f, d, task, num_classes):
    """``[(bad, reason)]`` of one record's decoded tensors ``d`` (``decode.decode_features``)
    against its header features ``f``."""
    shape = tf.shape(d["image"], out_type=tf.int64)
    h, w = f[schema.IMAGE_HEIGHT], f[schema.IMAGE_WIDTH]
    checks = [(
        tf.logical_or(tf.not_equal(shape[0], h), tf.not_equal(shape[1], w)),
        lambda: tf.strings.join([
            "image decodes to ", _s(shape[0]), "x", _s(shape[1]), " but its header says "
            f"{schema.IMAGE_HEIGHT} x {schema.IMAGE_WIDTH} = ", _s(h), "x", _s(w)]),
    ), channels_check(f)]  # fmt: skip
    if task == schema.SEGMENTATION:
        mask = d["mask"]
        mshape = tf.shape(mask, out_type=tf.int64)
        checks.append((
            tf.logical_or(tf.not_equal(mshape[0], shape[0]), tf.not_equal(mshape[1], shape[1])),
            lambda: tf.strings.join(["mask is ", _s(mshape[0]), "x", _s(mshape[1]),
                                     ", image ", _s(shape[0]), "x", _s(shape[1])]),
        ))  # fmt: skip
        if num_classes is not None:
            ids = tf.cast(mask, tf.int64)
            bad_ids = (ids >= int(num_classes)) & (ids != schema.IGNORE_LABEL)
            checks.append(
                (
                    tf.reduce_any(bad_ids),
                    lambda: tf.strings.join(
                        [
                            "mask value ",
                            _s(tf.reduce_max(tf.where(bad_ids, ids, 0))),
                            f" outside [0, {int(num_classes)}) and not "
                            f"{schema.IGNORE_LABEL} (ignore)",
                        ]
                    ),
                )
            )
    if task == schema.DETECTION:
        checks += _detection_checks(d, num_classes)
    return checks


_OBJECT_KEYS = (*schema.BBOX_KEYS, schema.OBJECT_CLASS, schema.OBJECT_DIFFICULT)


def _object_list_checks(f):
    """``[(bad, reason)]``: the detection lists of one record have consistent lengths (the
    decoder stacks the four coordinate lists, so this comes before decoding)."""
    lengths = tf.stack([tf.size(f[k].values, out_type=tf.int64) for k in _OBJECT_KEYS])
    names = [k.rsplit("/", 1)[-1] for k in schema.BBOX_KEYS]

    def unequal():
        parts = []
        for i, name in enumerate([*names, schema.OBJECT_CLASS]):
            parts += [f"{', ' if i else ''}{name} ", _s(lengths[i])]
        return tf.strings.join(["object lists differ in length (", *parts,
                                "): every box needs its 4 coordinates and a class"])  # fmt: skip

    return [
        (tf.reduce_any(tf.not_equal(lengths[:5], lengths[0])), unequal),
        ((lengths[5] != 0) & (lengths[5] != lengths[4]), lambda: tf.strings.join([
            f"{schema.OBJECT_DIFFICULT} has ", _s(lengths[5]), " entries, expected 0 or ",
            _s(lengths[4])])),
    ]  # fmt: skip


def _detection_checks(d, num_classes):
    """``[(bad, reason)]`` of one record's decoded boxes and classes."""
    boxes, classes = d["boxes"], d["classes"]
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    inside = tf.reduce_all((boxes >= 0) & (boxes <= 1), axis=-1)
    ordered = (boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= boxes[:, 3])

    def box_reason(bad, what):
        def reason():
            i = tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int64)
            return tf.strings.join([
                "box ", _s(i), " [ymin, xmin, ymax, xmax] = ",
                tf.strings.format("{}", boxes[i], summarize=4), f" {what}"])  # fmt: skip

        return reason

    bad_class = (classes < 0) | (classes >= _limit(num_classes))
    return [
        (tf.reduce_any(~finite), box_reason(~finite, "is not finite")),
        (tf.reduce_any(finite & ~inside), box_reason(finite & ~inside, "is outside [0, 1]")),
        (tf.reduce_any(finite & inside & ~ordered),
         box_reason(finite & inside & ~ordered, "has ymin > ymax or xmin > xmax")),
        (tf.reduce_any(bad_class), lambda: tf.strings.join([
            f"{schema.OBJECT_CLASS} ", _s(classes[tf.argmax(tf.cast(bad_class, tf.int32))]),
            f" outside {_bound(num_classes)}"])),
    ]  # fmt: skip


def any_bad(checks):
    """Whether any record fails any check: a bool scalar."""
    return tf.reduce_any(tf.stack([tf.reduce_any(bad) for bad, _ in checks]))


def bad_records(checks):
    """Per record (``[B]``, or a scalar), whether it fails any check."""
    return tf.reduce_any(tf.stack([bad for bad, _ in checks]), axis=0)


def first_reason(checks):
    """``(position, reason)`` of the first failing record and its first failing check
    (position 0 for scalar checks). Build only where a record failed."""
    bad = tf.stack([tf.reshape(b, [-1]) for b, _ in checks])  # [checks, B]
    reasons = tf.stack([tf.reshape(r(), [-1]) for _, r in checks])
    record = tf.argmax(tf.cast(tf.reduce_any(bad, axis=0), tf.int32), output_type=tf.int64)
    check = tf.argmax(tf.cast(bad[:, record], tf.int32), output_type=tf.int64)
    return record, reasons[check, record]


def decode_checked(features, task, channels, num_classes):
    """``(decoded, reason)`` of one parsed record: ``reason`` is ``""`` when it is valid,
    else the first problem; an invalid header is not decoded (``decoded`` is then empty
    placeholders of the same structure)."""
    header = header_checks(features, task, num_classes)

    def decoded():
        d = decode.decode_features(features, task, channels)
        content = content_checks(features, d, task, num_classes)
        reason = tf.cond(any_bad(content), lambda: first_reason(content)[1], lambda: "")
        return d, reason

    def placeholder():
        return empty_decoded(task, channels), first_reason(header)[1]

    return tf.cond(any_bad(header), placeholder, decoded)


def empty_decoded(task, channels):
    """A decoded record of no pixels and no objects, for the branch of an invalid record."""
    d = {"image": tf.zeros([0, 0, channels], tf.uint8), "height": tf.constant(0, tf.int64),
         "width": tf.constant(0, tf.int64), "source_id": tf.constant("")}  # fmt: skip
    if task == schema.CLASSIFICATION:
        d["label"] = tf.constant(0, tf.int64)
    elif task == schema.SEGMENTATION:
        d["mask"] = tf.zeros([0, 0], tf.uint8)
    else:
        d.update(
            boxes=tf.zeros([0, 4]),
            classes=tf.zeros([0], tf.int64),
            difficult=tf.zeros([0], tf.int64),
        )
    return d


def corrupt_record_message(error):
    """The ``Corrupt record in {path}: record {index}: {reason}`` line of an error raised by
    ``build_dataset`` (a ``CorruptInputError``, or a ``tf.errors.InvalidArgumentError`` of
    the pipeline, which wraps it in ``assertion failed: [...]``), else None."""
    text = getattr(error, "message", None) or str(error)
    found = re.search(r"Corrupt record in .*?(?=\]?\s*(?:\n|$))", text)
    if not found:
        return None
    return found.group(0).replace("\\'", "'").replace('\\"', '"')  # tf.debugging.Assert escapes


# -- eager, over a list -------------------------------------------------------------------


@functools.cache
def reason_fn(task, channels, num_classes):
    """``reason(serialized) -> ""`` or the first problem of one record (raises if it does
    not decode), traced once per process and ``(task, channels, num_classes)``: used by
    ``find_invalid`` and by every pipeline's explanation of lost records
    (``reader._explain_fn``) instead of tracing the checks again."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    def reason(serialized):
        return decode_checked(parse_tolerant(serialized, task), task, channels, num_classes)[1]

    return reason


# Lists at most this long are checked one record at a time (no tf.data pipeline to build).
_SMALL = 64


def find_invalid(records, task, *, channels=None, num_classes=None):
    """``[(index, message)]`` of the invalid records among serialized ``records`` (a list of
    bytes), in index order: ``structure_problem`` first, then the in-graph checks (the
    image and mask decoded). ``channels``: as read (default: the first well-formed
    record's); ``num_classes``: the label range (default: labels only ``>= 0`` and
    ``< 2**31``)."""
    schema.check_task(task)
    problems = {}
    for i, record in enumerate(records):
        problem = structure_problem(record, task)
        if problem:
            problems[i] = problem
    rest = [i for i in range(len(records)) if i not in problems]
    if not rest:
        return sorted(problems.items())
    if channels is None:
        first = tf.train.Example.FromString(bytes(records[rest[0]])).features.feature
        stored = first[schema.IMAGE_CHANNELS].int64_list.value
        channels = stored[0] if stored and stored[0] in (1, 3) else 3
    reason = reason_fn(task, int(channels), None if num_classes is None else int(num_classes))
    seen = set()
    if len(rest) > _SMALL:
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(rest, tf.int64), tf.constant([bytes(records[i]) for i in rest]))
        )
        ds = ds.map(graph_fn(lambda i, r: (i, reason(r))), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True).ignore_errors()  # fmt: skip
        for i, message in ds.as_numpy_iterator():
            seen.add(int(i))
            if message:
                problems[int(i)] = message.decode("utf-8", "replace")
    for i in rest:  # one at a time; after the pipeline, those it lost to an error
        if i not in seen:
            try:
                message = reason(tf.constant(bytes(records[i]))).numpy().decode("utf-8", "replace")
            except (tf.errors.OpError, ValueError) as e:
                message = f"{UNDECODABLE}: {tf_error_line(e)}"
            if message:
                problems[i] = message
    return sorted(problems.items())
