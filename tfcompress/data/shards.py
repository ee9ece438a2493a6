"""Sharded TFRecord writing, the manifest JSON, and their all-or-nothing commit.

Shards are named ``{split}-{index:05d}-of-{count:05d}.tfrecord`` (GZIP records by default).
Each is written under a hidden name (``.{name}.tmp-{pid}-{token}``, matching no ``{split}-*``
pattern). A conversion commits all its splits and the manifest together (``commit``): one
journal, ``.manifest.json.commit``, written atomically, lists the renames of the hidden
shards, the stale shards to delete (those of a reconverted split with another shard count)
and the new manifest; it is then applied and removed. ``recover_interrupted(output_dir)``
finishes an applied-in-part journal (roll forward) or, without one, removes the hidden shards
of dead writers: a killed conversion leaves the old dataset or the new one, whole. Examples go
to shards round-robin, which ``build_dataset(training=False)`` reads back in the original
order.
"""

import dataclasses
import glob
import json
import os
import re

import tensorflow as tf

from tfcompress import atomic
from tfcompress.data import integrity
from tfcompress.data.errors import CorruptInputError

MANIFEST_NAME = "manifest.json"
JOURNAL_NAME = ".manifest.json.commit"
_SHARD = re.compile(r"^(?P<split>[^/\\]+)-\d{5}-of-\d{5}\.tfrecord$")


def shard_name(split, index, count):
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def _split_shards(output_dir, split):
    """Names of the shards of ``split`` now in ``output_dir`` (any shard count)."""
    pattern = os.path.join(glob.escape(output_dir), f"{glob.escape(split)}-?????-of-?????.tfrecord")
    return {os.path.basename(p) for p in glob.glob(pattern)}


class ShardWriter:
    """Writes serialized records round-robin to ``num_shards`` shards of one split.

    Use as a context manager. On an exception the hidden files are removed and nothing is
    renamed. On a clean exit the shards are committed (``commit``: renamed into place, stale
    shards of the split removed), or with ``deferred=True`` left hidden for the caller to
    ``commit`` with other splits and the manifest (or ``discard``).
    """

    def __init__(self, output_dir, split, num_shards, compression="GZIP", deferred=False):
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1. Received: num_shards={num_shards}")
        if not split or "/" in split or os.sep in split:
            raise ValueError(f"split must be a plain name like 'train'. Received: {split!r}")
        self.output_dir = output_dir
        self.split = split
        self.paths = [
            os.path.join(output_dir, shard_name(split, i, num_shards)) for i in range(num_shards)
        ]
        self.temp_paths = [
            os.path.join(output_dir, atomic.hidden_name(os.path.basename(p))) for p in self.paths
        ]
        self.counts = [0] * num_shards
        self._compression = compression
        self._deferred = deferred
        self._writers = None
        os.makedirs(output_dir, exist_ok=True)

    def __enter__(self):
        options = tf.io.TFRecordOptions(compression_type=self._compression)
        self._writers = [tf.io.TFRecordWriter(p, options) for p in self.temp_paths]
        return self

    def write(self, record):
        i = sum(self.counts) % len(self.paths)
        self._writers[i].write(record)
        self.counts[i] += 1

    def __exit__(self, exc_type, exc, tb):
        for w in self._writers:
            w.close()
        if exc_type is not None:
            self.discard()
        elif not self._deferred:
            commit(self.output_dir, [self])
        return False

    def discard(self):
        """Removes the hidden shards (a deferred writer not committed)."""
        for p in self.temp_paths:
            if os.path.exists(p):
                os.remove(p)

    @property
    def num_examples(self):
        return sum(self.counts)


