"""`compress(CompressConfig)`: wrap -> prune on a schedule while training -> strip, for any
method of `tfcompress.METHODS`, one-shot or iterative; the library side of
`python -m tfcompress.scripts.compress`.

The run writes the compact model (final.keras), the pruning plan (plan.json), the
before/after report (report.json, report.txt) and result.json into its directory.
"""

import keras
import tensorflow as tf
from absl import logging

import tfcompress as tfc
from tfcompress import pruners
from tfcompress.export import keras_file
from tfcompress.training import common, devices, methods, paths, runs, weights

KIND = "compress"
PLAN_FILE = "plan.json"
REPORT_FILE = "report.json"
REPORT_TEXT = "report.txt"
WRITES = (PLAN_FILE, REPORT_FILE, REPORT_TEXT)  # besides the files of every run


def compression_target(prune):
    """What `prune.compression` means: "channels" or "params" (`PruneConfig`)."""
    return prune.compression_target or methods.METHODS[prune.method].compression_target


def resolve_ratio(masked, prune):
    """The pruning ratio: `prune.ratio`; for a `prune.compression` N, 1 - 1/N (target
    "channels", and magnitude's fraction of weights) or the ratio reaching N times fewer
    parameters (target "params", measured with the method's criterion on the model as it
    is now)."""
    if prune.compression is None:
        return prune.ratio
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
    existing = run.check(KIND, record)
    if existing is not None and (done := run.finished()) is not None:
        return done
    resuming = existing is not None and run.latest_checkpoint() is not None
    model = weights.build_model(tc.model, plan.input_shape)
    if tc.initialize and not resuming:
        weights.initialize(model, tc.initialize)
    wrap_options = methods.wrap_options(pc)
    with context.strategy.scope():
        masked = tfc.wrap(model, pc.method, exclude=pc.exclude, **wrap_options)
        optimizer = common.make_optimizer(tc, plan.total_steps)
        if pc.method == "soft_topk":
            optimizer.exclude_from_weight_decay(var_names=["logits"])
        optimizer = common.prepare_optimizer(masked, optimizer, tc.devices.precision)
    if resuming:
        run.restore(tf.train.Checkpoint(model=masked, optimizer=optimizer))
    ratio = existing["resolved"]["ratio"] if existing else resolve_ratio(masked, pc)
    callback = methods.METHODS[pc.method].callback(pc, ratio, timeline)
    run.start(KIND, record, {**plan.resolved(), "ratio": ratio, "wrap": wrap_options})
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
    return _finish(model, masked, config, plan, run, context, result, ratio)


def _finish(model, masked, config, plan, run, context, result, ratio):
    digests = weights.mask_digests(masked)
    logging.info("mask sha256 per replica: %s", " ".join(d[:16] for d in digests))
    result = {**result, "ratio": ratio, "mask_digests": digests}
    if context.is_chief:
        compact = tfc.strip(masked)
        keras_file(compact, run.file(runs.FINAL_MODEL))
        plan_ = tfc.plan_from_masks(masked)
        run.write_json(PLAN_FILE, {**plan_.__dict__})
        report = tfc.report(model, compact)
        run.write_json(REPORT_FILE, {"totals": report.totals(), "layers": report.rows()})
        with open(run.file(REPORT_TEXT), "w") as f:
            f.write(report.table() + "\n")
        logging.info("\n%s", report.table(only_changed=True))
        result.update(report.totals())
        result = common.evaluate_final(
            compact, config.train, plan, context, result, label="test (compact model)"
        )
    result["path"] = run.write_json(runs.RESULT_FILE, result)
    return result
