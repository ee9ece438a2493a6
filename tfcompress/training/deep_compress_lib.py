"""`deep_compress(DeepCompressionConfig)`: Deep Compression (Han, Mao & Dally 2016) on
TFRecords, as one resumable run; the library side of
`python -m tfcompress.scripts.compress --recipe=deep_compression`.

The recipe is `tfcompress.sharing.deep_compress` (dense -> prune and retrain -> share
weights and train the centroids -> the Huffman-coded file); this module checks the run
(flags, paths, data, bits) before any training, feeds it the records, and writes into the
run directory (`--checkpoint`):

    run.json            what the run is (a restart is checked against it)
    stages.json         each finished stage's record; dense/pruned/shared.keras its model
                        (`tfcompress.sharing.stages`): a restart resumes after the last one
    model.tfdc          the compressed file (`tfcompress.codec`)
    final.keras         its model as plain layers (for the evaluate and export scripts)
    report.txt          the file's bytes per layer and per part (the paper's Tables 2-5)
    stages.png          test accuracy against storage ratio across the stages
    tensorboard/        the stages' scalars (`deep_compression/accuracy`, `ratio`, `bytes`)
    result.json         every stage's accuracy, bytes and ratio; written last
"""

import dataclasses
import os
import sys

import keras
import tensorflow as tf
from absl import logging

from tfcompress import sharing
from tfcompress.atomic import atomic_write_text
from tfcompress.codec.encoder import resolve_index_bits
from tfcompress.codec.schema import DEFAULT_INDEX_BITS
from tfcompress.data.reader import CountOnce
from tfcompress.sharing.kmeans import check_bits
from tfcompress.sharing.model import DEFAULT_BITS, kind_of, resolve_bits
from tfcompress.sharing.pipeline import check_density, resolve_densities
from tfcompress.sharing.stages import StageFolder, check_file
from tfcompress.surgery import wrap
from tfcompress.training import common, devices, inputs, paths, runs, weights
from tfcompress.training.config import (
    DeviceConfig,
    ModelConfig,
    TrainConfig,
    _int,
    _number,
    check_run_fields,
)
from tfcompress.training.lr import PolyLR
from tfcompress.training.plot import stages_plot

KIND = "deep_compression"
FILE = "model.tfdc"
REPORT_TEXT = "report.txt"
PLOT = "stages.png"
# What the run writes besides the files of every run (`runs.FILES`).
WRITES = (FILE, REPORT_TEXT, PLOT, "stages.json", "dense.keras", "pruned.keras", "shared.keras")


def _pairs(name, value, check):
    """`value` as ((layer name, checked number), ...); raises naming `name`."""
    if not isinstance(value, tuple) or not all(
        isinstance(kv, tuple) and len(kv) == 2 and isinstance(kv[0], str) for kv in value
    ):
        raise ValueError(f"{name} must be ((layer name, value), ...). Received: {name}={value!r}")
    for layer, v in value:
        check(f"{name}[{layer!r}]", v)


def _bits(name, value):
    check_bits(value, name)