def commit(output_dir, writers, manifest=None):
    """Puts the hidden shards of ``writers`` (closed) and ``manifest`` (a dict; None leaves
    ``manifest.json`` as it is) in place together, removing the stale shards of their splits.

    First one journal naming every step is written atomically, then it is applied and
    removed: a kill before the journal exists leaves the old dataset, after it
    ``recover_interrupted`` finishes the new one.
    """
    recover_interrupted(output_dir)
    renames = [
        [os.path.basename(t), os.path.basename(p)]
        for w in writers
        for t, p in zip(w.temp_paths, w.paths, strict=True)
    ]
    new = {final for _, final in renames}
    stale = set().union(*(_split_shards(output_dir, w.split) for w in writers)) - new
    journal = {"renames": renames, "remove": sorted(stale), "manifest": manifest}
    atomic.atomic_write_text(os.path.join(output_dir, JOURNAL_NAME), json.dumps(journal))
    atomic._fault_point("commit:journal-written")
    _apply(output_dir, journal)


def _read_journal(path):
    """The journal at ``path``, checked: it may only rename hidden shards to their shard
    names and delete shards (a crafted journal must not touch other files)."""
    try:
        with open(path) as f:
            journal = json.load(f)
        renames, remove = journal["renames"], journal["remove"]
        manifest = journal["manifest"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"The commit journal {path} is not a valid journal: {e}") from e
    for temp, final in renames:
        parsed = atomic.parse_hidden(temp)
        if not _SHARD.match(final) or not parsed or parsed[:2] != (final, atomic.TEMP):
            raise ValueError(
                f"The commit journal {path} renames {temp!r} to {final!r}: not a hidden shard "
                "to its shard name."
            )
    for name in remove:
        if not _SHARD.match(name):
            raise ValueError(f"The commit journal {path} deletes {name!r}, which is not a shard.")
    if manifest is not None and not isinstance(manifest, dict):
        raise ValueError(f"The commit journal {path} holds a manifest that is not an object.")
    return journal


def _apply(output_dir, journal):
    """Applies a journal; idempotent (a step already done is skipped), so a kill during it,
    or two processes applying it at once, still end in the journal's state."""
    for temp, final in journal["renames"]:
        src, dst = os.path.join(output_dir, temp), os.path.join(output_dir, final)
        try:
            os.replace(src, dst)
        except FileNotFoundError:
            if not os.path.exists(dst):
                raise FileNotFoundError(
                    f"The commit journal {os.path.join(output_dir, JOURNAL_NAME)} renames "
                    f"{temp!r} to {final!r}, but neither file exists in {output_dir}."
                ) from None
        atomic._fault_point("commit:renamed")
    for name in journal["remove"]:
        try:
            os.remove(os.path.join(output_dir, name))
        except FileNotFoundError:
            pass
    atomic._fault_point("commit:stale-removed")
    if journal["manifest"] is not None:
        atomic.atomic_write_text(
            os.path.join(output_dir, MANIFEST_NAME),
            json.dumps(journal["manifest"], indent=2, sort_keys=True),
        )
    atomic._fault_point("commit:manifest-written")
    try:
        os.remove(os.path.join(output_dir, JOURNAL_NAME))
    except FileNotFoundError:
        pass
    atomic._fsync_dir(output_dir)


@dataclasses.dataclass(frozen=True)
class Recovery:
    """What ``recover_interrupted`` did: finished a commit, removed dead writers' files."""

    rolled_forward: bool
    removed: tuple

    def __bool__(self):
        return self.rolled_forward or bool(self.removed)


def _ours(base):
    return base in (MANIFEST_NAME, JOURNAL_NAME) or _SHARD.match(base) is not None


def recover_interrupted(output_dir):
    """Repairs ``output_dir`` after a killed conversion (call before reading or writing it).

    A commit journal present: applies it (roll forward to the new dataset; idempotent).
    Then removes the hidden shards, manifests and journals of dead writers (a live writer's
    are left alone). A folder with nothing to repair, or no folder, is not touched.

    Returns:
      ``Recovery(rolled_forward, removed)``; false when there was nothing to do.

    Raises:
      ValueError: a journal that is not valid (it names the file and what is wrong).
    """
    output_dir = os.fspath(output_dir)
    journal_path = os.path.join(output_dir, JOURNAL_NAME)
    rolled = os.path.exists(journal_path)
    if rolled:
        _apply(output_dir, _read_journal(journal_path))
    removed = atomic.dead_leftovers(output_dir, _ours)
    for path in removed:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            atomic._remove(path)
    return Recovery(rolled, tuple(os.path.basename(p) for p in removed))


