"""`export(ExportConfig)`: a run directory or `.keras` file -> SavedModel, TFLite, `.keras`
and the compression report; the library side of `python -m tfcompress.scripts.export`.

    <output_dir>/saved_model/   named serving signature (`signature_name`)
    <output_dir>/model.tflite   float, dynamic-range or int8, checked once in LiteRT
    <output_dir>/model.keras
    <output_dir>/report.json, report.txt   parameters and MACs before/after, per layer
    <output_dir>/export.json    what was written, sizes, the TFLite error vs Keras
"""

import json
import os

import numpy as np
from absl import logging

import tfcompress as tfc
from tfcompress.atomic import atomic_write_text, check_target
from tfcompress.export.saved_model import SAVED_MODEL as SAVED_MODEL_FOLDER
from tfcompress.pruners.batchnorm import batch_norm_layers
from tfcompress.training import devices, inputs, paths, weights

SAVED_MODEL = "saved_model"
TFLITE = "model.tflite"
KERAS = "model.keras"
REPORT = "report.json"
REPORT_TEXT = "report.txt"
SUMMARY = "export.json"


def _calibration(config, model):
    if config.calibration_data is None:
        return None
    data = inputs.inspect(config.calibration_data, "calibration_data")
    size = tuple(model.inputs[0].shape[1:])
    batches = inputs.eval_dataset(data, 8, size).take(config.calibration_batches)
    return [np.asarray(x) for x, _ in batches]


def _original(run, trained):
    """What the report compares the exported model with: the model itself for a `.keras`
    file or a train run (nothing was compressed), else the run's original architecture,
    rebuilt from run.json; it holds no trained weights here, so each of its parameters
    counts as nonzero (a fresh draw would show zero-initialised biases, BatchNorm betas and
    moving means as parameters the compression removed)."""
    if run is None or run.get("kind") == "train":
        return trained
    return weights.counted_original(weights.rebuild(run, wrapped=False))


def writes(formats):
    """`{name: paths.FILE or paths.DIRECTORY}` of what an export of `formats` writes."""
    names = {
        "saved_model": {SAVED_MODEL: paths.DIRECTORY},
        "tflite": {TFLITE: paths.FILE},
        "keras": {KERAS: paths.FILE},
        "report": {REPORT: paths.FILE, REPORT_TEXT: paths.FILE},
    }
    return {k: v for f in formats for k, v in names[f].items()} | {SUMMARY: paths.FILE}


def check_paths(config):
    """The paths of an `ExportConfig`, before anything is loaded or written."""
    paths.input_path("checkpoint", config.checkpoint, paths.TRAINED)
    paths.input_pattern("calibration_data", config.calibration_data)
    paths.output_directory("output_dir", config.output_dir)
    paths.outputs_inside("output_dir", config.output_dir, writes(config.formats))
    if "saved_model" in config.formats:  # an earlier SavedModel, or a folder of other files
        check_target(os.path.join(config.output_dir, SAVED_MODEL), True, SAVED_MODEL_FOLDER)


def export(config):
    """Writes the formats of `config.formats`; returns the export summary dict."""
    check_paths(config)
    devices.select_gpu(config.gpu_id)
    model, run = weights.load_trained(config.checkpoint)
    os.makedirs(config.output_dir, exist_ok=True)
    summary = {"checkpoint": config.checkpoint, "model": model.name}
    trained = model
    if config.fold_batchnorm:
        model = tfc.export.fold_batchnorm(model)
        summary["fold_batchnorm"] = {
            "batchnorm_layers": [len(batch_norm_layers(m)) for m in (trained, model)]}
        logging.info("BatchNorm folded: %d BatchNorm layers left of %d",
                     *summary["fold_batchnorm"]["batchnorm_layers"][::-1])
    out = lambda name: os.path.join(config.output_dir, name)  # noqa: E731
    if "saved_model" in config.formats:
        tfc.export.saved_model(model, out(SAVED_MODEL), signature_name=config.signature_name)
        summary["saved_model"] = out(SAVED_MODEL)
        logging.info("wrote %s", out(SAVED_MODEL))
    if "keras" in config.formats:
        tfc.export.keras_file(model, out(KERAS))
        summary["keras"] = out(KERAS)
        logging.info("wrote %s", out(KERAS))
    if "tflite" in config.formats:
        samples = _calibration(config, model)
        quantization = None if config.quantization == "none" else config.quantization
        check = tfc.export.tflite(
            model,
            out(TFLITE),
            quantization=quantization,
            representative_data=samples if quantization == "int8" else None,
            check_data=None if samples is None else samples[0][:4],
        )
        summary["tflite"] = {
            "path": check.path,
            "size_bytes": check.size_bytes,
            "max_abs_error": check.max_abs_error,
            "max_rel_error": check.max_rel_error,
            "quantization": config.quantization,
        }
        logging.info(
            "wrote %s (%s bytes, max |TFLite - Keras| = %.3g, %.3g of the largest output)",
            check.path,
            f"{check.size_bytes:,}",
            check.max_abs_error,
            check.max_rel_error,
        )
    if "report" in config.formats:
        report = tfc.report(_original(run, trained), trained)
        atomic_write_text(out(REPORT), report.to_json())
        atomic_write_text(out(REPORT_TEXT), report.table() + "\n")
        summary["report"] = report.totals()
        summary["report_table"] = report.table(only_changed=run is not None)
    atomic_write_text(out(SUMMARY), json.dumps(summary, indent=2, sort_keys=True))
    return summary
