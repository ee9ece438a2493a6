"""Reading a split's shards: checked files, records keyed by shard and index, named errors.

``RecordCheck`` is how ``build_dataset`` applies ``validate`` to keyed records: a failing
record raises naming its file and index, or is counted into a ``SkippedRecords``.

Every record read for ``build_dataset`` carries a ``key``: its shard's position in the file
list times ``2**INDEX_BITS`` plus its index within the shard (``Dataset.enumerate(start=)``,
free per record). A failing check turns the key into the file path and record index of its
message (``record_failure``), strict or counted into a ``SkippedRecords``.

``integrity.check_shards`` scans every shard before TensorFlow opens it: a damaged shard
raises, or with ``skip_corrupt`` is served from its good records (with their true indices),
never by TensorFlow's reader.
"""

import dataclasses
import os
import threading
from collections.abc import Callable

import tensorflow as tf
from absl import logging

from tfcompress.data import compression as compression_lib
from tfcompress.data import decode, integrity, schema, shards, validate
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.graph_fn import graph_fn

AUTOTUNE = tf.data.AUTOTUNE
INDEX_BITS = 40  # records per shard below 2**40; shards below 2**23


def list_shards(file_pattern):
    """Sorted files matching a pattern (or a list of patterns); raises naming the pattern.

    A folder holding the commit journal of a killed conversion is first brought to the
    dataset that conversion committed (``shards.recover_interrupted``), so a reader never
    sees half of an old dataset and half of a new one.
    """
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    for folder in {os.path.dirname(os.fspath(p)) or "." for p in patterns}:
        if os.path.exists(os.path.join(folder, shards.JOURNAL_NAME)):
            shards.recover_interrupted(folder)
            logging.info("Finished the interrupted conversion in %s", folder)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"No TFRecord file matches file_pattern={file_pattern!r}")
    return files


def _records_of(path, compression, good=None):
    """``(index, serialized)`` of one shard, from ``good`` (a damaged shard's good records)
    or, once ``integrity`` passed it, TensorFlow's reader."""
    if good is not None:
        yield from good
        return
    scan = integrity.scan_shard(path, compression)
    if not scan.ok:
        yield from scan.good_records()
        return
    for index, raw in enumerate(tf.data.TFRecordDataset(path, compression_type=compression)):
        yield index, raw.numpy()


def first_example(files, compression="auto", task=None, damaged=None, skip=False):
    """The first record of the first file that has one, as a ``tf.train.Example``; a file
    is scanned (``integrity.scan_shard``) before TensorFlow opens it and a damaged one
    (``damaged``: ``{shard position: [(index, record)]}``, or as scanned) is read from its
    good records. A record that is not a well-formed ``task`` record (any task if None)
    raises ``CorruptInputError`` naming the file and record, or with ``skip`` is passed over.
    """
    compression = compression_lib.resolve(files, compression)
    damaged = damaged or {}
    for i, path in enumerate(files):
        for index, raw in _records_of(path, compression, damaged.get(i)):
            problem = validate.structure_problem(raw, task) if task else None
            if problem is None and task is None:
                try:
                    schema.task_of(tf.train.Example.FromString(raw).features.feature.keys())
                except Exception as e:  # noqa: BLE001 - not an Example, or not of the schema
                    problem = str(e)
            if problem is None:
                return tf.train.Example.FromString(raw)
            if not skip:
                message = f"Corrupt record in {path}: record {index}: {problem}"
                raise CorruptInputError(message)
    if len(files) == 1:
        raise ValueError(f"{files[0]} holds no record")
    raise ValueError(f"None of {len(files)} files ({files[0]}, ...) holds a record")


def image_shape_of(example, path=None):
    """``(height, width, channels)`` of a record; raises naming a missing feature."""
    feature = example.features.feature
    shape = []
    for key in (schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH, schema.IMAGE_CHANNELS):
        values = feature[key].int64_list.value if key in feature else []
        if len(values) != 1:
            where = f" of {path}" if path else ""
            raise CorruptInputError(
                f"The first record{where} has no single int64 {key} (found "
                f"{list(values)}): cannot infer the image size"
            )
        shape.append(int(values[0]))
    return tuple(shape)


