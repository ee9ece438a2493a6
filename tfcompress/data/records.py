"""Reading shards back for checks: ``verify_records`` and ``inspect_records``.

``verify_records`` reads every record of every shard and fully decodes it (image, mask,
boxes), reporting each corrupt one by file and record index. A truncated file is reported at
the first record that cannot be read (nothing after it is readable).
"""

import collections
import dataclasses
import os
import struct
import zlib

import numpy as np
import tensorflow as tf

from tfcompress.data import compression as compression_lib
from tfcompress.data import decode, pipeline, schema
from tfcompress.data.errors import CorruptInputError


@dataclasses.dataclass
class FileReport:
    path: str
    num_records: int = 0  # records read (good or corrupt)
    corrupt: list = dataclasses.field(default_factory=list)  # [(record index, message)]


@dataclasses.dataclass
class VerifyReport:
    task: str
    files: list

    @property
    def num_records(self):
        return sum(f.num_records for f in self.files)

    @property
    def num_corrupt(self):
        return sum(len(f.corrupt) for f in self.files)

    def messages(self):
        return [f"{f.path}: record {i}: {msg}" for f in self.files for i, msg in f.corrupt]


def _decompress(data, compression):
    """Decompressed bytes and, for a GZIP stream that breaks off, a message."""
    if compression != "GZIP":
        return data, None
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data)
    except zlib.error as e:
        return b"", f"corrupt GZIP stream: {e}"
    if not inflater.eof:
        return out, "truncated GZIP stream (no end-of-stream marker)"
    return out, None


def _frame(stream):
    """Splits TFRecord framing (u64 length, u32 crc, data, u32 crc); reports a cut record."""
    records, offset = [], 0
    while offset < len(stream):
        if len(stream) - offset < 12:
            return records, f"truncated record header ({len(stream) - offset} of 12 bytes)"
        (length,) = struct.unpack_from("<Q", stream, offset)
        if offset + 16 + length > len(stream):
            have = len(stream) - offset - 12
            return records, f"truncated record: {max(have, 0)} of {length + 4} data bytes"
        records.append(stream[offset + 12 : offset + 12 + length])
        offset += 16 + length
    return records, None


def _read_raw(path, compression):
    """All readable raw records of a file and, if it breaks off, ``(index, message)``.

    TensorFlow's reader silently stops at a record cut short at the end of a file (e.g. an
    interrupted copy), so the framing is walked here; TensorFlow then checks the CRCs.
    """
    with open(path, "rb") as f:
        stream, gzip_error = _decompress(f.read(), compression)
    records, frame_error = _frame(stream)
    read = 0
    try:
        for _ in tf.data.TFRecordDataset(path, compression_type=compression):
            read += 1
    except tf.errors.OpError as e:
        bad = read
        if bad < len(records):  # a CRC error inside the readable part
            return records[:bad], (bad, f"corrupt record: {e.message.splitlines()[0]}")
    error = frame_error or gzip_error
    return records, (len(records), error) if error else None


def _check_fn(task, channels):
    def check(serialized):
        d = decode.decode(serialized, task, channels)
        shape = tf.shape(d["image"], out_type=tf.int64)
        checks = [
            tf.debugging.assert_equal(
                shape[:2], tf.stack([d["height"], d["width"]]), message="image size != header"
            )
        ]
        if task == schema.SEGMENTATION:
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(d["mask"], out_type=tf.int64), shape[:2], message="mask size != image"
                )
            )
        if task == schema.DETECTION:
            n = tf.shape(d["classes"])[0]
            checks.append(tf.debugging.assert_equal(tf.shape(d["boxes"])[0], n, "boxes != classes"))
        with tf.control_dependencies(checks):
            return tf.constant(True)

    return check


