"""PASCAL VOC -> detection TFRecords (20 classes, difficult flags kept).

    python -m tfrecords_tools.voc --voc_dir VOCdevkit/VOC2007 --splits train,val,test \
        --output_dir /tmp/voc2007 --num_shards 16
"""

from absl import app, flags

from tfrecords_tools import common

flags.DEFINE_string("voc_dir", None, "VOCdevkit/VOC20xx folder (Annotations, JPEGImages, ...).")
flags.DEFINE_string("splits", None, "ImageSets/Main lists (default: train,val,test present).")
flags.mark_flag_as_required("voc_dir")
common.define_output_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import voc

    common.run(lambda: voc.source(FLAGS.voc_dir, common.split_list(FLAGS.splits)))


def run():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