def image_format_of(example):
    """``image/format`` of a record (``b"raw"``, ``b"png"``, ``b"jpeg"``; ``b"png"`` when
    absent, the schema's default)."""
    feature = example.features.feature
    values = feature[schema.IMAGE_FORMAT].bytes_list.value if schema.IMAGE_FORMAT in feature else []
    return values[0] if values else b"png"


def manifest_num_classes(files):
    """``num_classes`` of the shards' ``manifest.json`` (all in one folder), else None."""
    folders = {os.path.dirname(os.path.abspath(f)) for f in files}
    if len(folders) != 1:
        return None
    _, manifest = integrity.read_manifest_beside(files[0])
    return None if manifest is None else manifest.get("num_classes")


def split_key(key):
    """``(shard, index)`` of a record key (int64 tensors)."""
    return tf.math.floordiv(key, 1 << INDEX_BITS), tf.math.floormod(key, 1 << INDEX_BITS)


class CountOnce:
    """A ``SkippedRecords`` front that adds each ``(path, index)`` once: a training stream
    meets an invalid record every epoch, the count is of records."""

    def __init__(self, skipped):
        self.skipped = skipped
        self._seen = set()
        self._lock = threading.Lock()

    def add(self, path, index, reason):
        with self._lock:
            if (path, index) in self._seen:
                return
            self._seen.add((path, index))
        self.skipped.add(path, index, reason)


def record_failure(files, skipped=None):
    """``fail(key, reason) -> False`` for the branch taken by an invalid record.

    Strict (``skipped`` None): raises ``InvalidArgumentError`` whose message holds
    ``Corrupt record in {path}: record {index}: {reason}`` (``validate.corrupt_record_message``
    extracts it). Otherwise the record is added to ``skipped`` (from a ``tf.py_function``,
    run only for invalid records) and ``False`` returned: filter on it.
    """
    paths = tf.constant([os.fspath(f) for f in files])

    if skipped is None:

        def fail(key, reason):
            shard, index = split_key(key)
            message = tf.strings.join([
                "Corrupt record in ", tf.gather(paths, shard), ": record ",
                tf.strings.as_string(index), ": ", reason])  # fmt: skip
            with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
                return tf.constant(False)

        return fail

    def report(shard, index, reason):
        skipped.add(files[int(shard)], int(index), reason.numpy().decode("utf-8", "replace"))
        return False

    def skip(key, reason):
        shard, index = split_key(key)
        return tf.ensure_shape(tf.py_function(report, [shard, index, reason], tf.bool), [])

    return skip


def checked_shards(files, compression, task, skip_corrupt, skipped):
    """``integrity.check_shards`` (framing, CRCs, manifest counts and each record's
    ``validate.structure_problem``): strict raises on a damaged shard; returns ``damaged``,
    ``{shard position: [(index, record)]}``, the good records of each damaged shard (none
    unless ``skip_corrupt``)."""
    scans = integrity.check_shards(files, compression, task=task, skip_corrupt=skip_corrupt,
                                   skipped=skipped)  # fmt: skip
    return {i: scan.good_records() for i, scan in enumerate(scans) if not scan.ok}


def keyed_records(
    files,
    compression,
    cycle_length,
    block_length,
    deterministic,
    shuffle_files=False,
    seed=None,
    per_shard=None,
    damaged=None,
):
    """``(key, serialized)`` of the records of ``files``: ``cycle_length`` shards read in
    parallel, ``block_length`` elements from each in turn; with ``shuffle_files``, the file
    order is shuffled (by ``seed``) every epoch. ``per_shard(records)``: a transformation of
    each shard's keyed records, run by its reader (elements are then what it yields).
    ``damaged``: ``{shard position: [(index, record)]}``, served from memory instead of the
    file."""
    per_shard = per_shard or (lambda records: records)
    damaged = damaged or {}
    paths = tf.constant([os.fspath(f) for f in files])
    ok = tf.constant([i not in damaged for i in range(len(files))])
    good = [((i << INDEX_BITS) + index, r) for i, rs in sorted(damaged.items()) for index, r in rs]
    table = None
    if good:
        table = tf.data.Dataset.from_tensor_slices(
            (tf.constant([k for k, _ in good], tf.int64), tf.constant([r for _, r in good]))
        )

    def shard(i):
        start = tf.cast(i, tf.int64) * (1 << INDEX_BITS)
        # A damaged shard's file is never opened: an empty list of files reads nothing.
        path = tf.boolean_mask(paths[i][None], ok[i][None])
        records = tf.data.TFRecordDataset(path, compression_type=compression).enumerate(start)
        if table is not None:
            mine = table.filter(
                graph_fn(lambda k, _: tf.equal(split_key(k)[0], tf.cast(i, tf.int64)))
            )
            records = records.concatenate(mine)
        return per_shard(records)

    ds = tf.data.Dataset.range(len(files))
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return ds.interleave(graph_fn(shard), cycle_length=cycle_length, block_length=block_length,
                         num_parallel_calls=AUTOTUNE, deterministic=deterministic)  # fmt: skip


