"""Cityscapes leftImg8bit/ + gtFine/ labelIds -> segmentation TFRecords (19 train ids,
255 = ignore).

    python -m tfrecords_tools.cityscapes --cityscapes_dir ~/cityscapes \
        --output_dir data/cityscapes --num_shards 32
"""

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_string("cityscapes_dir", None, "Folder holding leftImg8bit/ and gtFine/.")
flags.DEFINE_string("splits", None, "Comma-separated splits (default: train,val,test present).")
flags.mark_flag_as_required("cityscapes_dir")
common.define_output_flags()
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import cityscapes

    common.run(lambda: cityscapes.source(FLAGS.cityscapes_dir, common.split_list(FLAGS.splits)))


def run():
    """Entry point of `python -m tfrecords_tools.cityscapes` and `tfrecords-cityscapes`."""
    entry.run(main)


if __name__ == "__main__":
    run()
