"""The flags of `compress` -- the prune recipe's method, target and schedule, and the
deep_compression recipe's stages -- and their configs (`CompressConfig`,
`DeepCompressionConfig`); the training run's flags are `common_flags`'."""

from absl import flags, logging

from tfcompress.latency.runtimes import RUNTIMES
from tfcompress.layers.taylor_mask import AGGREGATIONS
from tfcompress.scripts.common_flags import run_fields, train_config
from tfcompress.training import config as cfg
from tfcompress.training import deep_compress_lib, methods

RECIPES = ("prune", "deep_compression")  # what `compress --recipe` runs


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
    flags.DEFINE_list(
        "latency_only",
        list(cfg.LATENCY_DEFAULTS["latency_only"]),
        "--compression_target=latency: cut only the groups whose mask layer name contains "
        "one of these comma-separated texts (e.g. _expand_: MobileNetV2's expanded "
        "channels); default every group.",
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
            latency_only=tuple(fv.latency_only),
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
    "min_channels", "round_to", "ranking_rule", "s", "temperature_update", "lr_boundaries",
    "lr_values", *cfg.LATENCY_DEFAULTS,
)  # fmt: skip


# Run flags the deep_compression recipe takes (a flagfile overlay such as smoke.cfg may set
# them for every config) without using them: its stages are saved and evaluated whole.
_STEP_RUN_FLAGS = ("save_step", "eval_step", "keep_checkpoints")


def deep_compression_config(fv):
    """A `DeepCompressionConfig` from the compress flags (`--recipe=deep_compression`).
    `--save_step`, `--eval_step` and `--keep_checkpoints` are accepted with a warning
    naming them (`_STEP_RUN_FLAGS`)."""
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
    unused = [f"--{n}={fv[n].value}" for n in _STEP_RUN_FLAGS if fv[n].present]
    if unused:
        logging.warning(
            "%s: no effect with --recipe=deep_compression: each stage is evaluated when it "
            "ends and saved whole (stages.json and the stage's .keras), not every N steps.",
            ", ".join(unused),
        )
    return deep_compress_lib.DeepCompressionConfig(
        **run_fields(fv),
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
        skip_step=fv.skip_step,
    )
