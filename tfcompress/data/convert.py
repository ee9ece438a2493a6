"""Conversion driver: a ``Source`` (splits of lazily loaded examples) -> shards + manifest.

Every converter in ``tfrecords_tools`` builds a ``Source`` with a function in
``tfcompress.data.sources`` and hands it to ``convert``. An ``Item`` loads one example only
when written, so a bad file fails (or, with ``skip_corrupt``, is counted) at its turn.
"""

import collections
import dataclasses
from collections.abc import Callable, Sequence

from tfcompress.data import schema, shards
from tfcompress.data.errors import CorruptInputError

MAX_REPORTED_SKIPS = 100


@dataclasses.dataclass(frozen=True)
class Record:
    """One serialized example and its class counts (for the manifest's histogram)."""

    serialized: bytes
    class_counts: dict


@dataclasses.dataclass(frozen=True)
class Item:
    """An example not loaded yet: ``load()`` returns a ``Record`` or raises
    ``CorruptInputError`` naming the offending file."""

    source_id: str
    load: Callable[[], Record]


@dataclasses.dataclass(frozen=True)
class Source:
    """What a converter reads: per-split items plus the metadata the manifest records."""

    task: str
    splits: dict  # split name -> sized iterable of Item (len 0 if unknown)
    classes: Sequence[str]
    label_map: dict | None = None  # source label -> class index (255 = ignore), if any

    def __post_init__(self):
        schema.check_task(self.task)


def convert(
    source, output_dir, num_shards, *, skip_corrupt=False, compression="GZIP", progress=None
):
    """Writes every split of ``source`` to ``output_dir`` and updates its manifest.

    Args:
      source: a ``Source``.
      output_dir: created if missing.
      num_shards: shards per split.
      skip_corrupt: count and skip items raising ``CorruptInputError`` instead of raising.
      compression: ``"GZIP"`` or ``""``.
      progress: optional ``callable(split, done, total)`` called after every item
        (``total`` is None when the split's size is unknown).

    Returns:
      The manifest dict (also written to ``output_dir/manifest.json``).

    Raises:
      CorruptInputError: the first bad item, naming its file (unless ``skip_corrupt``).
    """
    entries = {}
    for split, items in source.splits.items():
        histogram = collections.Counter()
        skipped = []
        total = len(items) or None  # None: a streamed split of unknown size
        with shards.ShardWriter(output_dir, split, num_shards, compression) as writer:
            for done, item in enumerate(items, start=1):
                try:
                    record = item.load()
                except CorruptInputError as e:
                    if not skip_corrupt:
                        raise
                    skipped.append(str(e))
                else:
                    writer.write(record.serialized)
                    histogram.update(record.class_counts)
                if progress is not None:
                    progress(split, done, total)
        entries[split] = {
            "num_examples": writer.num_examples,
            "shards": [p.rsplit("/", 1)[-1] for p in writer.paths],
            "shard_counts": writer.counts,
            "class_histogram": {str(k): v for k, v in sorted(histogram.items())},
            "num_skipped": len(skipped),
            "skipped": skipped[:MAX_REPORTED_SKIPS],
        }
    return shards.update_manifest(
        output_dir,
        entries,
        task=source.task,
        classes=list(source.classes),
        num_classes=len(source.classes),
        label_map=source.label_map,
        compression=compression,
        file_pattern="{split}-*.tfrecord",
    )
