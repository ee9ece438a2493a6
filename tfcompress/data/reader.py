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
import functools
import os
import sys
import threading
import typing
from collections.abc import Callable

import tensorflow as tf
from absl import logging

from tfcompress.data import compression as compression_lib
from tfcompress.data import decode, integrity, schema, shards, validate
from tfcompress.data.errors import MAX_REPORTED_SKIPS, CorruptInputError
from tfcompress.data.graph_fn import graph_fn

AUTOTUNE = tf.data.AUTOTUNE
INDEX_BITS = 40  # records per shard below 2**40; shards below 2**23


def list_shards(file_pattern):
    """Sorted files matching a pattern (or a list of patterns); raises naming the pattern.

    A pattern is a ``str`` or a path (``os.PathLike``, such as ``pathlib.Path``); anything
    else raises a ValueError naming ``file_pattern``. A folder holding the commit journal
    of a killed conversion is first brought to the dataset that conversion committed
    (``shards.recover_interrupted``), so a reader never sees half of an old dataset and half
    of a new one.
    """
    patterns = _patterns(file_pattern)
    for folder in {os.path.dirname(p) or "." for p in patterns}:
        if os.path.exists(os.path.join(folder, shards.JOURNAL_NAME)):
            shards.recover_interrupted(folder)
            logging.info("Finished the interrupted conversion in %s", folder)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"No TFRecord file matches file_pattern={file_pattern!r}")
    return files


def _patterns(file_pattern):
    """``file_pattern`` (a pattern, or a list of them) as a list of ``str``."""
    single = isinstance(file_pattern, (str, os.PathLike))  # a str is iterable, a Path not
    try:
        patterns = [os.fspath(p) if isinstance(p, os.PathLike) else p
                    for p in ([file_pattern] if single else file_pattern)]  # fmt: skip
    except TypeError:  # not iterable: an int, None
        patterns = None
    if patterns is not None and all(isinstance(p, str) for p in patterns):
        return patterns
    raise ValueError(
        "file_pattern must be a glob (a str or a path such as pathlib.Path) or a list of "
        f"them. Received: file_pattern={file_pattern!r}"
    )


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


