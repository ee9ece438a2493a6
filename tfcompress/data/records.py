"""Reading shards back for checks: ``verify_records`` and ``inspect_records``.

Neither lets TensorFlow read a byte the shard scan (``integrity``) has not framed and
CRC-checked. ``verify_records`` reports, per file and record index, every framing, CRC,
GZIP, 0-byte, mixed-compression, mixed-task and manifest-count problem, then decodes and
validates every good record with ``validate.find_invalid`` (the checks ``build_dataset``
applies). ``inspect_records`` runs ``verify_records`` first and reads only shards it
found valid.
"""

import collections
import dataclasses
import os

import numpy as np
import tensorflow as tf

from tfcompress.data import compression as compression_lib
from tfcompress.data import decode, integrity, pipeline, schema, validate
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.graph_fn import graph_fn
from tfcompress.numbers import check_int

_VALIDATE_BATCH_BYTES = 64 << 20  # good records validated together (one traced function)


@dataclasses.dataclass
class FileReport:
    path: str
    num_records: int = 0  # records read (good or corrupt)
    corrupt: list = dataclasses.field(default_factory=list)  # [(record index or None, message)]


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
        """``path: record i: message`` per problem (``path: message`` for a whole file)."""
        return [
            f"{f.path}: {message}" if i is None else f"{f.path}: record {i}: {message}"
            for f in self.files
            for i, message in f.corrupt
        ]


def _first_task(records):
    """The task of the first record that parses as a ``tf.train.Example``, or ``None``."""
    for _, record in records:
        try:
            return schema.task_of(tf.train.Example.FromString(record).features.feature.keys())
        except Exception:  # noqa: BLE001, S112 - not an Example: find_invalid reports it
            continue
    return None


def _channels(records):
    """``image/channels`` of the first record that parses and stores 1 or 3, else 3 (as
    ``build_dataset`` reads a pattern: every record with the first one's channels)."""
    for _, record in records:
        try:
            stored = tf.train.Example.FromString(record).features.feature[schema.IMAGE_CHANNELS]
        except Exception:  # noqa: BLE001, S112 - not an Example: find_invalid reports it
            continue
        if list(stored.int64_list.value) in ([1], [3]):
            return stored.int64_list.value[0]
    return None


def _missing_reason(manifest_path, split, count):
    return (
        f"missing: {manifest_path} lists it ({count} records of split {split!r}) but it does "
        "not exist"
    )


def _name(compression):
    return compression or "uncompressed"


def _manifest_num_classes(path):
    _, manifest = integrity.read_manifest_beside(path)
    return manifest.get("num_classes") if manifest else None