@dataclasses.dataclass(frozen=True)
class DeepCompressionConfig:
    """One Deep Compression run; field names are the compress script's flags.

    Stage lengths are epochs of `steps_per_epoch` steps (default: the examples of
    train_data // batch_size): `dense_epochs` of training first (0 with `initialize`, a
    trained model), `prune_steps` pruning steps each followed by `prune_epochs` of
    retraining, `share_epochs` of centroid training.
    Pruning target, exactly one of: `densities` ((layer, kept fraction), ...: the
    paper's per-layer tables; unnamed layers are not pruned), `ratio` (the fraction of
    every layer's weights removed) or `quality` (Han's threshold quality * std(w)).
    Bits: `conv_bits` / `fc_bits` per layer kind (the paper: 8 / 5), `bits` per named
    layer overriding them; the relative-index widths likewise (`conv_index_bits`,
    `fc_index_bits`, `index_bits`; the paper: 8 / 4).
    Optimizer: SGD with momentum on the poly policy, per stage: `learning_rate` for the
    dense and pruned stages (with `weight_decay`), `share_learning_rate` for the
    centroids (no weight decay: a centroid stands for many weights).
    `skip_step`: a log line (and TensorBoard scalars `train/<stage>/...`) every this many
    steps of each training stage (`callbacks.StepLog`).
    """

    # The fields it shares with TrainConfig take TrainConfig's defaults (one place).
    model: ModelConfig
    train_data: str
    checkpoint: str
    test_data: str
    initialize: str | None = None
    batch_size: int = TrainConfig.batch_size
    steps_per_epoch: int | None = None
    eval_batches: int | None = None
    dense_epochs: int = 0
    prune_steps: int = 1
    prune_epochs: int = 1
    share_epochs: int = 1
    densities: tuple = ()
    ratio: float | None = None
    quality: float | None = None
    exclude: tuple = ()
    conv_bits: int = DEFAULT_BITS["conv"]
    fc_bits: int = DEFAULT_BITS["dense"]
    bits: tuple = ()
    conv_index_bits: int = DEFAULT_INDEX_BITS["conv"]
    fc_index_bits: int = DEFAULT_INDEX_BITS["dense"]
    index_bits: tuple = ()
    learning_rate: float = TrainConfig.learning_rate
    share_learning_rate: float = 0.001
    power: float = TrainConfig.power
    momentum: float = TrainConfig.momentum
    weight_decay: float = TrainConfig.weight_decay
    weight_decay_mode: str = TrainConfig.weight_decay_mode
    seed: int = TrainConfig.seed
    skip_step: int = TrainConfig.skip_step
    progress: bool = TrainConfig.progress
    cache_data: bool = TrainConfig.cache_data
    skip_corrupt: bool = TrainConfig.skip_corrupt
    devices: DeviceConfig = TrainConfig.devices

    def __post_init__(self):
        check_run_fields(self)
        if not self.test_data:
            raise ValueError(
                "test_data is needed: the deep_compression recipe measures every stage on "
                f"it. Received: test_data={self.test_data!r}"
            )
        _int("dense_epochs", self.dense_epochs)
        _int("prune_steps", self.prune_steps, minimum=1)
        _int("prune_epochs", self.prune_epochs)
        _int("share_epochs", self.share_epochs)
        _int("skip_step", self.skip_step, minimum=1)
        given = (bool(self.densities), self.ratio is not None, self.quality is not None)
        if sum(given) != 1:
            raise ValueError(
                "Give exactly one pruning target: densities, ratio or quality. Received: "
                f"densities={self.densities!r}, ratio={self.ratio!r}, quality={self.quality!r}"
            )
        _pairs("densities", self.densities, lambda name, v: check_density(v, name))
        _number("ratio", self.ratio, low=0, high=1, optional=True)
        _number("quality", self.quality, low=0, low_open=True, optional=True)
        if not all(isinstance(n, str) for n in self.exclude):
            raise ValueError(f"exclude must hold layer names. Received: exclude={self.exclude!r}")
        for name in ("conv_bits", "fc_bits", "conv_index_bits", "fc_index_bits"):
            _bits(name, getattr(self, name))
        _pairs("bits", self.bits, _bits)
        _pairs("index_bits", self.index_bits, _bits)
        _number("share_learning_rate", self.share_learning_rate, low=0, low_open=True)
        if self.devices.strategy != "default" or self.devices.precision != "float32":
            raise ValueError(
                "The deep_compression recipe runs on one device in float32 (Keras fit). "
                f"Received: strategy={self.devices.strategy!r}, "
                f"precision={self.devices.precision!r}"
            )