def first_example(
    files, compression="auto", task=None, damaged=None, skip=False, channels=None,
    num_classes=None,
):  # fmt: skip
    """The first record of the first file that has one, as a ``tf.train.Example``; a file
    is scanned (``integrity.scan_shard``) before TensorFlow opens it and a damaged one
    (``damaged``: ``{shard position: [(index, record)]}``, or as scanned) is read from its
    good records. A record that is not a well-formed ``task`` record (any task if None)
    raises ``CorruptInputError`` naming the file and record, or with ``skip`` is passed over;
    with ``skip`` and a ``task``, so is one that fails the other checks
    (``validate.find_invalid`` with ``channels`` and ``num_classes``): a record that is
    skipped does not set the size of the images read.
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
            if problem is None and skip and task:
                found = validate.find_invalid([raw], task, channels=channels,
                                              num_classes=num_classes)  # fmt: skip
                problem = found[0][1] if found else None
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

    def add(self, path, index, reason, log=True):
        with self._lock:
            if (path, index) in self._seen:
                return
            self._seen.add((path, index))
        self.skipped.add(path, index, reason, log)

    def attach(self, drain):
        self.skipped.attach(drain)


class SkipTable:
    """Invalid records met by a pipeline with ``skip_corrupt``, kept in graph ops: ``add``
    puts ``key -> reason`` in a lookup table (so each record is counted once, also across
    epochs) and ``drain`` adds what is new to ``skipped`` (a ``SkippedRecords``, which
    calls it whenever it is read: ``SkippedRecords.attach``).

    No Python runs in tf.data's threads: a ``tf.py_function`` there needs the GIL, which
    the main thread holds while it tears an iterator down, waiting for those threads (a
    process that stopped at a bad record then hung at exit)."""

    def __init__(self, files, skipped):
        self.files = [os.fspath(f) for f in files]
        self.paths = tf.constant(self.files)
        self.skipped = skipped
        self.table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, "")
        self._drained = set()
        self._lock = threading.Lock()
        skipped.attach(self.drain)

    @property
    def sink(self):
        """What ``count_skips`` counts into: ``(paths, table handle)``."""
        return self.paths, self.table.resource_handle

    def drain(self):
        """Adds the records counted since the last call to ``skipped``, in key order."""
        keys, reasons = self.table.export()
        with self._lock:
            found = sorted(zip(keys.numpy().tolist(), reasons.numpy().tolist()))
            new = [(k, r) for k, r in found if k not in self._drained]
            self._drained.update(k for k, _ in new)
        for key, reason in new:
            shard, index = divmod(key, 1 << INDEX_BITS)
            self.skipped.add(self.files[shard], index, reason.decode("utf-8", "replace"), log=False)


def count_skips(paths, table, keys, reasons):
    """The op that counts records ``keys`` (int64 ``[n]``) of the shards ``paths`` for
    ``reasons`` into ``table`` (a ``SkipTable``'s, by its resource handle: an argument, not a
    capture, so one traced function serves every pipeline; see ``traced``); the first
    ``MAX_REPORTED_SKIPS`` are logged (to stderr) as they are met."""
    shards_of, indices = split_key(keys)
    lines = tf.strings.join([
        "WARNING: Skipped corrupt record ", tf.strings.as_string(indices), " of ",
        tf.gather(paths, shards_of), ": ", reasons])  # fmt: skip
    counted = tf.raw_ops.LookupTableFindV2(table_handle=table, keys=keys,
                                           default_value=tf.constant(""))  # fmt: skip
    new = tf.equal(tf.reshape(counted, [-1]), "")
    new &= tf.raw_ops.LookupTableSizeV2(table_handle=table) < MAX_REPORTED_SKIPS

    def log():
        text = tf.strings.reduce_join(tf.boolean_mask(lines, new), separator="\n")
        with tf.control_dependencies([tf.print(text, output_stream=sys.stderr)]):
            return tf.constant(True)

    logged = tf.cond(tf.reduce_any(new), log, lambda: tf.constant(True))
    with tf.control_dependencies([logged]):
        return tf.raw_ops.LookupTableInsertV2(table_handle=table, keys=keys, values=reasons)


def _message(paths, key, reason):
    """``Corrupt record in {path}: record {index}: {reason}`` of a record key (in-graph)."""
    shard, index = split_key(key)
    return tf.strings.join([
        "Corrupt record in ", tf.gather(paths, shard), ": record ",
        tf.strings.as_string(index), ": ", reason])  # fmt: skip


def record_failure(paths, table=None):
    """``fail(key, reason) -> False`` for the branch taken by an invalid record of the shards
    ``paths`` (a string tensor, the file list).

    Strict (no ``table``): raises ``InvalidArgumentError`` whose message holds
    ``Corrupt record in {path}: record {index}: {reason}`` (``validate.corrupt_record_message``
    extracts it). Otherwise the record is counted into ``table`` (a ``SkipTable``'s handle,
    ``count_skips``) and ``False`` returned: filter on it.
    """
    if table is None:

        def fail(key, reason):
            message = _message(paths, key, reason)
            with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
                return tf.constant(False)

        return fail

    def skip(key, reason):
        with tf.control_dependencies([count_skips(paths, table, key[None], reason[None])]):
            return tf.constant(False)

    return skip


def checked_shards(files, compression, task, skip_corrupt, skipped):
    """``integrity.check_shards`` (framing, CRCs, manifest counts and each record's
    ``validate.structure_problem``): strict raises on a damaged shard; returns ``damaged``,
    ``{shard position: [(index, record)]}``, the good records of each damaged shard (none
    unless ``skip_corrupt``)."""
    scans = integrity.check_shards(files, compression, task=task, skip_corrupt=skip_corrupt,
                                   skipped=skipped)  # fmt: skip
    return {i: scan.good_records() for i, scan in enumerate(scans) if not scan.ok}


class Shards(typing.NamedTuple):
    """A split's shards as tensors, to read them in-graph (``_shard_reader``): ``paths``
    ``[n]``; ``ok`` ``[n]``, False for a damaged shard, whose good records are ``good_keys``
    and ``good_records`` ``[m]`` (served from memory, its file never opened)."""

    paths: tf.Tensor
    ok: tf.Tensor
    good_keys: tf.Tensor
    good_records: tf.Tensor

    DTYPES = (tf.string, tf.bool, tf.int64, tf.string)

    @classmethod
    def of(cls, files, damaged):
        """The shards ``files``, ``damaged`` ones (``{shard position: [(index, record)]}``)
        served from their good records."""
        damaged = damaged or {}
        good = [((i << INDEX_BITS) + index, r) for i, rs in sorted(damaged.items())
                for index, r in rs]  # fmt: skip
        values = ([os.fspath(f) for f in files], [i not in damaged for i in range(len(files))],
                  [k for k, _ in good], [r for _, r in good])  # fmt: skip
        return cls(*(tf.constant(v, dtype) for v, dtype in zip(values, cls.DTYPES, strict=True)))


def _shard_reader(compression, shards):
    """``shard(i) -> Dataset`` of the ``(key, serialized)`` records of shard ``i`` of
    ``shards`` (``Shards``): TensorFlow's reader, or for a damaged shard its good records
    from memory, its file never opened."""
    table = None
    if shards.good_keys.shape[0] != 0:  # some (or, traced, any number of) good records
        table = tf.data.Dataset.from_tensor_slices((shards.good_keys, shards.good_records))

    def shard(i):
        start = tf.cast(i, tf.int64) * (1 << INDEX_BITS)
        # A damaged shard's file is never opened: an empty list of files reads nothing.
        path = tf.boolean_mask(shards.paths[i][None], shards.ok[i][None])
        records = tf.data.TFRecordDataset(path, compression_type=compression).enumerate(start)
        if table is not None:
            mine = table.filter(
                graph_fn(lambda k, _: tf.equal(split_key(k)[0], tf.cast(i, tf.int64)))
            )
            records = records.concatenate(mine)
        return records

    return shard


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
    shard = _shard_reader(compression, Shards.of(files, damaged))
    ds = tf.data.Dataset.range(len(files))
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return ds.interleave(graph_fn(lambda i: per_shard(shard(i))), cycle_length=cycle_length,
                         block_length=block_length, num_parallel_calls=AUTOTUNE,
                         deterministic=deterministic)  # fmt: skip


def records_by_key(compression, shards, keys):
    """The ``(key, serialized)`` records of int64 ``keys`` ``[n]`` of ``shards`` (``Shards``),
    as a ``Dataset`` (in-graph: each of their shards read again up to the last of them)."""
    shard = _shard_reader(compression, shards)
    shards_of, _ = split_key(keys)

    def wanted(i):
        last = tf.reduce_max(tf.boolean_mask(keys, tf.equal(shards_of, i)))
        records = shard(i).take_while(graph_fn(lambda k, _: k <= last))
        return records.filter(graph_fn(lambda k, _: tf.reduce_any(tf.equal(keys, k))))

    return tf.data.Dataset.from_tensor_slices(tf.unique(shards_of).y).flat_map(graph_fn(wanted))


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
    not decode; a strict check) is not lost silently: ``explain(keys) -> message``, graph
    ops (no Python: see ``SkipTable``), is run with the keys ``[n]`` of the lost element
    (only then); a non-empty message raises ``InvalidArgumentError`` with it (strict), an
    empty one drops the element (``explain`` counted it). ``finite``: ``ds`` ends (an
    element lost at the end is found by an end marker).
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

    def step(last, element):
        seq, out = element
        stop = tf.where(seq < 0, count.lookup(tf.constant([0], tf.int64))[0], seq)

        # Never inlined: the untaken side of the tf.cond would be walked on every element.
        @tf.function(autograph=False, experimental_attributes={"_noinline": True})
        def lost():
            keys = tf.reshape(ring.lookup(tf.range(last + 1, stop) % _RING), [-1])
            message = explain(tf.boolean_mask(keys, keys >= 0))
            failed = tf.not_equal(message, "")
            with tf.control_dependencies([tf.debugging.Assert(~failed, [message])]):
                return tf.constant(True)

        checked = tf.cond(stop > last + 1, lost, lambda: tf.constant(True))
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
    """How records are validated: ``skip``: invalid records are filtered out (and counted by
    ``fail``), else ``fail`` raises naming the record. ``sink``: the tensors ``fail`` names
    or counts a record with, ``(paths,)`` (the shard paths) or, skipping, ``(paths, table)``
    (a ``SkipTable``'s ``sink``): a traced function takes them as arguments (``traced``)."""

    task: str
    channels: int
    num_classes: int | None
    skip: bool = False
    sink: tuple = dataclasses.field(default=(), compare=False)  # tensors: unhashable
    explain: Callable | None = None  # keys of records lost to an error -> message

    @property
    def config(self):
        """What the checks are besides the ``sink``: ``(task, channels, num_classes, skip)``."""
        return self.task, self.channels, self.num_classes, self.skip

    def with_sink(self, sink):
        """The checks of ``config`` naming or counting records through ``sink``."""
        return RecordCheck(*self.config, sink=tuple(sink))

    def fail(self, key, reason):
        """``record_failure`` for the branch taken by the invalid record ``key``."""
        return record_failure(*self.sink)(key, reason)

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
        invalid record once into it (``SkipTable``)."""
        skips = SkipTable(files, skipped) if skipped is not None else None
        sink = (tf.constant([os.fspath(f) for f in files]),) if skips is None else skips.sink
        check = cls(task, channels, num_classes, skips is not None, sink)
        return dataclasses.replace(
            check, explain=_explainer(Shards.of(files, damaged), compression, check)
        )

    def batch_ok(self, keys, checks):
        """True, or (strict) raises for the first record failing one of ``checks``. The
        failing branch is a never-inlined call: inlined, its string ops would be walked on
        every batch as the untaken side of the ``tf.cond``."""

        @tf.function(autograph=False, experimental_attributes={"_noinline": True})
        def failing():
            return self.first_failure(keys, checks)

        return tf.cond(validate.any_bad(checks), failing, lambda: tf.constant(True))


# What a record lost to a decoding error is counted for (the decoder's own error needs Python).
_UNDECODABLE = f"{validate.UNDECODABLE} (tfrecords_tools.verify shows the decoder error)"


@functools.lru_cache(maxsize=None)
def _explain_fn(task, channels, num_classes, skip, compression):
    """``explain(shards, sink, keys)`` of ``_explainer``, traced once per process and kind of
    pipeline (``RecordCheck.config`` and ``compression``), as tracing it took about half of
    what was left of a ``build_dataset`` once ``traced`` kept its map functions. What
    differs between pipelines of a kind, their ``Shards`` and ``RecordCheck.sink``, are
    arguments: nothing of the pipeline that traced it first is captured."""
    reason = validate.reason_fn(task, channels, num_classes)
    shards_spec = Shards(*(tf.TensorSpec([None], t) for t in Shards.DTYPES))
    sink_spec = (tf.TensorSpec([None], tf.string),)
    if skip:
        sink_spec += (tf.TensorSpec([], tf.resource),)

    def reason_of(key, serialized):
        return key, reason(serialized)

    @tf.function(autograph=False, input_signature=[
        shards_spec, sink_spec, tf.TensorSpec([None], tf.int64)])  # fmt: skip
    def explain(shards, sink, keys):
        n = tf.size(keys)
        checked = records_by_key(compression, shards, keys)
        checked = checked.map(graph_fn(reason_of)).ignore_errors()

        def note(reasons, found):
            key, reason = found
            position = tf.argmax(tf.cast(tf.equal(keys, key), tf.int32), output_type=tf.int32)
            return tf.tensor_scatter_nd_update(reasons, position[None, None], reason[None])

        reasons = checked.reduce(tf.fill([n], _UNDECODABLE), graph_fn(note))
        bad = tf.not_equal(reasons, "")
        # an error the checks do not explain: still named
        after = tf.strings.join([" (or one of the ", tf.strings.as_string(n - 1),
                                 " records after it)"])  # fmt: skip
        unexplained = tf.strings.join(["fails in the input pipeline although it passes "
                                       "validation", tf.where(n > 1, after, "")])  # fmt: skip
        explained = tf.reduce_any(bad)
        bad_keys = tf.cond(explained, lambda: tf.boolean_mask(keys, bad), lambda: keys[:1])
        bad_reasons = tf.cond(
            explained, lambda: tf.boolean_mask(reasons, bad), lambda: unexplained[None]
        )
        if skip:
            with tf.control_dependencies([count_skips(*sink, bad_keys, bad_reasons)]):
                return tf.constant("")
        return _message(sink[0], bad_keys[0], bad_reasons[0])

    return explain


def _explainer(shards, compression, check):
    """``explain(keys) -> message`` for ``reader.map_named``, in graph ops: the records of
    ``shards`` (``Shards``) are read again and validated (``validate.decode_checked``; one
    whose decoding raises is left out by ``ignore_errors``: it does not decode) for their
    reasons; strict: the message of the first, skipping: each counted (``check.sink``,
    ``count_skips``) and ``""``."""
    explain = _explain_fn(*check.config, compression)
    return lambda keys: explain(shards, check.sink, keys)
