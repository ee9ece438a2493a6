"""Conversion driver: a ``Source`` (splits of lazily loaded examples) -> shards + manifest.

Every converter in ``tfrecords_tools`` builds a ``Source`` with a function in
``tfcompress.data.sources`` and hands it to ``convert``. An ``Item`` loads one example only
when written, so a bad file fails (or, with ``skip_corrupt``, is counted) at its turn.
"""

import collections
import dataclasses
import random
from collections.abc import Callable, Sequence

from tfcompress import atomic
from tfcompress.data import schema, shards
from tfcompress.data.errors import MAX_REPORTED_SKIPS, CorruptInputError


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


def _in_write_order(items, split, shuffle_seed):
    """``items`` as written: in source order, or with a ``shuffle_seed`` in a random order
    drawn from the seed and the split name (reproducible; each split its own order)."""
    if shuffle_seed is None:
        return items
    if not isinstance(items, Sequence):
        raise ValueError(
            f"Cannot shuffle split {split!r}: its examples are streamed (their number is not "
            f"known up front). Convert it without shuffle_seed. Received: "
            f"shuffle_seed={shuffle_seed!r}"
        )
    order = list(items)
    random.Random(f"{shuffle_seed}/{split}").shuffle(order)
    return order


def convert(
    source,
    output_dir,
    num_shards,
    *,
    skip_corrupt=False,
    compression="GZIP",
    progress=None,
    shuffle_seed=None,
):
    """Writes every split of ``source`` to ``output_dir`` and updates its manifest.

    All splits and the manifest are committed together (``shards.commit``): a conversion
    interrupted at any point leaves the earlier dataset (once ``shards.recover_interrupted``
    ran, which this does first) or the new one, never a mix.

    Args:
      source: a ``Source``.
      output_dir: created if missing.
      num_shards: shards per split.
      skip_corrupt: count and skip items raising ``CorruptInputError`` instead of raising.
      compression: ``"GZIP"`` or ``""``.
      progress: optional ``callable(split, done, total)`` called after every item
        (``total`` is None when the split's size is unknown).
      shuffle_seed: ``None`` writes each split in source order; an int writes it in a
        random order drawn from the seed (sources listed by class, city or frame would
        otherwise give shards whose neighbouring records are alike, which a reader's
        shuffle buffer mixes only locally). Splits must then be sequences.

    Returns:
      The manifest dict (also written to ``output_dir/manifest.json``).

    Raises:
      CorruptInputError: the first bad item, naming its file (unless ``skip_corrupt``); a
        ``manifest.json`` in ``output_dir`` that is not a shard manifest (before any work).
      ValueError: ``output_dir`` holds other splits of another dataset (task, classes or
        ``num_classes`` differ: ``shards.check_merge``), before any work.
    """
    splits = {  # every split checked before anything is written
        split: _in_write_order(items, split, shuffle_seed) for split, items in source.splits.items()
    }
    fields = dict(
        task=source.task,
        classes=list(source.classes),
        num_classes=len(source.classes),
        label_map=source.label_map,
        file_pattern="{split}-*.tfrecord",
    )
    shards.recover_interrupted(output_dir)
    shards.check_merge(output_dir, splits, **fields)  # refused before any work
    entries, writers = {}, []
    try:
        for split, items in splits.items():
            histogram = collections.Counter()
            skipped = []
            total = len(items) or None  # None: a streamed split of unknown size
            writer = shards.ShardWriter(output_dir, split, num_shards, compression, deferred=True)
            with writer:
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
            writers.append(writer)
            entries[split] = {
                "num_examples": writer.num_examples,
                "compression": compression,  # a split's own: another run may differ
                "shuffle_seed": shuffle_seed,
                "shards": [p.rsplit("/", 1)[-1] for p in writer.paths],
                "shard_counts": writer.counts,
                "class_histogram": {str(k): v for k, v in sorted(histogram.items())},
                "num_skipped": len(skipped),
                "skipped": skipped[:MAX_REPORTED_SKIPS],
            }
            atomic._fault_point("convert:split-written")
    except BaseException:
        for writer in writers:  # written but not committed: the directory stays as it was
            writer.discard()
        raise
    manifest = shards.merged_manifest(output_dir, entries, **fields)
    shards.commit(output_dir, writers, manifest)  # every split and the manifest at once
    return manifest
