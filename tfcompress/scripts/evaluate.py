r"""Evaluate a run (or a .keras file) on test data: accuracy, mIoU or VOC mAP by task;
optionally a one-shot pruning sweep (metric against parameters, no fine-tuning).

    python -m tfcompress.scripts.evaluate --checkpoint=runs/lenet5 \
        --test_data='out/data/fashion_mnist/test-*.tfrecord'
    python -m tfcompress.scripts.evaluate --checkpoint=runs/vgg --method=slimming \
        --prune_ratios=0.25,0.5,0.75 --test_data='out/data/fashion_mnist/test-*.tfrecord' \
        --output=runs/vgg/sweep.json
"""

from absl import flags

from tfcompress import training
from tfcompress.scripts import cli, common_flags, eval_flags
from tfrecords_tools import entry

FLAGS = flags.FLAGS
eval_flags.define_evaluate_flags(FLAGS)
flags.adopt_module_key_flags(common_flags)
flags.adopt_module_key_flags(eval_flags)


def main(argv):
    del argv  # no positional arguments: entry.run refuses them
    job = lambda: training.evaluate(eval_flags.evaluate_config(FLAGS))  # noqa: E731
    result = cli.run(job, skip_flag=True)
    print(cli.summary(result))


def run():
    """Entry point of `python -m tfcompress.scripts.evaluate` and `tfcompress-evaluate`."""
    entry.run(main)


if __name__ == "__main__":
    run()