def _decode_errors(records, task, channels):
    """Indices of records that fail to decode, with the error message of each."""
    check = _check_fn(task, channels)
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(records, tf.string)) if records else None
    if ds is None:
        return []
    ok = ds.enumerate().map(
        lambda i, r: (i, check(r)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    good = {int(i) for i, _ in ok.ignore_errors().as_numpy_iterator()}
    errors = []
    for i in sorted(set(range(len(records))) - good):
        try:
            check(tf.constant(records[i]))
            errors.append((i, "failed to decode"))
        except (tf.errors.OpError, ValueError) as e:
            errors.append((i, getattr(e, "message", str(e)).strip().splitlines()[0]))
    return errors


def _task_of(record):
    return schema.task_of(tf.train.Example.FromString(record).features.feature.keys())


def verify_records(file_pattern, task=None, compression="auto", raise_on_error=False):
    """Reads and decodes every record; returns a ``VerifyReport``.

    Args:
      file_pattern: glob (or list) of shards.
      task: expected task; default: inferred from the first readable record.
      compression: ``"GZIP"``, ``""`` or ``"auto"`` (detected file by file).
      raise_on_error: raise ``CorruptInputError`` naming the file and record index of the
        first corrupt record instead of reporting.
    """
    compression_lib.check(compression)
    reports = []
    channels = None
    for path in pipeline.list_shards(file_pattern):
        report = FileReport(path)
        records, broken = _read_raw(path, compression_lib.resolve(path, compression))
        if records and task is None:
            try:
                task = _task_of(records[0])
            except Exception as e:  # noqa: BLE001 - reported with the file and index
                raise CorruptInputError(f"{path}: record 0: {e}") from e
        if records and channels is None:
            channels = pipeline.image_shape_of(tf.train.Example.FromString(records[0]))[2]
        report.corrupt = _decode_errors(records, task, channels) if records else []
        if broken:
            report.corrupt.append(broken)
        report.num_records = len(records) + (1 if broken else 0)
        if raise_on_error and report.corrupt:
            index, message = report.corrupt[0]
            raise CorruptInputError(f"Corrupt record in {path}: record {index}: {message}")
        reports.append(report)
    return VerifyReport(task or "unknown", reports)


def _histogram_fn(task):
    spec = schema.feature_spec(task)
    if task == schema.CLASSIFICATION:
        key = schema.CLASS_LABEL
        return lambda r: tf.reshape(tf.io.parse_single_example(r, {key: spec[key]})[key], [-1])
    if task == schema.DETECTION:
        key = schema.OBJECT_CLASS
        return lambda r: tf.sparse.to_dense(tf.io.parse_single_example(r, {key: spec[key]})[key])

    def mask_pixels(r):
        mask = tf.io.decode_png(tf.io.parse_single_example(r, spec)[schema.MASK_ENCODED], 1)
        return tf.math.bincount(
            tf.cast(tf.reshape(mask, [-1]), tf.int32), minlength=256, dtype=tf.int64
        )

    return mask_pixels


def class_histogram(file_pattern, task, compression="auto"):
    """``{class: count}``: examples (classification), objects (detection) or pixels
    (segmentation, 255 = ignore included)."""
    files = pipeline.list_shards(file_pattern)
    compression = compression_lib.resolve(files, compression)
    ds = tf.data.TFRecordDataset(files, compression_type=compression)
    ds = ds.map(_histogram_fn(task), num_parallel_calls=tf.data.AUTOTUNE)
    counts = collections.Counter()
    if task == schema.SEGMENTATION:
        total = ds.reduce(tf.zeros([256], tf.int64), lambda acc, c: acc + c).numpy()
        counts.update({i: int(c) for i, c in enumerate(total) if c})
    else:
        for values in ds.unbatch().batch(65536).as_numpy_iterator():
            bins = np.bincount(values)
            counts.update({int(k): int(v) for k, v in enumerate(bins) if v})
    return dict(sorted(counts.items()))


def _draw_sample(decoded, task, path_prefix):
    from PIL import Image, ImageDraw

    image = decoded["image"]
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
        f"{path_prefix}_image.png"
    )
    if task == schema.SEGMENTATION:
        mask = decoded["mask"]
        palette = np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8)
        palette[schema.IGNORE_LABEL] = 255
        palette[0] = 0
        Image.fromarray(palette[mask]).save(f"{path_prefix}_mask.png")
    elif task == schema.DETECTION:
        canvas = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB")
        draw = ImageDraw.Draw(canvas)
        h, w = image.shape[:2]
        for (ymin, xmin, ymax, xmax), c in zip(decoded["boxes"], decoded["classes"], strict=True):
            draw.rectangle([xmin * w, ymin * h, xmax * w - 1, ymax * h - 1], outline=(255, 0, 0))
            draw.text((xmin * w + 1, ymin * h), str(c), fill=(255, 0, 0))
        canvas.save(f"{path_prefix}_boxes.png")


def inspect_records(file_pattern, compression="auto", num_samples=4, samples_dir=None):
    """Counts per shard, the class histogram and (optionally) a few decoded samples as PNG.

    Returns ``{"task", "num_records", "files": {path: count}, "class_histogram", "samples"}``.
    """
    files = pipeline.list_shards(file_pattern)
    compression = compression_lib.resolve(files, compression)
    first = pipeline.first_example(files, compression)
    task = schema.task_of(first.features.feature.keys())
    channels = pipeline.image_shape_of(first)[2]
    counts = {}
    for path in files:
        ds = tf.data.TFRecordDataset(path, compression_type=compression)
        counts[path] = int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())
    samples = []
    if samples_dir and num_samples:
        os.makedirs(samples_dir, exist_ok=True)
        ds = tf.data.TFRecordDataset(files, compression_type=compression).take(num_samples)
        for i, raw in enumerate(ds):
            decoded = {k: v.numpy() for k, v in decode.decode(raw, task, channels).items()}
            prefix = os.path.join(samples_dir, f"sample_{i:03d}")
            _draw_sample(decoded, task, prefix)
            samples.append(prefix)
    return {
        "task": task,
        "num_records": sum(counts.values()),
        "files": counts,
        "class_histogram": class_histogram(files, task, compression),
        "samples": samples,
    }
