"""Flags and plumbing shared by the converters: output flags, a stderr progress bar, and
``run`` (build a Source, convert it, print the summary, exit non-zero with the error)."""

import json
import sys
import time

from absl import flags

COMPRESSIONS = {"GZIP": "GZIP", "NONE": ""}
READ_COMPRESSIONS = {"AUTO": "auto", **COMPRESSIONS}


def define_output_flags(compression="GZIP", shuffle=True):
    """``--output_dir``, ``--num_shards``, ``--skip_corrupt``, ``--compression`` (default
    ``compression``: ``"GZIP"`` or ``"NONE"``), ``--shuffle`` (default ``shuffle``) and
    ``--shuffle_seed``."""
    flags.DEFINE_string("output_dir", None, "Folder for the shards and manifest.json.")
    flags.DEFINE_integer("num_shards", 4, "Shards per split.", lower_bound=1)
    flags.DEFINE_bool(
        "skip_corrupt", False, "Skip (and count) bad examples instead of stopping at the first."
    )
    flags.DEFINE_enum(
        "compression",
        compression,
        list(COMPRESSIONS),
        "TFRecord compression: GZIP (smaller shards) or NONE (less CPU per record to read).",
    )
    flags.DEFINE_bool(
        "shuffle",
        shuffle,
        "Write each split's examples in a random order (from --shuffle_seed) rather than in "
        "the source's order (by class folder, city, file name): the reader's shuffle buffer "
        "only mixes neighbouring records.",
    )
    flags.DEFINE_integer("shuffle_seed", 0, "Seed of the write order with --shuffle.")
    flags.mark_flag_as_required("output_dir")


def define_read_compression_flag():
    """``--compression`` for tools that read shards (``verify``, ``inspect``)."""
    flags.DEFINE_enum(
        "compression",
        "AUTO",
        list(READ_COMPRESSIONS),
        "TFRecord compression of the shards; AUTO detects it file by file.",
    )


def define_image_format_flag(default="png"):
    """``--image_format`` for converters that encode arrays (png, or raw for small images)."""
    flags.DEFINE_enum(
        "image_format",
        default,
        ["png", "raw"],
        "How images are stored: png, or raw pixels (small images: faster to decode; with "
        "--compression GZIP as small on disk as PNG).",
    )


def split_list(value):
    """``"train,val"`` -> ``["train", "val"]``; empty/None -> None."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


class ProgressBar:
    """``train [##########----------]  512/1024  3,210/s`` on stderr, redrawn at most 5x/s."""

    def __init__(self, stream=sys.stderr, width=30, interval=0.2):
        self._stream, self._width, self._interval = stream, width, interval
        self._split, self._start, self._last = None, 0.0, 0.0

    def __call__(self, split, done, total):
        now = time.monotonic()
        if split != self._split:
            self._split, self._start, self._last = split, now, 0.0
        finished = total is not None and done >= total
        if now - self._last < self._interval and not finished:
            return
        self._last = now
        elapsed = now - self._start
        rate = f" {done / elapsed:,.0f}/s" if elapsed > 0.5 else ""
        if total:
            filled = int(self._width * done / total)
            bar = "#" * filled + "-" * (self._width - filled)
            text = f"\r{split} [{bar}] {done}/{total}{rate}"
        else:
            text = f"\r{split} {done}{rate}"
        self._stream.write(text)
        if finished:
            self._stream.write("\n")
        self._stream.flush()


def run(make_source, stream=sys.stderr):
    """Converts ``make_source()`` with the output flags; prints the manifest summary.

    A conversion of ``--output_dir`` killed earlier is first finished or rolled back
    (``shards.recover_interrupted``); an error (a bad example, an unwritable folder) ends the
    process with one ``error:`` line."""
    from tfcompress.data import convert, shards
    from tfcompress.training import paths

    FLAGS = flags.FLAGS
    try:
        paths.output_directory("output_dir", FLAGS.output_dir)  # as the scripts check it
        if shards.recover_interrupted(FLAGS.output_dir).rolled_forward:
            stream.write(f"finished the interrupted conversion in {FLAGS.output_dir}\n")
        source = make_source()
        manifest = convert.convert(
            source,
            FLAGS.output_dir,
            FLAGS.num_shards,
            skip_corrupt=FLAGS.skip_corrupt,
            compression=COMPRESSIONS[FLAGS.compression],
            progress=ProgressBar(stream),
            shuffle_seed=FLAGS.shuffle_seed if FLAGS.shuffle else None,
        )
    except (ValueError, OSError) as e:  # CorruptInputError is a ValueError
        sys.exit(f"error: {e}")
    summary = {
        split: {"num_examples": e["num_examples"], "num_skipped": e["num_skipped"]}
        for split, e in manifest["splits"].items()
    }
    stream.write(f"wrote {FLAGS.output_dir}: {json.dumps(summary)}\n")
    for split, entry in manifest["splits"].items():
        for message in entry["skipped"]:
            stream.write(f"skipped ({split}): {message}\n")
    return manifest