def layer_bits(model, config):
    """`(bits, index_bits)`: `{layer name: bits}` of every layer to share (conv_bits or
    fc_bits by kind, `bits` overriding) and its relative-index widths; raises naming the
    flag when `bits`, `index_bits` or `exclude` name no layer that can be shared."""
    resolve_bits(model, dict(config.bits), config.exclude)  # names, kinds, values, exclude
    kinds = {layer.name: kind_of(layer) for layer in model.layers}
    shared = {n: k for n, k in kinds.items() if k is not None and n not in config.exclude}
    by_kind = {"conv": config.conv_bits, "dense": config.fc_bits}
    bits = {n: by_kind[k] for n, k in shared.items()} | dict(config.bits)
    resolve_index_bits(shared, dict(config.index_bits))  # names and values
    by_kind = {"conv": config.conv_index_bits, "dense": config.fc_index_bits}
    index_bits = {n: by_kind[k] for n, k in shared.items()} | dict(config.index_bits)
    return bits, index_bits


def check_densities(model, config):
    """Raises naming the flag when `densities` names a layer the recipe cannot prune (as
    `sharing.deep_compress` would, but before the run directory is written)."""
    if config.densities:
        masked = wrap(model, method="magnitude", exclude=config.exclude)
        resolve_densities(masked, dict(config.densities), config.exclude)


def _optimizer(config, epochs, steps_per_epoch, **changes):
    """A function returning a new SGD of `config` (with `changes`) on the poly policy
    over `epochs`."""
    stage = dataclasses.replace(config, **changes)
    steps = max(1, epochs * steps_per_epoch)
    return lambda: common.sgd(stage, PolyLR(stage.learning_rate, steps, stage.power))


