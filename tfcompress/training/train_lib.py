"""`train(TrainConfig)`: train a model from scratch (or from `initialize`) with SGD and the
poly policy; the library side of `python -m tfcompress.scripts.train`."""

import keras
import tensorflow as tf
from absl import logging

from tfcompress.export import keras_file
from tfcompress.training import common, devices, paths, runs, weights

KIND = "train"


def train(config, context=None):
    """Runs (or resumes) the training run `config` describes; returns its result dict.

    Everything that can be wrong with the inputs (missing data, a num_classes the data
    contradicts, a run directory of another model, starting weights of another model) is
    raised before the first step, and before anything is written.

    Args:
        config: a `tfcompress.training.TrainConfig`.
        context: a `devices.Context` (default: `devices.setup(config.devices)`).
    """
    paths.check_run(config, runs.FILES)
    context = context or devices.setup(config.devices)
    keras.utils.set_random_seed(config.seed)
    plan = common.plan(config, context)
    record = runs.record_of(config)
    run = runs.RunDirectory(config.checkpoint, context)
    existing = run.check(KIND, record, runs.defaults_of(config))
    if existing is not None and (done := run.finished()) is not None:
        return done
    resuming = existing is not None and run.latest_checkpoint() is not None
    with context.strategy.scope():
        model = weights.build_model(config.model, plan.input_shape)
        optimizer = common.make_optimizer(config, plan)
        optimizer = common.prepare_optimizer(model, optimizer, config.devices.precision)
    if resuming:
        run.restore(tf.train.Checkpoint(model=model, optimizer=optimizer))
    elif config.initialize:
        weights.initialize(model, config.initialize)
    run.start(KIND, record, plan.resolved())
    logging.info(
        "Training %s (%s parameters) on %s: %d steps, %d per epoch",
        model.name,
        f"{model.count_params():,}",
        config.train_data,
        plan.total_steps,
        plan.steps_per_epoch,
    )
    result = common.fit(model, optimizer, config, plan, run, context)
    return _finish(model, config, plan, run, context, result)


def _finish(model, config, plan, run, context, result):
    result = {**result, "params": int(model.count_params())}
    if context.is_chief:
        keras_file(weights.plain_copy(model), run.file(runs.FINAL_MODEL))
        result = common.evaluate_final(model, config, plan, context, result)
    result["path"] = run.write_json(runs.RESULT_FILE, result)
    return result
