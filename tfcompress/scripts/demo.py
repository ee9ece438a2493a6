"""The tfcompress demo on Fashion-MNIST, through the scripts (what `make demo` runs).

    python -m tfcompress.scripts.demo                   # network slimming
    python -m tfcompress.scripts.demo --method=l1_filter --output_dir=out/demo_l1
    python -m tfcompress.scripts.demo --width_multiplier=0.125 --steps_per_epoch=300  # make demo

Converts Fashion-MNIST to TFRecords (once), trains a baseline (configs/demo_train.cfg),
compresses it (configs/demo_compress.cfg with --method), sweeps one-shot pruning ratios
without fine-tuning, exports the compact SavedModel and TFLite file, prints the report and
writes the compression plot (accuracy against parameters) to <output_dir>/compression.png.
Run it from the repository root.
"""

from absl import flags

from tfcompress.scripts import cli
from tfcompress.scripts.common_flags import float_list
from tfcompress.scripts.demo_lib import DemoConfig, run_demo
from tfcompress.training import methods
from tfrecords_tools import entry

flags.DEFINE_enum("method", "slimming", list(methods.METHODS), "Compression method.")
flags.DEFINE_string("output_dir", "out/demo", "Runs, exports, plot and summary.json.")
flags.DEFINE_string(
    "data_dir", "out/data/fashion_mnist", "Fashion-MNIST TFRecords (made there if missing)."
)
flags.DEFINE_string(
    "fmnist_dir", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST idx .gz files."
)
flags.DEFINE_list("sweep_ratios", ["0.25", "0.5", "0.75"], "One-shot pruning ratios to plot.")
flags.DEFINE_float(
    "width_multiplier",
    0.0,
    "Width of the demo's VGG-16-BN (0: the configs' 0.25; `make demo` uses 0.125 to "
    "leave time for the methods table).",
    lower_bound=0.0,
)
flags.DEFINE_integer(
    "steps_per_epoch",
    0,
    "Training steps per epoch of the baseline and compression runs (0: the whole data; "
    "`make demo` uses 300 to leave time for the methods table).",
    lower_bound=0,
)
flags.DEFINE_bool(
    "smoke", False, "A few steps per epoch (configs/smoke.cfg): checks the demo end to end."
)
FLAGS = flags.FLAGS


def main(argv):
    del argv  # no positional arguments: entry.run refuses them

    def demo():
        config = DemoConfig(
            method=FLAGS.method,
            output_dir=FLAGS.output_dir,
            data_dir=FLAGS.data_dir,
            fmnist_dir=FLAGS.fmnist_dir,
            sweep_ratios=float_list("sweep_ratios", FLAGS.sweep_ratios),
            extra_flags=(
                *((f"--width_multiplier={FLAGS.width_multiplier}",)
                  if FLAGS.width_multiplier else ()),
                *((f"--steps_per_epoch={FLAGS.steps_per_epoch}",) if FLAGS.steps_per_epoch else ()),
                *(("--flagfile=configs/smoke.cfg",) if FLAGS.smoke else ()),
            ),
        )
        try:
            return run_demo(config)
        except RuntimeError as e:  # a step failed; its own output says why
            raise SystemExit(f"error: {e}") from None

    cli.run(demo)


def run():
    """Entry point of `python -m tfcompress.scripts.demo` and `tfcompress-demo`."""
    entry.run(main)


if __name__ == "__main__":
    run()
