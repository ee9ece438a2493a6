"""Checks every record of a set of shards and reports each problem (file, record index).

    python -m tfrecords_tools.verify --file_pattern 'data/voc2007/*.tfrecord'

Each shard's framing and CRCs are checked before TensorFlow reads it (a crafted length,
a flipped byte, a cut or padded GZIP stream, a 0-byte file, mixed compressions), its
record count against the manifest.json beside it, then every good record is decoded and
validated as build_dataset does (label range, mask ids, lossless masks, boxes, sizes).
Prints one `corrupt: ...` line per problem and a summary line; exit status 0 if there is
no problem, 1 otherwise.
"""

import sys

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_string("file_pattern", None, "Glob of the shards.")
flags.DEFINE_enum(
    "task",
    None,
    ["classification", "segmentation", "detection"],
    "Expected task (default: inferred from the first record).",
)
flags.DEFINE_integer(
    "num_classes",
    None,
    "Labels, mask ids and box classes must be below it "
    "(default: num_classes of the manifest.json beside the shards).",
    lower_bound=1,
)
common.define_read_compression_flag()
flags.mark_flag_as_required("file_pattern")
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data import records

    try:
        report = records.verify_records(
            FLAGS.file_pattern,
            task=FLAGS.task,
            compression=common.READ_COMPRESSIONS[FLAGS.compression],
            num_classes=FLAGS.num_classes,
        )
    except (ValueError, OSError) as e:  # a corrupt shard, an unreadable path
        sys.exit(f"error: {e}")
    for message in report.messages():
        print(f"corrupt: {message}")
    print(
        f"{report.num_records} records in {len(report.files)} files ({report.task}): "
        f"{report.num_corrupt} corrupt"
    )
    sys.exit(1 if report.num_corrupt else 0)


def run():
    """Entry point of `python -m tfrecords_tools.verify` and `tfrecords-verify`."""
    entry.run(main)


if __name__ == "__main__":
    run()
