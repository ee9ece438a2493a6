"""PASCAL VOC -> detection TFRecords (20 classes, difficult flags kept).

    python -m tfrecords_tools.voc --voc_dir VOCdevkit/VOC2007 --splits trainval,test \
        --output_dir data/voc2007 --num_shards 16
"""

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_string("voc_dir", None, "VOCdevkit/VOC20xx folder (Annotations, JPEGImages, ...).")
flags.DEFINE_string("splits", None, "ImageSets/Main lists (default: train,val,test present).")
flags.mark_flag_as_required("voc_dir")
common.define_output_flags()
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import voc

    common.run(lambda: voc.source(FLAGS.voc_dir, common.split_list(FLAGS.splits)))


def run():
    """Entry point of `python -m tfrecords_tools.voc` and `tfrecords-voc`."""
    entry.run(main)


if __name__ == "__main__":
    run()
