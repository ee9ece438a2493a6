"""Cityscapes leftImg8bit/ + gtFine/ labelIds -> segmentation TFRecords (19 train ids,
255 = ignore).

    python -m tfrecords_tools.cityscapes --cityscapes_dir ~/cityscapes --output_dir /tmp/cs \
        --num_shards 32
"""

from absl import app, flags

from tfrecords_tools import common

flags.DEFINE_string("cityscapes_dir", None, "Folder holding leftImg8bit/ and gtFine/.")
flags.DEFINE_string("splits", None, "Comma-separated splits (default: train,val,test present).")
flags.mark_flag_as_required("cityscapes_dir")
common.define_output_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import cityscapes

    common.run(lambda: cityscapes.source(FLAGS.cityscapes_dir, common.split_list(FLAGS.splits)))


def run():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
