"""What `train` and `compress` share: checking the inputs before anything runs, the
optimizer, and running the loop with checkpoints, TensorBoard and evaluation."""

import dataclasses

import keras
import tensorflow as tf
from absl import logging

from tfcompress.data.errors import SkippedRecords
from tfcompress.training import evaluation, inputs, loop, runs, tasks
from tfcompress.training.lr import PolyLR, StepLR
from tfcompress.training.optimizers import SGD


@dataclasses.dataclass(frozen=True)
class Plan:
    """A training run's resolved facts, all checked before any model is built."""

    task: str
    data: inputs.DataInfo
    test: inputs.DataInfo | None
    input_shape: tuple
    steps_per_epoch: int
    total_steps: int

    def resolved(self):
        return {
            "task": self.task,
            "input_shape": list(self.input_shape),
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
        }


def plan(config, context):
    """Checks `config` (a `TrainConfig`) against its data and devices; returns a `Plan`.

    Raises (naming the flag and value) for a missing train_data or test_data file, records
    of another task, a num_classes the manifest contradicts, a batch that does not split
    over the replicas.
    """
    model = config.model
    task = tasks.task_of_model(model.name)
    data = inputs.inspect(config.train_data, "train_data")
    inputs.check(data, task, model.name, model.num_classes)
    test = None
    if config.test_data:
        test = inputs.inspect(config.test_data, "test_data")
        inputs.check(test, task, model.name, model.num_classes)
    if config.batch_size % context.num_replicas:
        raise ValueError(
            f"batch_size={config.batch_size} (the global batch) does not split evenly over "
            f"{context.num_replicas} replicas."
        )
    steps = inputs.steps_per_epoch(data, config.batch_size, config.steps_per_epoch)
    return Plan(
        task=task,
        data=data,
        test=test,
        input_shape=inputs.input_size(data, model.height, model.width),
        steps_per_epoch=steps,
        total_steps=config.total_steps(steps),
    )


def make_optimizer(config, plan):
    """The SGD of a `TrainConfig` run (`plan`: its `Plan`) on its `learning_rate_of`."""
    return sgd(config, learning_rate_of(config, plan))


def learning_rate_of(config, plan):
    """The learning-rate schedule of a `TrainConfig` run: the step policy of
    `config.lr_boundaries` (epochs of `plan.steps_per_epoch` steps) and `lr_values` when
    given, else the poly policy over the run's `plan.total_steps`."""
    if config.lr_boundaries:
        boundaries = [int(round(b * plan.steps_per_epoch)) for b in config.lr_boundaries]
        return StepLR(boundaries, list(config.lr_values))
    return PolyLR(config.learning_rate, plan.total_steps, config.power)


def sgd(config, learning_rate):
    """SGD on `learning_rate` (a schedule) with `config`'s momentum and weight decay
    (`config.weight_decay_mode`: coupled, as the seeds, or decoupled)."""
    return SGD(
        learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay or None,
        weight_decay_mode=config.weight_decay_mode,
    )


def prepare_optimizer(model, optimizer, precision):
    """Compiles `model` with `optimizer` (callbacks read its step) and builds its slots so a
    checkpoint restores them; wraps it in a loss-scale optimizer for float16."""
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def skipped_records(skip_corrupt):
    """A fresh `SkippedRecords` when `skip_corrupt`, else None (bad records raise)."""
    return SkippedRecords() if skip_corrupt else None


def report_skipped(flag, skipped):
    """Logs what a reader with skip_corrupt left out of `flag`'s data; returns the JSON
    for the run's result (`{"num_skipped": n, "skipped": [...]}`), or None."""
    if skipped is None:
        return None
    log = logging.warning if skipped.count else logging.info
    log("%s: %s", flag, skipped.summary())
    return skipped.to_json()


def evaluator(model, config, plan_, context):
    """`fn(step) -> metrics` on test_data (chief only), or None. With `skip_corrupt`,
    `fn.skipped` is what the last evaluation skipped (each reads the data anew)."""
    if plan_.test is None or not context.is_chief:
        return None
    predict = evaluation.predict_function(model, config.devices.jit_compile)

    def evaluate(step=None):
        evaluate.skipped = skipped_records(config.skip_corrupt)
        dataset = inputs.eval_dataset(
            plan_.test,
            config.batch_size,
            plan_.input_shape,
            num_classes=config.model.num_classes,
            skip_corrupt=config.skip_corrupt,
            skipped=evaluate.skipped,
        )
        return evaluation.evaluate_model(
            model,
            dataset,
            plan_.task,
            config.model.num_classes,
            max_batches=config.eval_batches,
            predict=predict,
        )

    evaluate.skipped = None
    return evaluate


def evaluate_final(model, config, plan_, context, result, label="test"):
    """`result` with the end-of-run evaluation on test_data (`"test"`) and, with
    `skip_corrupt`, what it skipped (`result["skipped"]["test_data"]`)."""
    evaluate = evaluator(model, config, plan_, context)
    if evaluate is None:
        return result
    result = {**result, "test": evaluate()}
    logging.info("%s: %s", label, result["test"])
    skipped = report_skipped("test_data", evaluate.skipped)
    if skipped is not None:
        result["skipped"] = {**result.get("skipped", {}), "test_data": skipped}
    return result


def fit(model, optimizer, config, plan_, run, context, callbacks=(), phase=None, on_phase=None):
    """Trains `model` (built under the strategy, checkpoint already restored) to the end."""
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = run.manager(checkpoint, config.keep_checkpoints)
    writer = tf.summary.create_file_writer(run.file(runs.TENSORBOARD)) if context.is_chief else None
    start = loop.current_step(optimizer)
    if start:
        logging.info("Fast-forwarding the input pipeline by %d batches", start)
    skipped = skipped_records(config.skip_corrupt)
    dataset = inputs.train_dataset(
        plan_.data,
        config.batch_size,
        plan_.input_shape,
        config.seed,
        skip_batches=start,
        cache=config.cache_data,
        num_classes=config.model.num_classes,
        skip_corrupt=config.skip_corrupt,
        skipped=skipped,
    )
    trainer = loop.Trainer(
        model,
        optimizer,
        tasks.Objective(plan_.task, config.model.name, config.model.num_classes),
        plan_.task,
        context,
        jit_compile=config.devices.jit_compile,
    )
    metric_name = tasks.batch_metric_of(plan_.task)
    try:
        result = loop.train_loop(
            trainer,
            dataset,
            plan_.total_steps,
            callbacks=callbacks,
            manager=manager,
            writer=writer,
            skip_step=config.skip_step,
            save_step=config.save_step,
            progress=config.progress,
            evaluate=evaluator(model, config, plan_, context),
            eval_step=config.eval_step,
            phase=phase,
            on_phase=on_phase,
            metric_name=metric_name,
        )
    finally:
        if writer is not None:
            writer.close()
    # Counted since this process started (a resumed run does not re-read what it skipped).
    skipped = report_skipped("train_data", skipped)
    return result if skipped is None else {**result, "skipped": {"train_data": skipped}}
