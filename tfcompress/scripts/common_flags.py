"""Flag definitions shared by the scripts -- devices, model, training run -- and their
conversion into configs (one place for both); `prune_flags` adds compress's, `eval_flags`
evaluate's and export's.

Each `define_*(flag_values)` adds a group of flags to a `FlagValues` (the scripts pass the
global `FLAGS`; tests pass a fresh one), and each `*_config(flag_values)` turns parsed flags
into a config dataclass of `tfcompress.training`. The seeds' names are kept: `gpu_id`,
`model`, `num_classes`, `initialize` (and the seed's spelling `intialize`), `checkpoint`,
`train_data`, `batch_size`, `skip_step`, `height`, `width`, `max_iteration`,
`learning_rate`, `save_step`, `power`; `percent` and `final_sparsity` are aliases of
`ratio`.
"""

import ast

from absl import flags

from tfcompress import models
from tfcompress.training import config as cfg


def define_skip_corrupt_flag(fv):
    """``--skip_corrupt`` of the scripts that read records (train, compress, evaluate)."""
    flags.DEFINE_bool(
        "skip_corrupt",
        cfg.TrainConfig.skip_corrupt,
        "Skip records that fail to read or validate instead of stopping at the first one: "
        "they are counted, and the count and the first of them are logged at the end and "
        "written to the result.",
        flag_values=fv,
    )


def define_device_flags(fv, distributed=True):
    """gpu_id, jit_compile; with `distributed`: strategy, num_cpu_devices, precision."""
    flags.DEFINE_string(
        "gpu_id",
        None,
        "GPU(s) to run on, e.g. 0 or 0,1: sets CUDA_VISIBLE_DEVICES before TensorFlow starts. "
        "On a machine without GPUs the run logs that it uses the CPU.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "jit_compile",
        False,
        "XLA-compile the train and eval steps (often slower on CPU; try it on GPUs).",
        flag_values=fv,
    )
    if not distributed:
        return
    flags.DEFINE_enum(
        "strategy",
        "default",
        list(cfg.STRATEGIES),
        "Distribution: default (one device), mirrored (all local GPUs, or the logical CPUs "
        "of --num_cpu_devices) or multi_worker (MultiWorkerMirroredStrategy, cluster from "
        "the TF_CONFIG environment variable).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_cpu_devices",
        0,
        "Split the CPU into this many logical devices (e.g. 2 with --strategy=mirrored to "
        "try data parallelism without GPUs); 0 leaves the CPU as one device.",
        lower_bound=0,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "precision",
        "float32",
        list(cfg.PRECISIONS),
        "Keras dtype policy: float32, mixed_float16 (GPUs; adds loss scaling) or mixed_bfloat16.",
        flag_values=fv,
    )


