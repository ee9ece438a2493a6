"""`compress(CompressConfig)`: wrap -> prune on a schedule while training -> strip, for any
method of `tfcompress.METHODS`, one-shot or iterative; the library side of
`python -m tfcompress.scripts.compress`.

The run writes the compact model (final.keras), the pruning plan (plan.json), the
before/after report (report.json, report.txt) and result.json into its directory. With
compression_target "latency" the cost table it prunes to is kept in run.json, and
result.json's "latency" holds the target, the prediction and the measured latency of the
original and compact models.
"""

import math
import time

import keras
import tensorflow as tf
from absl import logging

import tfcompress as tfc
from tfcompress import pruners
from tfcompress.export import keras_file
from tfcompress.graph import DependencyGraph
from tfcompress.latency import CostTable
from tfcompress.latency.measure import paired_ms, served_form
from tfcompress.training import common, devices, methods, paths, runs, weights

KIND = "compress"
PLAN_FILE = "plan.json"
REPORT_FILE = "report.json"
REPORT_TEXT = "report.txt"
WRITES = (PLAN_FILE, REPORT_FILE, REPORT_TEXT)  # besides the files of every run


def compression_target(prune):
    """What `prune.compression` means: "channels", "params" or "latency" (`PruneConfig`)."""
    return prune.compression_target or methods.METHODS[prune.method].compression_target


def resolve_ratio(masked, prune):
    """The pruning ratio: `prune.ratio`; for a `prune.compression` N, 1 - 1/N (target
    "channels", and magnitude's fraction of weights) or the ratio reaching N times fewer
    parameters (target "params", measured with the method's criterion on the model as it
    is now)."""
    if prune.compression is None:
        return prune.ratio
    if compression_target(prune) == "latency":
        ratio = 1.0 - 1.0 / prune.compression
        logging.info("compression=%s: %.4f of the predicted latency to remove",
                     prune.compression, ratio)
        return ratio
    if prune.method == "magnitude" or compression_target(prune) == "channels":
        ratio = 1.0 - 1.0 / prune.compression
        logging.info("compression=%s: ratio %.4f of every layer", prune.compression, ratio)
        return ratio
    method = methods.METHODS[prune.method]
    ratio, params = pruners.ratio_for_compression(
        masked,
        prune.compression,
        criterion=method.criterion,
        options=methods.ranking_options(prune),
    )
    logging.info(
        "compression=%s: ratio %.4f leaves %s parameters (measured with %s)",
        prune.compression,
        ratio,
        f"{params:,}",
        method.criterion,
    )
    return float(ratio)


def latency_table(model, prune, existing, context, verbose=1):
    """The `CostTable` a latency target prunes to (None for the other targets): the one
    kept in run.json (`existing`: a restart prunes to the same table), else measured on
    this machine (or read from its cache, `tfcompress.latency.default_cache_dir`), with
    `measure_cost_table`'s progress output (`verbose`)."""
    if prune.compression is None or compression_target(prune) != "latency":
        return None
    if existing and "cost_table" in existing["resolved"]:
        return CostTable.from_dict(existing["resolved"]["cost_table"])
    if context.task_type is not None:
        raise ValueError(
            "compression_target='latency' measures a cost table on the machine it runs on; "
            "the workers of a multi-worker run would each measure their own and prune "
            "differently. Run it with strategy 'default' or 'mirrored'."
        )
    logging.info(
        "Cost table of %s (batch %d, runtime %s%s): read from this machine's cache, or "
        "measured layer by layer (minutes for a large model) ...", model.name,
        prune.latency_batch_size, prune.latency_runtime,
        ", BatchNorm folded" if prune.latency_fold_batchnorm else "")
    start = time.perf_counter()
    table = tfc.latency.measure_cost_table(
        model, prune.latency_batch_size, graph=DependencyGraph(model, exclude=prune.exclude),
        runtime=prune.latency_runtime, fold_batchnorm=prune.latency_fold_batchnorm,
        verbose=verbose)
    logging.info("Cost table ready (%.1f s): %.3f ms per batch predicted for the original",
                 time.perf_counter() - start, table.full_ms())
    return table


def check_latency_target(masked, prune, table):
    """Raises before training when 1/N of the predicted latency is below what cutting
    channels can reach (planned once with the method's budget criterion on the model as
    it is now), naming the largest compression that can be reached."""
    names = list(tfc.plan_from_masks(masked).keep)  # the mask layers
    only = methods.latency_only(prune)
    if only is not None and not any(only(n) for n in names):
        raise ValueError(
            f"latency_only={prune.latency_only!r} matches none of the {len(names)} mask "
            f"layers of model '{masked.name}' (e.g. {names[:4]}): nothing could be cut.")
    method = methods.METHODS[prune.method]
    options = methods.ranking_options(prune)
    try:
        budget = pruners.plan_for_latency(
            masked, table, target_latency=1.0 / prune.compression, criterion=method.criterion,
            min_channels=options.min_channels, normalize=options.normalize, only=only)
    except pruners.UnreachableTarget as e:
        original = table.full_ms()
        raise ValueError(
            f"compression={prune.compression:g} with compression_target='latency': the "
            f"target {original / prune.compression:.4g} ms (1/{prune.compression:g} of the "
            f"predicted {original:.4g} ms per batch of {prune.latency_batch_size}) is below "
            f"the fastest the cost table predicts for model '{masked.name}' pruned, "
            f"{e.floor_ms:.4g} ms: the largest compression it can reach is "
            f"{math.floor(100 * original / e.floor_ms) / 100:.2f}. Lower compression (or "
            "prune at a larger latency_batch_size, where the fixed per-call cost weighs "
            "less)."
        ) from e
    logging.info("Latency budget: planned now, %s", budget.summary())