def verify_records(
    file_pattern, task=None, compression="auto", raise_on_error=False, num_classes=None
):
    """Scans, decodes and validates every record; returns a ``VerifyReport``.

    Args:
      file_pattern: glob (or list) of shards.
      task: expected task; default: inferred from the first good record (a file whose
        first well-formed record is of another task is then reported by file, naming the
        file the task was inferred from).
      compression: ``"GZIP"``, ``""`` or ``"auto"`` (detected file by file; a file
        compressed unlike the first is reported: one reader cannot read both).
      raise_on_error: raise ``CorruptInputError`` naming the file and record index of the
        first problem instead of reporting.
      num_classes: labels (and mask ids, detection classes) must be below it; default: the
        ``num_classes`` of the ``manifest.json`` beside each shard.
    """
    compression_lib.check(compression)
    if task is not None:
        schema.check_task(task)
    files = pipeline.list_shards(file_pattern)
    if compression == compression_lib.AUTO:  # 0-byte files (None) go with the others
        found = compression_lib.detect_each(files)
        first = next((c for c in found if c is not None), compression_lib.NONE)
        first_path = files[found.index(first)] if first in found else files[0]
        found = [first if c is None else c for c in found]
    else:
        found, first, first_path = [compression] * len(files), compression, files[0]
    missing = [
        FileReport(path, 0, [(None, _missing_reason(manifest_path, split, count))])
        for path, split, count, manifest_path in integrity.missing_shards(files)
    ]
    reports, pending, pending_bytes, channels = [], [], 0, None
    inferred_from = None  # the file the task was inferred from (task=None)
    for path, file_compression in zip(files, found, strict=True):
        report = FileReport(path)
        if file_compression != first:
            report.corrupt.append((None, (
                f"{_name(file_compression)} while {first_path} is {_name(first)}: one "
                "reader cannot read both (convert them alike)")))  # fmt: skip
        scan = integrity.scan_shard(path, file_compression)
        problems, fatal = integrity.problems_of(scan)
        report.num_records = scan.num_records
        records = scan.good_records() if scan.num_records else []
        file_task = _first_task(records) if task is None or inferred_from else None
        if task is None and file_task is not None:
            task, inferred_from = file_task, path
        elif file_task is not None and file_task != task:
            report.corrupt.append((None, (
                f"{file_task} records while {inferred_from} holds {task} records: a "
                "pattern reads as one task (give each task its own)")))  # fmt: skip
        wrong_task = integrity.manifest_task_problem(path, task) if task else None
        if wrong_task:
            report.corrupt.append((None, wrong_task))
        channels = channels or _channels(records)
        classes = num_classes if num_classes is not None else _manifest_num_classes(path)
        pending.append((report, fatal + problems, records, classes))
        pending_bytes += sum(len(r) for _, r in records)
        if pending_bytes >= _VALIDATE_BATCH_BYTES:
            reports += _validated(pending, task, channels, raise_on_error)
            pending, pending_bytes = [], 0
    reports += _validated(pending, task, channels, raise_on_error)
    if raise_on_error and missing:
        raise CorruptInputError(f"Missing shard {missing[0].path}: {missing[0].corrupt[0][1]}")
    return VerifyReport(task or "unknown", reports + missing)


def _validated(pending, task, channels, raise_on_error):
    """The ``FileReport``s of ``pending`` (``[(report, problems, good records, num_classes)]``)
    with every good record validated: one ``validate.find_invalid`` call per
    ``num_classes`` for all of them (a call costs ~0.8 s before its first record)."""
    invalid = [[] for _ in pending]
    by_classes = {}
    for k, (_, _, records, classes) in enumerate(pending):
        by_classes.setdefault(classes, []).extend((k, i, r) for i, r in records)
    for classes, flat in by_classes.items():
        if task is None or not flat:
            continue
        found = validate.find_invalid([r for _, _, r in flat], task, channels=channels,
                                      num_classes=classes)  # fmt: skip
        for j, message in found:
            k, index, _ = flat[j]
            invalid[k].append(integrity.Problem(index, None, message))
    reports = []
    for (report, problems, _, _), more in zip(pending, invalid, strict=True):
        problems = sorted(problems + more, key=lambda p: -1 if p.index is None else p.index)
        report.corrupt += [(p.index, p.message) for p in problems]
        if raise_on_error and report.corrupt:
            raise CorruptInputError(_error_line(report.path, *report.corrupt[0]))
        reports.append(report)
    return reports


def _error_line(path, index, message):
    """``Corrupt record in {path}: record {index}: {message}`` (``Corrupt file {path}:
    {message}`` for a whole file): what a strict reader raises."""
    if index is None:
        return f"Corrupt file {path}: {message}"
    return f"Corrupt record in {path}: record {index}: {message}"


def _mask_of(record):
    """The decoded segmentation mask of one serialized record (raises if it does not
    decode)."""
    spec = schema.feature_spec(schema.SEGMENTATION)
    return tf.io.decode_png(tf.io.parse_single_example(record, spec)[schema.MASK_ENCODED], 1)


def _histogram_fn(task):
    spec = schema.feature_spec(task)
    if task == schema.CLASSIFICATION:
        key = schema.CLASS_LABEL
        return lambda r: tf.reshape(tf.io.parse_single_example(r, {key: spec[key]})[key], [-1])
    if task == schema.DETECTION:
        key = schema.OBJECT_CLASS
        return lambda r: tf.sparse.to_dense(tf.io.parse_single_example(r, {key: spec[key]})[key])

    def mask_pixels(r):
        mask = _mask_of(r)
        return tf.math.bincount(
            tf.cast(tf.reshape(mask, [-1]), tf.int32), minlength=256, dtype=tf.int64
        )

    return mask_pixels


