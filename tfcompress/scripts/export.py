r"""Export a run (or a .keras file): SavedModel, TFLite, .keras and the compression report.

    python -m tfcompress.scripts.export --checkpoint=runs/lenet5_l1 --output_dir=out/lenet5
    python -m tfcompress.scripts.export --checkpoint=runs/lenet5_l1 --output_dir=out/q \
        --formats=tflite --quantization=int8 \
        --calibration_data='out/data/fashion_mnist/train-00000-*.tfrecord'

Every file is written atomically (a failed export leaves nothing at its path).
"""

from absl import flags

from tfcompress import training
from tfcompress.scripts import cli, eval_flags
from tfrecords_tools import entry

FLAGS = flags.FLAGS
eval_flags.define_export_flags(FLAGS)
flags.adopt_module_key_flags(eval_flags)


def main(argv):
    del argv  # no positional arguments: entry.run refuses them
    result = cli.run(lambda: training.export(eval_flags.export_config(FLAGS)))
    table = result.pop("report_table", None)
    if table:
        print(table)
    print(cli.summary(result))


def run():
    """Entry point of `python -m tfcompress.scripts.export` and `tfcompress-export`."""
    entry.run(main)


if __name__ == "__main__":
    run()