def latency_result(model, masked, compact, table, prune):
    """result.json's "latency": the target, the table's prediction for the masks, and
    the original and compact models timed in turns as they are served."""
    predicted, original = pruners.predict_masked(masked, table)
    served = served_form(prune.latency_fold_batchnorm)
    measured_original, measured = paired_ms(
        [served(model), served(compact)], prune.latency_batch_size,
        runtime=prune.latency_runtime)
    result = {
        "runtime": prune.latency_runtime,
        "batch_size": prune.latency_batch_size,
        "fold_batchnorm": prune.latency_fold_batchnorm,
        "target_ms": original / prune.compression,
        "predicted_ms": predicted,
        "predicted_original_ms": original,
        "measured_ms": measured,
        "measured_original_ms": measured_original,
        "measured_speedup": measured_original / measured,
    }
    logging.info(
        "Latency (batch %d, %s): target %.3f ms, predicted %.3f of %.3f ms; measured %.3f "
        "of %.3f ms (%.2fx faster)", prune.latency_batch_size, prune.latency_runtime,
        result["target_ms"], predicted, original, measured, measured_original,
        result["measured_speedup"])
    return result


def compress(config, context=None):
    """Runs (or resumes) the compression run `config` describes; returns its result dict.

    Inputs are checked before the first step and before anything is written (see
    `tfcompress.training.train`). On a restart the ratio resolved at the first start
    (run.json) is reused, so a resumed run follows exactly the same schedule.
    """
    tc, pc = config.train, config.prune
    paths.check_run(tc, {**runs.FILES, **dict.fromkeys(WRITES, paths.FILE)})
    context = context or devices.setup(tc.devices)
    keras.utils.set_random_seed(tc.seed)
    plan = common.plan(tc, context)
    timeline = methods.Timeline.of(pc, plan.steps_per_epoch, plan.total_steps)
    record = runs.record_of(config)
    run = runs.RunDirectory(tc.checkpoint, context)
    existing = run.check(KIND, record, runs.defaults_of(config), methods.resolve_record)
    if existing is not None and (done := run.finished()) is not None:
        return done
    resuming = existing is not None and run.latest_checkpoint() is not None
    model = weights.build_model(tc.model, plan.input_shape)
    if tc.initialize and not resuming:
        weights.initialize(model, tc.initialize)
    wrap_options = methods.wrap_options(pc)
    with context.strategy.scope():
        masked = tfc.wrap(model, pc.method, exclude=pc.exclude, **wrap_options)
        optimizer = common.make_optimizer(tc, plan)
        if pc.method == "soft_topk":
            optimizer.exclude_from_weight_decay(var_names=["logits"])
        optimizer = common.prepare_optimizer(masked, optimizer, tc.devices.precision)
    if resuming:
        run.restore(tf.train.Checkpoint(model=masked, optimizer=optimizer))
    ratio = existing["resolved"]["ratio"] if existing else resolve_ratio(masked, pc)
    table = latency_table(model, pc, existing, context, verbose=1 if tc.progress else 2)
    if table is not None and not existing:
        check_latency_target(masked, pc, table)
    callback = methods.METHODS[pc.method].callback(pc, ratio, timeline, cost_table=table)
    resolved = {**plan.resolved(), "ratio": ratio, "wrap": wrap_options}
    if table is not None:
        resolved["cost_table"] = table.to_dict()
    run.start(KIND, record, resolved)
    logging.info(
        "Compressing %s with %s to ratio %s: pruning steps %d..%d of %d (%d per epoch)",
        model.name,
        pc.method,
        ratio if pc.quality is None else f"quality {pc.quality}",
        timeline.begin,
        timeline.end,
        plan.total_steps,
        plan.steps_per_epoch,
    )

    def on_phase(penalty_on):
        if not penalty_on:
            methods.disable_penalties(masked)
            if methods.METHODS[pc.method].penalty:
                logging.info("Sparsity penalty off: refining the pruned model")

    result = common.fit(
        masked,
        optimizer,
        tc,
        plan,
        run,
        context,
        callbacks=[callback],
        phase=lambda step: methods.penalty_active(pc, timeline, step),
        on_phase=on_phase,
    )
    return _finish(model, masked, config, plan, run, context, result, ratio, table)


def _finish(model, masked, config, plan, run, context, result, ratio, table=None):
    digests = weights.mask_digests(masked)
    logging.info("mask sha256 per replica: %s", " ".join(d[:16] for d in digests))
    result = {**result, "ratio": ratio, "mask_digests": digests}
    if context.is_chief:
        compact = tfc.strip(masked)
        keras_file(compact, run.file(runs.FINAL_MODEL))
        plan_ = tfc.plan_from_masks(masked)
        run.write_json(PLAN_FILE, {**plan_.__dict__})
        # the original architecture, each parameter counted (as export's report does)
        report = tfc.report(weights.counted_original(model), compact)
        run.write_json(REPORT_FILE, {"totals": report.totals(), "layers": report.rows()})
        with open(run.file(REPORT_TEXT), "w") as f:
            f.write(report.table() + "\n")
        logging.info("\n%s", report.table(only_changed=True))
        result.update(report.totals())
        if table is not None:
            result["latency"] = latency_result(model, masked, compact, table, config.prune)
        result = common.evaluate_final(
            compact, config.train, plan, context, result, label="test (compact model)"
        )
    result["path"] = run.write_json(runs.RESULT_FILE, result)
    return result
