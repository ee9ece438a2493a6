"""Flag definitions of the scripts and their conversion into configs (one place for both).

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
from tfcompress.latency.runtimes import RUNTIMES
from tfcompress.layers.taylor_mask import AGGREGATIONS
from tfcompress.training import config as cfg
from tfcompress.training import deep_compress_lib, methods

RECIPES = ("prune", "deep_compression")  # what `compress --recipe` runs


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
        "TensorBoard) every this many steps.",
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


def define_prune_flags(fv):
    """The method and its schedule (compress)."""
    flags.DEFINE_enum("method", None, list(methods.METHODS), "Pruning method.", flag_values=fv)
    flags.DEFINE_float(
        "ratio",
        None,
        "Fraction of channels (of weights, for magnitude) to remove, in [0, 1); per group "
        "or over all groups by --scope.",
        lower_bound=0.0,
        upper_bound=1.0,
        flag_values=fv,
    )
    flags.DEFINE_alias("percent", "ratio", flag_values=fv)
    flags.DEFINE_alias("final_sparsity", "ratio", flag_values=fv)
    flags.DEFINE_float(
        "compression",
        None,
        "Instead of --ratio: a compression factor N (2, 4, 8, 16 ...), read as "
        "--compression_target says.",
        lower_bound=1.0,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "compression_target",
        None,
        list(cfg.COMPRESSION_TARGETS),
        "What --compression=N means: channels (remove 1 - 1/N of the channels, per group "
        "with --scope=local: ACoSP-N), params (the channel ratio leaving 1/N of the "
        "parameters) or latency (1/N of the latency predicted by a cost table measured on "
        "this machine before pruning, see --latency_batch_size; l1_filter, taylor, "
        "slimming); default per method (channels for soft_topk, params otherwise).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "quality",
        None,
        "magnitude only, instead of --ratio: Han's per-layer threshold quality * std(w).",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "taylor_aggregation",
        None,
        sorted(AGGREGATIONS),
        "taylor only: how products a * dL/da become a channel score: sum_then_abs "
        "(|sum over batches of mean(a*g)|, jacobgil/pytorch-pruning; the default), "
        "example_abs (per example |mean over positions|, averaged: Molchanov et al. 2017, "
        "Eq. 8), batch_abs (|mean(a*g)| per batch, summed) or mean_abs (mean |a*g|).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "starting_epoch",
        0.0,
        "Epoch at which pruning starts (slimming: sparsity training before it; soft_topk: "
        "temperature annealing starts).",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "ending_epoch",
        None,
        "Epoch of the last pruning step (soft_topk: masks become hard); default "
        "--starting_epoch (one-shot). Training continues (fine-tuning) until the end.",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "prune_every",
        1.0,
        "Epochs between pruning steps of an iterative schedule.",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "schedule",
        "iterative",
        list(cfg.SCHEDULES),
        "Ratio steps between the epochs: iterative (equal) or polynomial (Zhu & Gupta).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "scope",
        None,
        list(cfg.SCOPES),
        "Ranking: local (ratio per group; per layer for magnitude) or global (one "
        "ranking); default per method (global for taylor and slimming).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "normalize",
        None,
        list(cfg.NORMALIZATIONS),
        "Scaling of each group's scores before ranking: none, mean, max or l2 (s / ||s||: "
        "with --scope=global the AdapNet++ Taylor recipe, l2 per layer then one global "
        "threshold); default per method.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "min_channels",
        None,
        "Channels every group keeps at least; default per method (8 for soft_topk, "
        "ACoSP's min_remaining_elements; 1 otherwise).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "round_to",
        1,
        "Round kept channel counts up to a multiple of this.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "ranking_rule",
        "safe",
        list(cfg.RANKING_RULES),
        "How the ratio becomes a cut: safe (remove floor(ratio*N) channels, never empty a "
        "layer) or strict_quantile (Network Slimming's vggprune.py: keep the scores "
        "strictly above the sorted score at index int(N*ratio); may empty a layer).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "s",
        1e-4,
        "slimming: L1 penalty on BatchNorm scales during sparsity training.",
        lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_list(
        "exclude", [], "Comma-separated names of layers never pruned.", flag_values=fv
    )
    flags.DEFINE_integer(
        "latency_batch_size",
        cfg.LATENCY_DEFAULTS["latency_batch_size"],
        "--compression_target=latency: the serving batch the latency is measured at.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "latency_runtime",
        cfg.LATENCY_DEFAULTS["latency_runtime"],
        list(RUNTIMES),
        "--compression_target=latency: what serves the model, tf (a SavedModel's "
        "function) or tflite (LiteRT with XNNPACK).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "latency_fold_batchnorm",
        cfg.LATENCY_DEFAULTS["latency_fold_batchnorm"],
        "--compression_target=latency: measure with BatchNorm folded into the layers "
        "before it, as the export script's --fold_batchnorm deploys the model.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "temperature_update",
        "continuous",
        list(cfg.TEMPERATURE_UPDATES),
        "soft_topk: continuous (the temperature moves every step) or epoch_end (ACoSP: "
        "set once per epoch, after it; whole --starting_epoch and --ending_epoch).",
        flag_values=fv,
    )
    flags.mark_flag_as_required("method", flag_values=fv)


def define_deep_compression_flags(fv):
    """The recipe (compress) and the flags of its deep_compression stages."""
    defaults = deep_compress_lib.DeepCompressionConfig.__dataclass_fields__
    flags.DEFINE_enum(
        "recipe",
        "prune",
        list(RECIPES),
        "prune: wrap -> prune on the schedule while training -> strip (final.keras). "
        "deep_compression: Han et al. 2016 with --method=magnitude: --dense_epochs of "
        "training, --prune_steps of magnitude pruning (--densities, --ratio or --quality) "
        "each retrained --prune_epochs, weight sharing (--conv_bits, --fc_bits, --bits) "
        "with --share_epochs of centroid training, the Huffman-coded file model.tfdc "
        "(--conv_index_bits, --fc_index_bits, --index_bits); resumes after the last "
        "finished stage.",
        flag_values=fv,
    )
    for name, help_ in (
        ("dense_epochs", "deep_compression: epochs of dense training first (0 with --initialize)."),
        ("prune_steps", "deep_compression: magnitude pruning steps (densities reached "
         "geometrically; --quality prunes again at each)."),
        ("prune_epochs", "deep_compression: epochs of retraining after each pruning step."),
        ("share_epochs", "deep_compression: epochs of centroid training after weight sharing."),
    ):  # fmt: skip
        flags.DEFINE_integer(name, defaults[name].default, help_, lower_bound=0, flag_values=fv)
    flags.DEFINE_list(
        "densities",
        [],
        "deep_compression, instead of --ratio or --quality: layer=kept fraction, ... (the "
        "paper's tables, e.g. fc1=0.08,fc2=0.09,logits=0.26); unnamed layers are not pruned.",
        flag_values=fv,
    )
    for name, help_ in (
        ("conv_bits", "deep_compression: bits of each conv layer's codebook index (2**bits "
         "shared values; the paper: 8)."),
        ("fc_bits", "deep_compression: bits of each fully connected layer's codebook "
         "index (the paper: 5)."),
        ("conv_index_bits", "deep_compression: bits of a conv layer's relative sparse index "
         "(the paper: 8)."),
        ("fc_index_bits", "deep_compression: bits of a fully connected layer's relative "
         "sparse index (the paper: 4)."),
    ):  # fmt: skip
        flags.DEFINE_integer(name, defaults[name].default, help_, flag_values=fv)
    flags.DEFINE_list(
        "bits",
        [],
        "deep_compression: layer=bits, ... overriding --conv_bits / --fc_bits (e.g. fc1=4).",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "index_bits",
        [],
        "deep_compression: layer=bits, ... overriding --conv_index_bits / --fc_index_bits.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "share_learning_rate",
        defaults["share_learning_rate"].default,
        "deep_compression: initial learning rate of the centroid training (poly policy, no "
        "weight decay).",
        flag_values=fv,
    )


def define_evaluate_flags(fv):
    flags.DEFINE_string(
        "checkpoint",
        None,
        "A run directory (its final.keras, else its latest checkpoint) or a .keras file.",
        flag_values=fv,
    )
    flags.DEFINE_string("test_data", None, "Evaluation TFRecords (glob).", flag_values=fv)
    flags.DEFINE_integer("batch_size", 100, "Batch size.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer(
        "eval_batches",
        None,
        "Evaluate on at most this many batches (default: all).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "model",
        None,
        sorted(models.REGISTRY),
        "Expected model (checked against the checkpoint).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_classes",
        None,
        "Expected number of classes (checked against the checkpoint and the data).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "height",
        None,
        "Expected input height (checked against the model).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "width",
        None,
        "Expected input width (checked against the model).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_list(
        "prune_ratios",
        [],
        "Also prune the model one-shot at each of these ratios with "
        "--method (no fine-tuning) and evaluate each: accuracy against parameters.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "method",
        "l1_filter",
        list(methods.METHODS),
        "Criterion of the --prune_ratios sweep (l1_filter, slimming or magnitude).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "recalibrate_data",
        None,
        "TFRecords (glob) whose images (labels unused) re-estimate the BatchNorm statistics "
        "of each pruned model of the sweep.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "recalibrate_batches",
        20,
        "Batches of --recalibrate_data per pruned model.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_string("output", None, "Write the results as JSON to this file.", flag_values=fv)
    define_skip_corrupt_flag(fv)
    define_device_flags(fv, distributed=False)
    flags.mark_flags_as_required(["checkpoint", "test_data"], flag_values=fv)


def define_export_flags(fv):
    flags.DEFINE_string(
        "checkpoint",
        None,
        "A run directory (its final.keras, else its latest checkpoint) or a .keras file.",
        flag_values=fv,
    )
    flags.DEFINE_string("output_dir", None, "Where to write the exports.", flag_values=fv)
    flags.DEFINE_list(
        "formats",
        list(cfg.FORMATS),
        "What to write: saved_model, tflite, keras, report.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "quantization",
        "none",
        list(cfg.QUANTIZATIONS),
        "TFLite weights/activations: none "
        "(float32), dynamic (int8 weights) or int8 (full integer; needs "
        "--calibration_data).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "calibration_data",
        None,
        "TFRecords (glob) for int8 calibration and the TFLite check batch.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "calibration_batches",
        4,
        "Batches of 8 images used for calibration.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "signature_name",
        "serving_default",
        "SavedModel serving signature name.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "gpu_id",
        None,
        "GPU to run on (sets CUDA_VISIBLE_DEVICES before TensorFlow starts).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "fold_batchnorm",
        False,
        "Fold each BatchNorm that directly follows a Conv / Dense layer into it in the "
        "SavedModel, TFLite and .keras files (fewer ops, the same outputs).",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["checkpoint", "output_dir"], flag_values=fv)


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


def _run_fields(fv):
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
    return cfg.TrainConfig(
        **_run_fields(fv),
        max_iteration=fv.max_iteration,
        epochs=fv.epochs,
        skip_step=fv.skip_step,
        save_step=fv.save_step,
        eval_step=fv.eval_step,
        keep_checkpoints=fv.keep_checkpoints,
    )


# Flags of the deep_compression recipe that the prune recipe has no use for.
_DEEP_ONLY = (
    "dense_epochs", "prune_steps", "prune_epochs", "share_epochs", "densities", "conv_bits",
    "fc_bits", "bits", "conv_index_bits", "fc_index_bits", "index_bits", "share_learning_rate",
)  # fmt: skip


def compress_config(fv):
    """A `CompressConfig` from the flags of `define_train_flags` + `define_prune_flags`."""
    given = [f"--{n}" for n in _DEEP_ONLY if n in fv and fv[n].present]
    if given:
        raise ValueError(
            f"{', '.join(given)}: flags of --recipe=deep_compression; this command runs "
            f"--recipe={fv['recipe'].value if 'recipe' in fv else 'prune'}."
        )
    return cfg.CompressConfig(
        train=train_config(fv),
        prune=cfg.PruneConfig(
            method=fv.method,
            ratio=fv.ratio,
            compression=fv.compression,
            compression_target=fv.compression_target,
            starting_epoch=fv.starting_epoch,
            ending_epoch=fv.ending_epoch,
            prune_every=fv.prune_every,
            schedule=fv.schedule,
            scope=fv.scope,
            normalize=fv.normalize,
            min_channels=fv.min_channels,
            round_to=fv.round_to,
            ranking_rule=fv.ranking_rule,
            s=fv.s,
            quality=fv.quality,
            taylor_aggregation=fv.taylor_aggregation,
            exclude=tuple(fv.exclude),
            temperature_update=fv.temperature_update,
            latency_batch_size=fv.latency_batch_size,
            latency_runtime=fv.latency_runtime,
            latency_fold_batchnorm=fv.latency_fold_batchnorm,
        ),
    )


def _assignments(flag, items, convert):
    """["fc1=4", ...] -> (("fc1", 4), ...); raises naming the flag and the item."""
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out.append((name.strip(), convert(value.strip())))
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(
                f"{flag} takes layer=value,... Received: --{flag}={','.join(items)} "
                f"(bad item {item!r})"
            )
    return tuple(out)


# Flags of the prune recipe that the deep_compression recipe has no use for.
_PRUNE_ONLY = (
    "epochs", "max_iteration", "compression", "compression_target", "taylor_aggregation",
    "starting_epoch", "ending_epoch", "prune_every", "schedule", "scope", "normalize",
    "min_channels", "round_to", "ranking_rule", "s", "temperature_update",
    *cfg.LATENCY_DEFAULTS,
)  # fmt: skip


def deep_compression_config(fv):
    """A `DeepCompressionConfig` from the compress flags (`--recipe=deep_compression`)."""
    if fv.method != "magnitude":
        raise ValueError(
            "The deep_compression recipe prunes by weight magnitude: give --method=magnitude. "
            f"Received: method={fv.method!r}"
        )
    given = [f"--{n}" for n in _PRUNE_ONLY if fv[n].present]
    if given:
        raise ValueError(
            f"{', '.join(given)}: flags of --recipe=prune, not of the deep_compression "
            "recipe (its lengths are --dense_epochs, --prune_steps x --prune_epochs and "
            "--share_epochs)."
        )
    return deep_compress_lib.DeepCompressionConfig(
        **_run_fields(fv),
        dense_epochs=fv.dense_epochs,
        prune_steps=fv.prune_steps,
        prune_epochs=fv.prune_epochs,
        share_epochs=fv.share_epochs,
        densities=_assignments("densities", fv.densities, float),
        ratio=fv.ratio,
        quality=fv.quality,
        exclude=tuple(fv.exclude),
        conv_bits=fv.conv_bits,
        fc_bits=fv.fc_bits,
        bits=_assignments("bits", fv.bits, int),
        conv_index_bits=fv.conv_index_bits,
        fc_index_bits=fv.fc_index_bits,
        index_bits=_assignments("index_bits", fv.index_bits, int),
        share_learning_rate=fv.share_learning_rate,
    )


def evaluate_config(fv):
    try:
        ratios = tuple(float(r) for r in fv.prune_ratios)
    except ValueError as e:
        raise ValueError(
            f"prune_ratios must be numbers. Received: prune_ratios={fv.prune_ratios!r}"
        ) from e
    return cfg.EvalConfig(
        checkpoint=fv.checkpoint,
        test_data=fv.test_data,
        batch_size=fv.batch_size,
        eval_batches=fv.eval_batches,
        model=fv.model,
        num_classes=fv.num_classes,
        height=fv.height,
        width=fv.width,
        prune_ratios=ratios,
        method=fv.method,
        recalibrate_data=fv.recalibrate_data,
        recalibrate_batches=fv.recalibrate_batches,
        output=fv.output,
        skip_corrupt=fv.skip_corrupt,
        devices=cfg.DeviceConfig(gpu_id=fv.gpu_id, jit_compile=fv.jit_compile),
    )


def export_config(fv):
    return cfg.ExportConfig(
        checkpoint=fv.checkpoint,
        output_dir=fv.output_dir,
        formats=tuple(fv.formats),
        quantization=fv.quantization,
        calibration_data=fv.calibration_data,
        calibration_batches=fv.calibration_batches,
        signature_name=fv.signature_name,
        gpu_id=fv.gpu_id,
        fold_batchnorm=fv.fold_batchnorm,
    )