def define_model_flags(fv):
    """model, num_classes, height, width, width_multiplier, model_option."""
    flags.DEFINE_enum(
        "model",
        None,
        sorted(models.REGISTRY),
        "Network to build (tfcompress.models.REGISTRY).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Number of classes (must match the data's manifest).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "height",
        None,
        "Input height; images are resized to it (default: the data's).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "width",
        None,
        "Input width; images are resized to it (default: the data's).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "width_multiplier",
        1.0,
        "Channel multiplier of the network (the builders' width=).",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_multi_string(
        "model_option",
        [],
        "A model-specific builder option as key=value, repeatable (e.g. output_stride=16 "
        "for pspnet, dropout_rate=0.5 for adapnet_pp); see docs/models.md.",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["model", "num_classes"], flag_values=fv)


def define_train_flags(fv):
    """Data, run directory, length, optimizer and logging flags of train and compress."""
    define_model_flags(fv)
    flags.DEFINE_string(
        "train_data",
        None,
        "Training TFRecords (glob), written by tfrecords_tools.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "test_data",
        None,
        "Evaluation TFRecords (glob); evaluated every --eval_step and at the end.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "checkpoint",
        None,
        "Run directory: checkpoints, run.json, TensorBoard logs, final.keras, result.json. "
        "Restarting the same command resumes from its latest checkpoint.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "initialize",
        None,
        "Weights to start from: a train run directory, a .keras or a .weights.h5 file of the "
        "same architecture (ignored when --checkpoint already holds a checkpoint).",
        flag_values=fv,
    )
    flags.DEFINE_alias("intialize", "initialize", flag_values=fv)
    flags.DEFINE_integer(
        "batch_size",
        cfg.TrainConfig.batch_size,
        "Global batch size (split over the replicas).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "max_iteration",
        None,
        "Training steps (give this or --epochs).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "epochs",
        None,
        "Training length in epochs (give this or --max_iteration).",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "steps_per_epoch",
        None,
        "Steps that make an epoch (default: examples in --train_data // --batch_size).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "learning_rate",
        cfg.TrainConfig.learning_rate,
        "Initial learning rate of the poly policy lr * (1 - step / max_iteration)^power.",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "power",
        cfg.TrainConfig.power,
        "Exponent of the poly learning-rate policy.",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_list(
        "lr_boundaries",
        list(cfg.TrainConfig.lr_boundaries),
        "The step learning-rate policy instead of poly: epochs at which the rate changes "
        "to the next of --lr_values (e.g. 80,120 with 0.1,0.01,0.001: network slimming's "
        "main.py). --learning_rate and --power are then not read.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "lr_values",
        list(cfg.TrainConfig.lr_values),
        "The rates of the step policy: before, between and after --lr_boundaries.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "momentum",
        cfg.TrainConfig.momentum,
        "SGD momentum.",
        lower_bound=0.0,
        upper_bound=1.0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "weight_decay",
        cfg.TrainConfig.weight_decay,
        "SGD weight decay (0 for none).",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "weight_decay_mode",
        cfg.TrainConfig.weight_decay_mode,
        list(cfg.WEIGHT_DECAY_MODES),
        "coupled: wd * w is added to the gradient before momentum (the seeds' PyTorch, "
        "Caffe and TF1 SGD); decoupled: Keras's w -= lr * wd * w (about 1 / (1 - momentum) "
        "times weaker).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "skip_step",
        cfg.TrainConfig.skip_step,
        "Log loss, learning rate, metric and kept channels (console and "
        "TensorBoard) every this many steps (deep_compression: of each training stage).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "save_step",
        cfg.TrainConfig.save_step,
        "Checkpoint every this many steps (and at the end).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "eval_step",
        cfg.TrainConfig.eval_step,
        "Evaluate on --test_data every this many steps (0: at the end only).",
        lower_bound=0,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "eval_batches",
        None,
        "Evaluate on at most this many test batches (default: all).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "keep_checkpoints",
        cfg.TrainConfig.keep_checkpoints,
        "Checkpoints to keep.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "seed",
        cfg.TrainConfig.seed,
        "Seed of initialisation, shuffling and augmentation.",
        lower_bound=0,
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "progress",
        cfg.TrainConfig.progress,
        "Show a progress bar (when the output is a terminal).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "cache_data",
        cfg.TrainConfig.cache_data,
        "Keep the decoded training examples in memory after the first epoch (for data that "
        "fits in RAM): later epochs only shuffle, augment and batch.",
        flag_values=fv,
    )
    define_skip_corrupt_flag(fv)
    define_device_flags(fv)
    flags.mark_flags_as_required(["train_data", "checkpoint"], flag_values=fv)


def float_list(name, values):
    """The values of the list flag `name` as floats; raises naming the flag otherwise."""
    try:
        return tuple(float(v) for v in values)
    except ValueError as e:
        raise ValueError(f"{name} must be numbers. Received: {name}={list(values)!r}") from e


def _option(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"model_option must be key=value. Received: model_option={text!r}")
    try:
        return key.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key.strip(), value.strip()


def device_config(fv):
    return cfg.DeviceConfig(
        gpu_id=fv.gpu_id,
        strategy=fv.strategy,
        num_cpu_devices=fv.num_cpu_devices,
        precision=fv.precision,
        jit_compile=fv.jit_compile,
    )


def model_config(fv):
    return cfg.ModelConfig(
        name=fv.model,
        num_classes=fv.num_classes,
        height=fv.height,
        width=fv.width,
        width_multiplier=fv.width_multiplier,
        options=tuple(_option(o) for o in fv.model_option),
    )


def run_fields(fv):
    """The config fields every training run takes straight from its flags (the fields
    `config.check_run_fields` checks, plus test_data and progress)."""
    return dict(
        model=model_config(fv),
        train_data=fv.train_data,
        checkpoint=fv.checkpoint,
        test_data=fv.test_data,
        initialize=fv.initialize,
        batch_size=fv.batch_size,
        steps_per_epoch=fv.steps_per_epoch,
        eval_batches=fv.eval_batches,
        learning_rate=fv.learning_rate,
        power=fv.power,
        momentum=fv.momentum,
        weight_decay=fv.weight_decay,
        weight_decay_mode=fv.weight_decay_mode,
        seed=fv.seed,
        progress=fv.progress,
        cache_data=fv.cache_data,
        skip_corrupt=fv.skip_corrupt,
        devices=device_config(fv),
    )


def train_config(fv):
    """A `TrainConfig` from the flags of `define_train_flags`."""
    given = [f"--{n}" for n in ("learning_rate", "power") if fv[n].present]
    if fv.lr_boundaries and given:
        raise ValueError(
            f"{', '.join(given)}: flags of the poly learning-rate policy; with "
            "--lr_boundaries the rates are --lr_values."
        )
    return cfg.TrainConfig(
        **run_fields(fv),
        lr_boundaries=float_list("lr_boundaries", fv.lr_boundaries),
        lr_values=float_list("lr_values", fv.lr_values),
        max_iteration=fv.max_iteration,
        epochs=fv.epochs,
        skip_step=fv.skip_step,
        save_step=fv.save_step,
        eval_step=fv.eval_step,
        keep_checkpoints=fv.keep_checkpoints,
    )