def read_manifest(output_dir):
    """The manifest of ``output_dir``, or ``None`` if it has none yet.

    Raises:
      CorruptInputError: a ``manifest.json`` that is not JSON or not a shard manifest (a
        damaged file, another tool's): named, with what is wrong. A conversion would
        otherwise replace it.
    """
    path = os.path.join(output_dir, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    manifest = integrity.load_manifest(path)
    problem = integrity.manifest_problem(manifest)
    if problem is not None:
        raise CorruptInputError(
            f"Unreadable shard manifest {path}: {problem}. It is not a manifest written by "
            "tfrecords_tools: move it away or convert into another folder."
        )
    return manifest


# Top-level fields that say what every split's labels mean: splits merged into one manifest
# must agree on them.
DATASET_FIELDS = ("task", "classes", "num_classes")
# Fields of how a split was written, in its own entry: splits converted by separate runs
# may differ in them (manifests before 2026-12 kept the last run's at the top level).
SPLIT_FIELDS = ("compression", "shuffle_seed")


def check_merge(output_dir, splits, **fields):
    """The manifest of ``output_dir`` (``None`` if none yet), checked that a conversion of
    ``splits`` with top-level ``fields`` can merge into it: the splits it keeps (those not
    reconverted) must have the same ``DATASET_FIELDS``, else their labels would be read
    against the new classes. ``convert`` calls it before converting an example.

    Raises:
      CorruptInputError: an unreadable manifest (``read_manifest``).
      ValueError: the manifest keeps splits of another dataset; names it, the splits, and
        the old and new value of each field that differs.
    """
    manifest = read_manifest(output_dir)
    kept = sorted(set(manifest["splits"]) - set(splits)) if manifest else []
    differ = [k for k in DATASET_FIELDS if kept and k in fields and manifest.get(k) != fields[k]]
    if differ:
        old = ", ".join(f"{k}={manifest.get(k)!r}" for k in differ)
        new = ", ".join(f"{k}={fields[k]!r}" for k in differ)
        raise ValueError(
            f"Cannot add split(s) {sorted(splits)} to {os.path.join(output_dir, MANIFEST_NAME)}: "
            f"it describes split(s) {kept} of another dataset ({old}), this conversion has "
            f"{new}. The labels of {kept} would be read against the new classes: convert into "
            "another folder, or with the same classes."
        )
    return manifest


def merged_manifest(output_dir, split_entries, **fields):
    """The manifest of ``output_dir`` with split entries and top-level fields merged in.

    Splits converted by an earlier run into the same directory are kept, so one manifest can
    describe ``train``, ``val`` and ``test`` converted separately; they must be of the same
    dataset (``check_merge``, whose errors this raises).
    """
    manifest = check_merge(output_dir, split_entries, **fields) or {"splits": {}}
    for key in SPLIT_FIELDS:  # an older manifest's, of its last conversion: to its splits
        if key in manifest:
            old = manifest.pop(key)
            for entry in manifest["splits"].values():
                entry.setdefault(key, old)
    manifest.update(fields)
    manifest["splits"].update(split_entries)
    return manifest


def update_manifest(output_dir, split_entries, **fields):
    """Merges split entries and top-level fields into ``manifest.json`` (atomic rewrite);
    returns the manifest. ``commit`` writes it together with the shards."""
    manifest = merged_manifest(output_dir, split_entries, **fields)
    atomic.atomic_write_text(
        os.path.join(output_dir, MANIFEST_NAME), json.dumps(manifest, indent=2, sort_keys=True)
    )
    return manifest