def _first_undecodable_mask(files, compression):
    """The error line of the first segmentation record of ``files`` whose mask does not
    decode (the failing ``reduce`` of ``_count_classes`` names no file), or ``None``."""
    for path in files:
        for index, record in enumerate(tf.data.TFRecordDataset(path, compression)):
            try:
                _mask_of(record)
            except tf.errors.InvalidArgumentError:
                return _error_line(path, index, f"{schema.MASK_ENCODED} does not decode "
                                   "(run verify to list every problem)")  # fmt: skip
    return None


def class_histogram(file_pattern, task, compression="auto"):
    """``{class: count}``: examples (classification), objects (detection) or pixels
    (segmentation, 255 = ignore included), of the values as stored (a label outside the
    classes is counted under its value: ``verify_records`` reports it).

    Every shard is scanned first with ``task`` (``integrity.check_shards``, strict): a
    damaged shard or a record without the ``task`` features it reads (one of another
    task) raises ``CorruptInputError`` naming the file and record, as does a segmentation
    mask that does not decode.
    """
    schema.check_task(task)
    files = pipeline.list_shards(file_pattern)
    compression = compression_lib.resolve(files, compression)
    integrity.check_shards(files, compression, task=task)  # TF never reads unchecked bytes
    return _count_classes(files, task, compression)


def _count_classes(files, task, compression):
    """``class_histogram`` of checked ``files``: counts take memory per distinct value,
    never per value (a label of 2**40 is one key, not an array of 2**40 bins)."""
    ds = tf.data.TFRecordDataset(files, compression_type=compression)
    ds = ds.map(graph_fn(_histogram_fn(task)), num_parallel_calls=tf.data.AUTOTUNE)
    counts = collections.Counter()
    if task == schema.SEGMENTATION:
        try:
            total = ds.reduce(tf.zeros([256], tf.int64), lambda acc, c: acc + c).numpy()
        except tf.errors.InvalidArgumentError:  # a mask that does not decode: which one
            problem = _first_undecodable_mask(files, compression)
            if problem is None:
                raise
            raise CorruptInputError(problem) from None
        counts.update({i: int(c) for i, c in enumerate(total) if c})
    else:
        for values in ds.unbatch().batch(65536).as_numpy_iterator():
            found, times = np.unique(values, return_counts=True)
            counts.update(dict(zip(found.tolist(), times.tolist(), strict=True)))
    return dict(sorted(counts.items()))


def _plural(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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
    """Counts per shard, the class histogram and (optionally) a few decoded samples as PNG:
    the first ``num_samples`` (an integer >= 0) records, written to ``samples_dir``.

    Every record is checked first by ``verify_records`` (the task inferred, ``num_classes``
    the manifest's): if it finds any problem, raises ``CorruptInputError`` with the first
    one (file, record index, what is wrong) and how many there are, before TensorFlow
    reads a record (``verify_records`` lists them all).

    Returns ``{"task", "num_records", "files": {path: count}, "class_histogram", "samples"}``.
    """
    check_int("num_samples", num_samples, minimum=0)  # take(-1) would write every record
    files = pipeline.list_shards(file_pattern)
    checked = verify_records(files, compression=compression)
    if checked.num_corrupt:
        bad = [f for f in checked.files if f.corrupt]
        where = f" in {len(bad)} of {len(checked.files)} files" if len(checked.files) > 1 else ""
        raise CorruptInputError(
            f"{_error_line(bad[0].path, *bad[0].corrupt[0])}; "
            f"{_plural(checked.num_corrupt, 'problem')}{where}: inspect reads only valid "
            "shards, run verify to list every problem"
        )
    compression = compression_lib.resolve(files, compression)
    counts = {f.path: f.num_records for f in checked.files}
    first = pipeline.first_example(files, compression)
    task = checked.task
    channels = pipeline.image_shape_of(first)[2]
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
        "class_histogram": _count_classes(files, task, compression),
        "samples": samples,
    }