def records_by_key(files, compression, damaged, keys):
    """``{key: serialized}`` of record ``keys`` (read again in Python, one pass per shard)."""
    wanted = {}
    for key in keys:
        shard, index = divmod(int(key), 1 << INDEX_BITS)
        wanted.setdefault(shard, {})[index] = key
    found = {}
    for shard, indices in wanted.items():
        for index, raw in _records_of(files[shard], compression, (damaged or {}).get(shard)):
            if index in indices:
                found[indices[index]] = raw
            if len(found) == len(keys) or index > max(indices):
                break
    return found


# Elements remembered by ``map_named``: more than a parallel map holds in flight.
_RING = 1 << 14


def _placeholder(spec):
    """Zeros (or empty strings) of ``spec``'s dtype, unknown dimensions 0."""
    shape = [d if d is not None else 0 for d in spec.shape]
    if spec.dtype == tf.string:
        return tf.fill(shape, "")
    return tf.zeros(shape, spec.dtype)


def map_named(ds, fn, explain, width=1, finite=True):
    """``ds.map(fn)`` in parallel, in order, over keyed elements ``(key, ...)`` (or batches
    ``(keys [width], ...)``), where an element on which ``fn`` raises (an image that does
    not decode; a strict check) is not lost silently: ``explain(keys) -> message`` is called
    (a ``tf.py_function``, only then) with the keys of the lost element; a non-empty
    message raises ``InvalidArgumentError`` with it (strict), an empty one drops the
    element (``explain`` counted it). ``finite``: ``ds`` ends (an element lost at the
    end is found by an end marker).
    """
    # Lookup tables, not variables: a tf.distribute scope would mirror a variable.
    ring = tf.lookup.experimental.MutableHashTable(
        tf.int64, tf.int64, default_value=tf.fill([width], tf.constant(-1, tf.int64))
    )
    count = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, default_value=0)

    def remember(seq, element):
        keys = tf.reshape(element[0], [-1])
        keys = tf.pad(keys, [[0, width - tf.size(keys)]], constant_values=-1)
        stored = [ring.insert(seq[None] % _RING, keys[None]), count.insert([0], seq[None] + 1)]
        with tf.control_dependencies(stored):
            return tf.identity(seq), element

    ds = ds.enumerate().map(graph_fn(remember))
    ds = ds.map(graph_fn(lambda seq, element: (seq, fn(*element))), num_parallel_calls=AUTOTUNE,
                deterministic=True).ignore_errors()  # fmt: skip
    if finite:
        spec = ds.element_spec[1]
        end = tf.nest.map_structure(_placeholder, spec)
        ds = ds.concatenate(tf.data.Dataset.from_tensors((tf.constant(-1, tf.int64), end)))

    def lost(first, stop):
        keys = tf.reshape(ring.lookup(tf.range(first, stop) % _RING), [-1])
        message = tf.py_function(
            lambda k: explain([int(x) for x in k.numpy() if x >= 0]), [keys], tf.string
        )
        message = tf.ensure_shape(message, [])
        failed = tf.not_equal(message, "")
        with tf.control_dependencies([tf.debugging.Assert(~failed, [message])]):
            return tf.constant(True)

    def step(last, element):
        seq, out = element
        stop = tf.where(seq < 0, count.lookup(tf.constant([0], tf.int64))[0], seq)
        checked = tf.cond(stop > last + 1, lambda: lost(last + 1, stop), lambda: tf.constant(True))
        with tf.control_dependencies([checked]):
            return tf.where(seq < 0, last, seq), (seq, out)

    def not_end(seq, out):
        return seq >= 0

    def output(seq, out):
        return out

    ds = ds.scan(tf.constant(-1, tf.int64), graph_fn(step))
    return ds.filter(graph_fn(not_end)).map(graph_fn(output))


