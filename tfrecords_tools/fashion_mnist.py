"""Fashion-MNIST idx files -> classification TFRecords (splits train, test).

    python -m tfrecords_tools.fashion_mnist --output_dir out/data/fashion_mnist

Images are stored as raw pixels by default (lossless, 28x28 each, decoded for a whole batch
at once by ``build_dataset``); ``--image_format png`` stores PNGs instead. Shards are
uncompressed by default, as ``tf.io.TFRecordWriter`` and TFDS write them: inflating a GZIP
record costs ~3 us of CPU per image, a fifth of what training input costs in all
(docs/data.md); ``--compression GZIP`` stores 2.2x less (27 instead of 60 MB for train).
"""

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_string(
    "fmnist_dir", "/usr/share/datasets/fashion-mnist", "Folder of the idx .gz files."
)
flags.DEFINE_string("splits", "train,test", "Comma-separated splits (train, test).")
common.define_output_flags(compression="NONE", shuffle=False)  # see the docstring
common.define_image_format_flag(default="raw")  # lossless, fixed size, fastest to read
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import fashion_mnist

    common.run(
        lambda: fashion_mnist.source(
            FLAGS.fmnist_dir, common.split_list(FLAGS.splits), FLAGS.image_format
        )
    )


def run():
    """Entry point of `python -m tfrecords_tools.fashion_mnist` and `tfrecords-fashion-mnist`."""
    entry.run(main)


if __name__ == "__main__":
    run()
