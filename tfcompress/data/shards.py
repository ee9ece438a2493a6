"""Atomic sharded TFRecord writing and the manifest JSON.

Shards are named ``{split}-{index:05d}-of-{count:05d}.tfrecord`` (GZIP records by default).
Each is written as ``.{name}.tmp`` and renamed only after every shard of the split closed
cleanly, so an interrupted conversion never leaves a file that looks like a whole shard (the
hidden temporary names match no ``{split}-*`` pattern). Once renamed, shards of the same
split left by an earlier run with another shard count are removed. Examples go to shards
round-robin, which ``build_dataset(training=False)`` reads back in the original order.
"""

import glob
import json
import os

import tensorflow as tf

from tfcompress.atomic import atomic_write_text  # noqa: F401 (importers to move to tfcompress.atomic)

MANIFEST_NAME = "manifest.json"


def shard_name(split, index, count):
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def _temp_path(path):
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.tmp")


class ShardWriter:
    """Writes serialized records round-robin to ``num_shards`` shards of one split.

    Use as a context manager: on a clean exit the shards are renamed into place; on an
    exception the temporary files are removed and nothing is renamed.
    """

    def __init__(self, output_dir, split, num_shards, compression="GZIP"):
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1. Received: num_shards={num_shards}")
        if not split or "/" in split:
            raise ValueError(f"split must be a plain name like 'train'. Received: {split!r}")
        self.paths = [
            os.path.join(output_dir, shard_name(split, i, num_shards)) for i in range(num_shards)
        ]
        self.counts = [0] * num_shards
        self._compression = compression
        self._writers = None
        os.makedirs(output_dir, exist_ok=True)

    def __enter__(self):
        options = tf.io.TFRecordOptions(compression_type=self._compression)
        self._writers = [tf.io.TFRecordWriter(_temp_path(p), options) for p in self.paths]
        return self

    def write(self, record):
        i = sum(self.counts) % len(self.paths)
        self._writers[i].write(record)
        self.counts[i] += 1

    def __exit__(self, exc_type, exc, tb):
        for w in self._writers:
            w.close()
        if exc_type is None:
            for p in self.paths:
                os.replace(_temp_path(p), p)
            self._remove_stale_shards()
        else:
            for p in self.paths:
                if os.path.exists(_temp_path(p)):
                    os.remove(_temp_path(p))
        return False

    def _remove_stale_shards(self):
        head, tail = os.path.split(self.paths[0])
        split = tail[: -len("-00000-of-00000.tfrecord")]
        pattern = os.path.join(glob.escape(head), f"{glob.escape(split)}-?????-of-?????.tfrecord")
        for stale in set(glob.glob(pattern)) - set(self.paths):
            os.remove(stale)

    @property
    def num_examples(self):
        return sum(self.counts)


def read_manifest(output_dir):
    """The manifest of ``output_dir``, or ``None`` if it has none yet."""
    path = os.path.join(output_dir, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def update_manifest(output_dir, split_entries, **fields):
    """Merges split entries and top-level fields into ``manifest.json`` (atomic rewrite).

    Splits converted by an earlier run into the same directory are kept, so one manifest can
    describe ``train``, ``val`` and ``test`` converted separately.
    """
    manifest = read_manifest(output_dir) or {"splits": {}}
    manifest.update(fields)
    manifest["splits"].update(split_entries)
    atomic_write_text(
        os.path.join(output_dir, MANIFEST_NAME), json.dumps(manifest, indent=2, sort_keys=True)
    )
    return manifest
