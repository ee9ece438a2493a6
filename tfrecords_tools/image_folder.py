"""Class-per-folder images -> classification TFRecords.

    python -m tfrecords_tools.image_folder --image_dir photos/ --output_dir data/photos

``image_dir`` is either ``{class}/*.jpg`` (one split, ``--split``) or
``{train,val,test}/{class}/*.jpg`` (one split per folder).
"""

from absl import flags

from tfrecords_tools import common, entry

flags.DEFINE_string("image_dir", None, "Root of the class folders.")
flags.DEFINE_string("split", None, "Split name when image_dir holds class folders directly.")
flags.DEFINE_string("classes", None, "Comma-separated class order (default: sorted folders).")
flags.mark_flag_as_required("image_dir")
common.define_output_flags()
flags.adopt_module_key_flags(common)  # --help lists them
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from tfcompress.data.sources import image_folder

    common.run(
        lambda: image_folder.source(FLAGS.image_dir, FLAGS.split, common.split_list(FLAGS.classes))
    )


def run():
    """Entry point of `python -m tfrecords_tools.image_folder` and `tfrecords-image-folder`."""
    entry.run(main)


if __name__ == "__main__":
    run()
