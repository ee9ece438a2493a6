"""The flags of `evaluate` and `export` and their configs (`EvalConfig`, `ExportConfig`);
the device flags are `common_flags`'."""

from absl import flags

from tfcompress import models
from tfcompress.scripts.common_flags import (
    define_device_flags,
    define_skip_corrupt_flag,
    float_list,
)
from tfcompress.training import config as cfg


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
        list(cfg.SWEEP_CRITERIA),
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


def evaluate_config(fv):
    ratios = float_list("prune_ratios", fv.prune_ratios)
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
