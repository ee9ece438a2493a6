"""An image folder + a label folder -> segmentation TFRecords (AdapNet++ / Freiburg Forest).

    python -m tfrecords_tools.segmentation_pairs --image_dir forest/train/rgb \
        --label_dir forest/train/GT_color --label_map forest_colours.json --split train \
        --output_dir data/forest

The optional ``--label_map`` JSON maps label ids (``"3"``) or colours (``"170,170,170"``) to
class indices (255 = ignore). Without it ids are class indices below ``--num_classes``.
"""

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_string("image_dir", None, "Folder of images.")
flags.DEFINE_string("label_dir", None, "Folder of label images (same stems).")
flags.DEFINE_string("split", "train", "Split name: train, val or test.")
flags.DEFINE_string("label_map", None, "Label-map JSON file.")
flags.DEFINE_integer(
    "num_classes",
    None,
    "Number of classes when there is no label map: label ids 0..num_classes-1, 255 = ignore.",
    lower_bound=1,
    upper_bound=255,
)
flags.DEFINE_string("label_suffix", "", "Label stem suffix, e.g. '_mask' for a_mask.png.")
flags.DEFINE_string("classes", None, "Comma-separated class names for the manifest.")
flags.mark_flags_as_required(["image_dir", "label_dir"])
common.define_output_flags()
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import segmentation_pairs as pairs

    def make_source():
        label_map = pairs.load_label_map(FLAGS.label_map) if FLAGS.label_map else None
        return pairs.source(
            FLAGS.image_dir,
            FLAGS.label_dir,
            split=FLAGS.split,
            label_map=label_map,
            num_classes=FLAGS.num_classes,
            label_suffix=FLAGS.label_suffix,
            classes=common.split_list(FLAGS.classes),
        )

    common.run(make_source)


def run():
    """Entry point of `python -m tfrecords_tools.segmentation_pairs` and
    `tfrecords-segmentation-pairs`."""
    entry.run(main)


if __name__ == "__main__":
    run()
