"""The training loop: step-based, distributed, resumable.

`Trainer` owns the compiled step (`strategy.run` of forward, loss, gradients, SGD update);
`train_loop` runs steps `start..total-1`, calling the Keras callbacks that drive the masks
around every step, logging every `skip_step`, checkpointing every `save_step` and at the
end. The step is the optimizer's `iterations`, restored with the checkpoint, so a killed
run restarted with the same command continues exactly where its last checkpoint was.
"""

import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfcompress.callbacks.step_log import step_line
from tfcompress.callbacks.summaries import scalar
from tfcompress.pruners.stats import mask_stats
from tfcompress.training import tasks


class Trainer:
    """One SGD step of `model` under `context.strategy`.

    The loss of each replica is its batch mean (plus the model's regularization losses)
    divided by the number of replicas; the optimizer sums gradients over replicas, so
    every replica applies the gradient of the global mean.
    """

    def __init__(self, model, optimizer, objective, task, context, jit_compile=False):
        self.model = model
        self.optimizer = optimizer
        self.objective = objective
        self.task = tasks.TASKS[task]
        self.context = context
        self.jit_compile = jit_compile

    def step_function(self):
        """A new tf.function for one step (traced afresh, e.g. after the slimming penalty
        was switched off)."""
        model, optimizer, objective, task = self.model, self.optimizer, self.objective, self.task
        strategy = self.context.strategy
        replicas = float(strategy.num_replicas_in_sync)

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                outputs = model(x, training=True)
                loss = tf.cast(objective(y, outputs), tf.float32)
                penalties = [tf.cast(p, tf.float32) for p in model.losses]
                if penalties:
                    loss = loss + tf.add_n(penalties)
                loss = loss / replicas
                scaled = optimizer.scale_loss(loss)
            variables = model.trainable_variables
            grads = tape.gradient(scaled, variables)
            optimizer.apply_gradients(zip(grads, variables))
            metric = task.batch_metric(y, tf.cast(tasks.main_output(outputs), tf.float32))
            if metric is None:
                metric = tf.constant(float("nan"))
            return loss, tf.cast(metric, tf.float32) / replicas

        if self.jit_compile:
            replica_step = tf.function(replica_step, jit_compile=True)

        @tf.function
        def step(batch):
            x, y = batch
            loss, metric = strategy.run(replica_step, args=(x, y))
            return (
                strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, metric, axis=None),
            )

        return step


def current_step(optimizer):
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def learning_rate(optimizer):
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _progress_bar(total, enabled):
    if not enabled or not sys.stdout.isatty():
        return None
    return keras.utils.Progbar(total, stateful_metrics=["loss", "lr", "metric"], interval=0.5)


def train_loop(
    trainer,
    dataset,
    total,
    *,
    callbacks=(),
    manager=None,
    writer=None,
    skip_step=10,
    save_step=500,
    progress=True,
    evaluate=None,
    eval_step=0,
    phase=None,
    on_phase=None,
    metric_name="metric",
):
    """Runs steps from the optimizer's current step up to `total` (exclusive).

    Args:
        trainer: a `Trainer`.
        dataset: the training `tf.data.Dataset`, already positioned at the current step.
        total: the step count at which training ends.
        callbacks: Keras callbacks (mask schedules); they get `on_train_begin`,
            `on_train_batch_begin/end` and `on_train_end`.
        manager: a `tf.train.CheckpointManager` (saves every `save_step` and at the end).
        writer: a `tf.summary` writer (TensorBoard scalars every `skip_step`), or None.
        evaluate: optional `fn(step) -> dict` run every `eval_step` steps.
        phase: optional `fn(step) -> hashable`; when it changes, `on_phase(value)` runs
            and the step function is traced again.
        metric_name: what the training metric is (accuracy, pixel_accuracy ...), None if
            the task has no per-batch metric (detection).

    Returns:
        `{"steps": final step, "loss": last loss, metric_name: last metric, "seconds": ...}`
        (no metric key when `metric_name` is None).
    """
    model, optimizer = trainer.model, trainer.optimizer
    strategy = trainer.context.strategy
    start = current_step(optimizer)
    cbs = keras.callbacks.CallbackList(list(callbacks), model=model)
    cbs.set_params({"steps": None, "epochs": 1, "verbose": 0})
    iterator = None  # made on the first step: a finished run reads no data
    bar = _progress_bar(total, progress)
    current_phase, step_fn = object(), None
    loss = metric = float("nan")
    began, window_start, window_steps = time.monotonic(), time.monotonic(), 0
    logging.info("Training steps %d..%d", start, total)
    cbs.on_train_begin()
    step = start
    while step < total:
        if phase is not None and phase(step) != current_phase:
            current_phase = phase(step)
            if on_phase is not None:
                on_phase(current_phase)
            step_fn = None
        if step_fn is None:
            step_fn = trainer.step_function()
        if iterator is None:
            iterator = iter(strategy.experimental_distribute_dataset(dataset))
        cbs.on_train_batch_begin(step)
        loss_t, metric_t = step_fn(next(iterator))
        loss, metric = float(loss_t), float(metric_t)
        if not np.isfinite(loss):
            raise FloatingPointError(f"The loss is {loss} at step {step}: training diverged.")
        cbs.on_train_batch_end(step, {"loss": loss})
        step += 1
        window_steps += 1
        if bar is not None:
            bar.update(step, [("loss", loss), ("lr", learning_rate(optimizer)), ("metric", metric)])
        if step % skip_step == 0 or step == total:
            rate = window_steps / max(time.monotonic() - window_start, 1e-9)
            _log_step(step, total, loss, metric, metric_name, optimizer, model, rate, writer)
            window_start, window_steps = time.monotonic(), 0
        if evaluate is not None and eval_step and step % eval_step == 0 and step < total:
            _log_eval(step, evaluate(step), writer)
        if manager is not None and (step % save_step == 0 or step == total):
            path = manager.save(checkpoint_number=step)
            logging.info("step %d: saved %s", step, path)
    cbs.on_train_end()
    finite = lambda v: v if np.isfinite(v) else None  # noqa: E731 - JSON has no NaN
    result = {"steps": step, "loss": finite(loss), "seconds": time.monotonic() - began}
    if metric_name is not None:
        result[metric_name] = finite(metric)
    return result


def _log_step(step, total, loss, metric, metric_name, optimizer, model, rate, writer):
    lr = learning_rate(optimizer)
    stats = mask_stats(model)
    values = {"loss": loss, **({metric_name: metric} if metric_name else {})}
    logging.info(step_line(step, total, values, lr, rate, stats))
    if writer is None:
        return
    with writer.as_default():
        scalar("train/loss", loss, step)
        scalar("train/learning_rate", lr, step)
        if np.isfinite(metric):
            scalar(f"train/{metric_name}", metric, step)
        for name, value in stats.items():
            scalar(f"pruning/{name}", value, step)
    writer.flush()


def _log_eval(step, results, writer):
    logging.info(
        "step %d: eval %s",
        step,
        "  ".join(f"{k} {v:.4f}" for k, v in results.items() if k not in ("examples", "seconds")),
    )
    if writer is None:
        return
    with writer.as_default():
        for name, value in results.items():
            if name not in ("examples", "seconds"):
                scalar(f"eval/{name}", value, step)
    writer.flush()
