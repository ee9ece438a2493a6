"""Counts, class histogram and a few decoded samples (PNG) of a set of shards; every record
is checked first as `verify` checks it, and a problem stops it with one line naming the file
and record (run `verify` to list every problem).

    python -m tfrecords_tools.inspect --file_pattern 'out/data/fashion_mnist/train-*.tfrecord' \
        --samples_dir out/samples/fashion_mnist --num_samples 8
"""

import json
import sys

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_string("file_pattern", None, "Glob of the shards.")
flags.DEFINE_integer(
    "num_samples", 4, "Samples written as PNG to --samples_dir (0: none).", lower_bound=0
)
flags.DEFINE_string("samples_dir", None, "Where sample PNGs go (none written if unset).")
common.define_read_compression_flag()
flags.mark_flag_as_required("file_pattern")
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data import records

    try:
        report = records.inspect_records(
            FLAGS.file_pattern,
            compression=common.READ_COMPRESSIONS[FLAGS.compression],
            num_samples=FLAGS.num_samples,
            samples_dir=FLAGS.samples_dir,
        )
    except (ValueError, OSError) as e:  # a corrupt shard, an unreadable path
        sys.exit(f"error: {e}")
    print(json.dumps(report, indent=2))


def run():
    """Entry point of `python -m tfrecords_tools.inspect` and `tfrecords-inspect`."""
    entry.run(main)


if __name__ == "__main__":
    run()
