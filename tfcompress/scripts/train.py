r"""Train a model with SGD + momentum + weight decay on the poly learning-rate policy.

    python -m tfcompress.scripts.train --flagfile=configs/adapnet_pp_cityscapes_train.cfg
    python -m tfcompress.scripts.train --model=lenet5 --num_classes=10 \
        --train_data='out/data/fashion_mnist/train-*.tfrecord' \
        --test_data='out/data/fashion_mnist/test-*.tfrecord' --checkpoint=runs/lenet5 --epochs=2

Writes checkpoints, run.json, TensorBoard scalars, final.keras and result.json into
--checkpoint; running the same command again resumes from the latest checkpoint. See
docs/scripts.md for every flag.
"""

from absl import flags

from tfcompress import training
from tfcompress.scripts import cli, common_flags
from tfrecords_tools import entry

FLAGS = flags.FLAGS
common_flags.define_train_flags(FLAGS)
flags.adopt_module_key_flags(common_flags)


def main(argv):
    del argv  # no positional arguments: entry.run refuses them
    job = lambda: training.train(common_flags.train_config(FLAGS))  # noqa: E731
    result = cli.run(job, skip_flag=True)
    print(cli.summary(result))


def run():
    """Entry point of `python -m tfcompress.scripts.train` and `tfcompress-train`."""
    entry.run(main)


if __name__ == "__main__":
    run()