@dataclasses.dataclass(frozen=True)
class RecordCheck:
    """How records are validated: ``fail(key, reason)`` from ``reader.record_failure``;
    ``skip``: invalid records are filtered out (and counted by ``fail``)."""

    task: str
    channels: int
    num_classes: int | None
    fail: Callable
    skip: bool = False
    explain: Callable | None = None  # keys of records lost to an error -> message

    def map(self, ds, fn, width=1, finite=True):
        """``ds.map(fn)`` where an element lost to an error inside ``fn`` (an image that
        does not decode) is named or counted (``reader.map_named``)."""
        return map_named(ds, fn, self.explain, width, finite)

    def decode(self, key, serialized):
        """``(decoded, ok)`` of one keyed record: strict raises on an invalid one (so
        ``ok`` is True); skipping reports it and returns ``ok`` False."""
        features = validate.parse_tolerant(serialized, self.task)
        if self.skip:  # an invalid header is not decoded: it is reported and filtered
            decoded, reason = validate.decode_checked(
                features, self.task, self.channels, self.num_classes
            )
            ok = tf.cond(tf.equal(reason, ""), lambda: tf.constant(True),
                         lambda: self.fail(key, reason))  # fmt: skip
            return decoded, ok
        # Strict: no tf.cond around the decode (as a branch it costs ~2x the CPU of a
        # 64x64 segmentation record); each check raises before what follows it runs.
        header = validate.header_checks(features, self.task, self.num_classes)
        with tf.control_dependencies([self.batch_ok(key, header)]):
            features = tf.nest.map_structure(tf.identity, features)
        decoded = decode.decode_features(features, self.task, self.channels)
        content = validate.content_checks(features, decoded, self.task, self.num_classes)
        with tf.control_dependencies([self.batch_ok(key, content)]):
            decoded = tf.nest.map_structure(tf.identity, decoded)
        return decoded, tf.constant(True)

    def first_failure(self, keys, checks):
        """``fail`` for the first record of a batch failing one of ``checks``."""
        position, reason = validate.first_reason(checks)
        return self.fail(tf.reshape(keys, [-1])[position], reason)

    @classmethod
    def make(cls, files, compression, damaged, task, channels, num_classes, skipped=None):
        """The checks of ``build_dataset``: strict without ``skipped``, else counting each
        invalid record once into it (``CountOnce``)."""
        counter = CountOnce(skipped) if skipped is not None else None
        check = cls(task, channels, num_classes, record_failure(files, counter),
                    counter is not None)  # fmt: skip
        return dataclasses.replace(
            check, explain=_explainer(files, compression, damaged, check, counter)
        )

    def batch_ok(self, keys, checks):
        """True, or (strict) raises for the first record failing one of ``checks``. The
        failing branch is a never-inlined call: inlined, its string ops would be walked on
        every batch as the untaken side of the ``tf.cond``."""

        @tf.function(autograph=False, experimental_attributes={"_noinline": True})
        def failing():
            return self.first_failure(keys, checks)

        return tf.cond(validate.any_bad(checks), failing, lambda: tf.constant(True))


def _explainer(files, compression, damaged, check, skipped):
    """``explain(keys) -> message`` for ``reader.map_named``: each record is read again and
    validated (``validate.find_invalid``) for its reason; strict: the message of the first,
    skipping: each counted into ``skipped`` and ``""``."""

    def explain(keys):
        raws = records_by_key(files, compression, damaged, keys)
        keys = [k for k in keys if k in raws]
        found = validate.find_invalid(
            [raws[k] for k in keys],
            check.task,
            channels=check.channels,
            num_classes=check.num_classes,
        )
        problems = []
        for position, reason in found:
            shard, index = divmod(keys[position], 1 << INDEX_BITS)
            problems.append((files[shard], index, reason))
        if not problems and keys:  # an error the checks do not explain: still named
            shard, index = divmod(keys[0], 1 << INDEX_BITS)
            reason = "fails in the input pipeline although it passes validation"
            problems.append(
                (
                    files[shard],
                    index,
                    reason
                    if len(keys) == 1
                    else f"{reason} (or one of the {len(keys) - 1} records after it)",
                )
            )
        if skipped is not None:
            for path, index, reason in problems:
                skipped.add(path, index, reason)
            return ""
        path, index, reason = problems[0]
        return f"Corrupt record in {path}: record {index}: {reason}"

    return explain
