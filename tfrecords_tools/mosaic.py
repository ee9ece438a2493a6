"""Fashion-MNIST mosaics -> segmentation or detection TFRecords (splits train, test).

    python -m tfrecords_tools.mosaic --task segmentation --num_train 20000 --num_test 2000 \
        --output_dir out/data/mosaic_segmentation
    python -m tfrecords_tools.mosaic --task detection --canvas_size 96 \
        --output_dir out/data/mosaic_detection

Segmentation masks: 0 = background, class + 1 on object pixels (11 classes). Detection:
tight boxes around each pasted image's nonzero pixels, classes 0..9.
"""

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_enum("task", "segmentation", ["segmentation", "detection"], "What to make.")
flags.DEFINE_string("fmnist_dir", "/usr/share/datasets/fashion-mnist", "Idx .gz folder.")
flags.DEFINE_integer("num_train", 10000, "Canvases in the train split.", lower_bound=0)
flags.DEFINE_integer("num_test", 1000, "Canvases in the test split.", lower_bound=0)
flags.DEFINE_integer("canvas_size", None, "Canvas side (default 64 seg / 96 det).")
flags.DEFINE_integer("min_objects", None, "Fewest objects per canvas (default 1).")
flags.DEFINE_integer("max_objects", None, "Most objects per canvas (default 3 seg / 4 det).")
flags.DEFINE_integer("seed", 0, "Seed (test split uses seed + 1).")
common.define_output_flags(shuffle=False)  # the canvases are drawn at random
common.define_image_format_flag()
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import mosaic

    objects = None
    if FLAGS.min_objects is not None or FLAGS.max_objects is not None:
        default_max = 3 if FLAGS.task == "segmentation" else 4
        objects = (FLAGS.min_objects or 1, FLAGS.max_objects or default_max)
    common.run(
        lambda: mosaic.source(
            FLAGS.task,
            {"train": FLAGS.num_train, "test": FLAGS.num_test},
            fmnist_dir=FLAGS.fmnist_dir,
            canvas_size=FLAGS.canvas_size,
            objects_per_image=objects,
            seed=FLAGS.seed,
            image_format=FLAGS.image_format,
        )
    )


def run():
    """Entry point of `python -m tfrecords_tools.mosaic` and `tfrecords-mosaic`."""
    entry.run(main)


if __name__ == "__main__":
    run()