def _eval_batches(config, plan):
    """Batches of the evaluation (the last one partial), or None without a manifest."""
    if plan.test.num_examples is None:
        return None
    batches = -(-plan.test.num_examples // config.batch_size)
    return batches if config.eval_batches is None else min(batches, config.eval_batches)


def _accuracy_label(config, plan):
    """What the plot's y axis measures: which test data, how many images."""
    name = os.path.basename(os.path.dirname(os.path.abspath(config.test_data))) or "test_data"
    count = plan.test.num_examples
    if count is not None and config.eval_batches is not None:
        count = min(count, config.eval_batches * config.batch_size)
    images = "" if count is None else f", {count:,} images"
    return f"test accuracy (%) ({name}{images})"


def deep_compress(config, context=None):
    """Runs (or resumes) the Deep Compression run `config` describes; returns its result.

    Paths, data, layer names, densities and bits are checked before any training and
    before anything is written. A restart with the same command resumes after the last
    finished stage; a finished run (result.json) is not run again, unless its model.tfdc
    was removed, is damaged (any part's CRC32C) or is not the file it wrote (its SHA-256
    in stages.json; `sharing.stages.check_file`): it is then written again from the
    shared stage (shared.keras; without it the run is refused, naming both files).
    """
    from tfcompress.export import keras_file

    paths.check_run(config, {**runs.FILES, **dict.fromkeys(WRITES, paths.FILE)})
    context = context or devices.setup(config.devices)
    plan = common.plan(_as_train(config), context)
    record = runs.record_of(config)
    run = runs.RunDirectory(config.checkpoint, context)
    existing = run.check(KIND, record, runs.defaults_of(config))
    if existing is not None and os.path.exists(run.file(runs.RESULT_FILE)):
        # finished, if its file reads whole and is the one it wrote; else
        # sharing.deep_compress warns naming the problem (or refuses without shared.keras)
        # and writes it again, training nothing
        if check_file(run.file(FILE), StageFolder(run.path).records())[1] is None:
            return run.finished()
    keras.utils.set_random_seed(config.seed)
    model = weights.build_model(config.model, plan.input_shape)
    bits, index_bits = layer_bits(model, config)
    check_densities(model, config)
    if config.initialize:
        weights.initialize(model, config.initialize)
    spe = plan.steps_per_epoch
    run.start(KIND, record, {**plan.resolved(), "bits": bits, "index_bits": index_bits})
    skipped = common.skipped_records(config.skip_corrupt)
    # each stage that trains builds its own dataset: a record is counted once over all
    counted = None if skipped is None else CountOnce(skipped)
    num_classes = config.model.num_classes
    train = lambda: inputs.train_dataset(  # noqa: E731 - built as each stage starts training
        plan.data, config.batch_size, plan.input_shape, config.seed, cache=config.cache_data,
        num_classes=num_classes, skip_corrupt=config.skip_corrupt, skipped=counted,
    )  # fmt: skip
    test = inputs.eval_dataset(
        plan.test, config.batch_size, plan.input_shape, num_classes=num_classes,
        skip_corrupt=config.skip_corrupt,
    )  # fmt: skip
    if config.eval_batches is not None:
        test = test.take(config.eval_batches)
    batches = _eval_batches(config, plan)
    if batches is not None and not config.skip_corrupt:  # Keras then knows where it ends
        test = test.apply(tf.data.experimental.assert_cardinality(batches))
    densities = dict(config.densities) or (None if config.ratio is None else 1.0 - config.ratio)
    logging.info(
        "Deep Compression of %s: dense %d, prune %d x %d, share %d epochs of %d steps; bits %s; "
        "index bits %s", model.name, config.dense_epochs, config.prune_steps,
        config.prune_epochs, config.share_epochs, spe, bits, index_bits,
    )  # fmt: skip
    result = sharing.deep_compress(
        model,
        train,
        output_path=run.file(FILE),
        val_data=test,
        densities=densities,
        quality=config.quality,
        dense_epochs=config.dense_epochs,
        prune_steps=config.prune_steps,
        prune_epochs=config.prune_epochs,
        share_epochs=config.share_epochs,
        bits=bits,
        index_bits=index_bits,
        exclude=config.exclude,
        dense_optimizer=_optimizer(config, config.dense_epochs, spe),
        optimizer=_optimizer(config, config.prune_steps * config.prune_epochs, spe),
        share_optimizer=_optimizer(
            config,
            config.share_epochs,
            spe,
            learning_rate=config.share_learning_rate,
            weight_decay=0.0,
        ),  # fmt: skip
        steps_per_epoch=spe,
        log_dir=run.file(runs.TENSORBOARD),
        log_every=config.skip_step,
        workdir=run.path,
        seed=config.seed,
        verbose=1 if config.progress and sys.stdout.isatty() else 2,
    )
    keras_file(sharing.strip_shared(result.model), run.file(runs.FINAL_MODEL))
    atomic_write_text(run.file(REPORT_TEXT), result.report.format() + "\n")
    stages = [s.as_dict() for s in result.stages]
    stages_plot(run.file(PLOT), stages, _accuracy_label(config, plan), model.name)
    logging.info("\n%s", stages_table(stages))
    last = result.stages[-1]
    out = {
        "stages": stages,
        "ratio": last.ratio,
        "bytes": last.bytes,
        "test": {"accuracy": last.accuracy},
        "accuracy_change": last.accuracy - result.stages[0].accuracy,
        "file": run.file(FILE),
        "report": result.report.as_dict(),
    }
    skipped = common.report_skipped("train_data", skipped)
    if skipped is not None:
        out["skipped"] = {"train_data": skipped}
    out["path"] = run.write_json(runs.RESULT_FILE, out)
    return out


def _as_train(config):
    """The `TrainConfig` view `common.plan` checks the data and batch with."""
    return TrainConfig(
        model=config.model,
        train_data=config.train_data,
        checkpoint=config.checkpoint,
        test_data=config.test_data,
        batch_size=config.batch_size,
        epochs=1.0,
        steps_per_epoch=config.steps_per_epoch,
    )


def stages_table(stages):
    """The stages as a text table: accuracy, non-zero weights, bytes, storage ratio."""
    lines = [f"{'stage':8}{'accuracy':>10}{'nonzero':>12}{'bytes':>12}{'ratio':>9}"]
    for s in stages:
        acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.4f}"
        lines.append(
            f"{s['name']:8}{acc:>10}{s['nonzero']:>12,}{s['bytes']:>12,}{s['ratio']:>8.1f}x"
        )
    return "\n".join(lines)
