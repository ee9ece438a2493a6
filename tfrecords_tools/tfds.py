"""A TensorFlow Datasets dataset already prepared on disk -> TFRecords in our schema.

    python -m tfrecords_tools.tfds --dataset cifar10 --task classification \
        --data_dir ~/tensorflow_datasets --output_dir data/cifar10

Nothing is downloaded. ``validation`` is written as ``val``.
"""

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_string("dataset", None, "TFDS name, e.g. cifar10 or voc/2007.")
flags.DEFINE_enum(
    "task", "classification", ["classification", "segmentation", "detection"], "Schema to write."
)
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: TFDS's own default).")
flags.DEFINE_string("splits", None, "Comma-separated TFDS splits (default: all).")
flags.DEFINE_string("image_key", "image", "Image feature.")
flags.DEFINE_string("label_key", "label", "Class feature (inside objects for detection).")
flags.DEFINE_string("mask_key", "segmentation_mask", "Segmentation mask feature.")
flags.DEFINE_string("objects_key", "objects", "Detection objects feature.")
flags.DEFINE_string("bbox_key", "bbox", "Box feature inside objects.")
flags.DEFINE_integer("num_classes", None, "Segmentation classes (ids 0..n-1, 255 ignore).")
flags.mark_flag_as_required("dataset")
common.define_output_flags(shuffle=False)  # streamed; TFDS shuffles when it prepares
common.define_image_format_flag()
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import tfds_source

    common.run(
        lambda: tfds_source.source(
            FLAGS.dataset,
            FLAGS.task,
            data_dir=FLAGS.data_dir,
            splits=common.split_list(FLAGS.splits),
            image_key=FLAGS.image_key,
            label_key=FLAGS.label_key,
            mask_key=FLAGS.mask_key,
            objects_key=FLAGS.objects_key,
            bbox_key=FLAGS.bbox_key,
            num_classes=FLAGS.num_classes,
            image_format=FLAGS.image_format,
        )
    )


def run():
    """Entry point of `python -m tfrecords_tools.tfds` and `tfrecords-tfds`."""
    entry.run(main)


if __name__ == "__main__":
    run()
