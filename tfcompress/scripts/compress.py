r"""Compress a model: wrap -> prune on a schedule while training -> strip, for any method
(magnitude, l1_filter, taylor, slimming, soft_topk), one-shot or iterative.

    python -m tfcompress.scripts.compress --flagfile=configs/vgg19_bn_cifar10_slimming.cfg
    python -m tfcompress.scripts.compress --model=lenet5 --num_classes=10 \
        --train_data='out/data/fashion_mnist/train-*.tfrecord' --initialize=runs/lenet5 \
        --checkpoint=runs/lenet5_l1 --method=l1_filter --ratio=0.5 --epochs=1

Times are epochs: pruning starts at --starting_epoch and ends at --ending_epoch (default:
the same epoch, one-shot; slimming trains with the L1 penalty --s before it, soft_topk
anneals its temperature between them); training goes on (fine-tuning) to the end. Writes
the compact model (final.keras), plan.json, report.json/.txt and result.json into
--checkpoint; running the same command again resumes. See docs/scripts.md.

--recipe=deep_compression runs Deep Compression (Han et al. 2016) instead: dense ->
magnitude pruning and retraining -> weight sharing and centroid training -> the
Huffman-coded file (model.tfdc), each stage measured (result.json, stages.png,
TensorBoard); a restart resumes after the last finished stage:

    python -m tfcompress.scripts.compress --flagfile=configs/lenet5_fmnist_deep_compression.cfg
"""

from absl import flags

from tfcompress import training
from tfcompress.scripts import cli, common_flags, prune_flags
from tfrecords_tools import entry

FLAGS = flags.FLAGS
common_flags.define_train_flags(FLAGS)
prune_flags.define_prune_flags(FLAGS)
prune_flags.define_deep_compression_flags(FLAGS)
flags.adopt_module_key_flags(common_flags)
flags.adopt_module_key_flags(prune_flags)

# --recipe -> (flags -> config, library call)
RECIPES = {
    "prune": (prune_flags.compress_config, training.compress),
    "deep_compression": (prune_flags.deep_compression_config, training.deep_compress),
}


def main(argv):
    del argv  # no positional arguments: entry.run refuses them
    make_config, run_recipe = RECIPES[FLAGS.recipe]
    job = lambda: run_recipe(make_config(FLAGS))  # noqa: E731
    result = cli.run(job, skip_flag=True)
    print(cli.summary(result))


def run():
    """Entry point of `python -m tfcompress.scripts.compress` and `tfcompress-compress`."""
    entry.run(main)


if __name__ == "__main__":
    run()
