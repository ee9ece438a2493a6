"""`evaluate(EvalConfig)`: a run directory or `.keras` file on test data, optionally with a
one-shot pruning sweep (accuracy against parameters without fine-tuning); the library side
of `python -m tfcompress.scripts.evaluate`."""

import json
import os

from absl import logging

import tfcompress as tfc
from tfcompress import pruners
from tfcompress.atomic import atomic_write_text
from tfcompress.metrics import count_params
from tfcompress.training import common, devices, evaluation, inputs, paths, tasks, weights


def _output_classes(model):
    output = model.outputs[0]
    return int(output.shape[-1])


def _check(config, model, run, data):
    """Raises if the flags, the model and the data disagree."""
    name = run and weights.runs.model_record(run["config"])["name"]
    if run is None and model.name in tfc.models.REGISTRY:  # a .keras file of a zoo model
        name = model.name  # (the zoo names its models; strip keeps the name)
    if config.model is not None and name is not None and name != config.model:
        raise ValueError(
            f"checkpoint={config.checkpoint!r} holds model {name!r}, not model={config.model!r}."
        )
    if config.model is not None and name is None:
        logging.warning(
            "checkpoint=%r holds model %r, not one of the zoo's: model=%r is not checked "
            "against it, only read for the task (%s).", config.checkpoint, model.name,
            config.model, tasks.task_of_model(config.model))
    task = run["resolved"]["task"] if run else None
    num_classes = run and weights.runs.model_record(run["config"])["num_classes"]
    num_classes = num_classes or config.num_classes
    if num_classes is None:
        if task in (None, tasks.CLASSIFICATION, tasks.SEGMENTATION):
            num_classes = _output_classes(model)
        else:
            raise ValueError(
                f"checkpoint={config.checkpoint!r} is a detection model file: give num_classes."
            )
    if config.num_classes is not None and config.num_classes != num_classes:
        raise ValueError(
            f"num_classes={config.num_classes} does not match checkpoint="
            f"{config.checkpoint!r}, which was trained for {num_classes} classes."
        )
    size = tuple(model.inputs[0].shape[1:3])
    for flag, expected, actual in (
        ("height", config.height, size[0]),
        ("width", config.width, size[1]),
    ):
        if expected is not None and expected != actual:
            raise ValueError(
                f"{flag}={expected} does not match checkpoint={config.checkpoint!r}, whose "
                f"model takes {size[0]}x{size[1]} inputs."
            )
    task = task or (tasks.task_of_model(config.model) if config.model else data.task)
    inputs.check(data, task, name or config.model or model.name, num_classes)
    return task, num_classes


def _sweep(model, config, data, size, task, num_classes, recalibration_skipped):
    recalibration = None
    if config.recalibrate_data:
        info = inputs.inspect(config.recalibrate_data, "recalibrate_data")
        recalibration = _dataset(config, info, size, num_classes, recalibration_skipped)
    points = []
    for ratio in config.prune_ratios:
        masked = tfc.wrap(model, config.method)
        tfc.prune(masked, ratio, method=config.method)
        compact = tfc.strip(masked)
        if recalibration is not None and pruners.batchnorm.batch_norm_layers(compact):
            pruners.recalibrate_bn(compact, recalibration, steps=config.recalibrate_batches)
        point_skipped = common.skipped_records(config.skip_corrupt)
        metrics = evaluation.evaluate_model(
            compact,
            _dataset(config, data, size, num_classes, point_skipped),
            task,
            num_classes,
            max_batches=config.eval_batches,
        )
        nonzero = tfc.report(model, compact).totals()["nonzero_params_after"]
        points.append({"ratio": ratio, "nonzero_params": int(nonzero),
                       "params": int(count_params(compact)), **metrics})
        if point_skipped is not None:  # the records test_data's count names, read again
            points[-1]["num_skipped"] = point_skipped.count
        logging.info("ratio %.2f: %s nonzero parameters, %s", ratio, f"{nonzero:,}", metrics)
    return points


def _dataset(config, info, size, num_classes, skipped):
    """`info`'s records once; with `skip_corrupt` bad ones are counted in `skipped`."""
    return inputs.eval_dataset(
        info,
        config.batch_size,
        size,
        num_classes=num_classes,
        skip_corrupt=config.skip_corrupt,
        skipped=skipped,
    )


def evaluate(config):
    """Evaluates `config.checkpoint` on `config.test_data`; returns (and optionally writes
    to `config.output`) `{"metrics": ..., "params": ..., "sweep": [...]}`."""
    paths.input_path("checkpoint", config.checkpoint, paths.TRAINED)
    paths.input_pattern("test_data", config.test_data)
    paths.input_pattern("recalibrate_data", config.recalibrate_data)
    if config.output:
        paths.output_file("output", config.output)
    devices.setup(config.devices)
    data = inputs.inspect(config.test_data, "test_data")
    model, run = weights.load_trained(config.checkpoint)
    task, num_classes = _check(config, model, run, data)
    size = tuple(model.inputs[0].shape[1:])
    if tuple(size[:2]) != tuple(data.image_shape[:2]):
        logging.info("Resizing test images %s to the model input %s", data.image_shape, size)
    skipped = {
        flag: common.skipped_records(config.skip_corrupt)
        for flag in ("test_data", "recalibrate_data")
        if flag == "test_data" or config.recalibrate_data
    }
    metrics = evaluation.evaluate_model(
        model,
        _dataset(config, data, size, num_classes, skipped["test_data"]),
        task,
        num_classes,
        max_batches=config.eval_batches,
        predict=evaluation.predict_function(model, config.devices.jit_compile),
    )
    logging.info("%s on %s: %s", config.checkpoint, config.test_data, metrics)
    result = {"checkpoint": config.checkpoint, "params": count_params(model), "metrics": metrics}
    if config.prune_ratios:
        result["sweep"] = _sweep(
            model, config, data, size, task, num_classes, skipped.get("recalibrate_data")
        )
    if config.skip_corrupt:
        result["skipped"] = {flag: common.report_skipped(flag, s) for flag, s in skipped.items()}
    if config.output:
        os.makedirs(os.path.dirname(os.path.abspath(config.output)), exist_ok=True)
        atomic_write_text(config.output, json.dumps(result, indent=2, sort_keys=True))
    return result
