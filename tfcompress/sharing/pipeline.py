"""Deep Compression's three stages as one call: prune -> retrain -> share -> retrain -> file.

    import tfcompress.sharing as sharing
    result = sharing.deep_compress(
        dense, (x_train, y_train), val_data=(x_test, y_test),
        densities={"fc1": 0.08, "fc2": 0.09, "logits": 0.26},  # or quality=1.0 (Han)
        prune_steps=3, prune_epochs=2, share_epochs=2, output_path="out/lenet.tfdc")
    for stage in result.stages:
        print(stage.name, stage.accuracy, stage.ratio)

Policy (which density each pruning step reaches) is `density_schedule`; the math of one
step is `prune_to_densities` (or `pruners.prune_weights(quality=)`, Han's
`quality * std` rule); `measure` measures a stage; `deep_compress` drives the stages.
"""

import dataclasses
import gzip
import os
import tempfile
import time

import keras
import numpy as np
from absl import logging

from tfcompress.callbacks.step_log import StepLog
from tfcompress.graph.dependency import resolve_exclude
from tfcompress.importance import magnitude_mask
from tfcompress.numbers import check_int, is_number
from tfcompress.pruners.weights import prune_weights, weight_masks
from tfcompress.sharing.model import layer_name, resolve_bits, share_weights, strip_shared
from tfcompress.sharing.stages import (
    RECORDS,
    StageFolder,
    check_file,
    file_sha256,
    weights_sha256,
)

STAGES = ("dense", "pruned", "shared", "file")
# Why deep_compress refuses a layer Keras cannot re-create from its config.
_COPIES = (
    "deep_compress does to copy each stage's model, keep it in `workdir` and decode the "
    "file it writes"
)


@dataclasses.dataclass(frozen=True)
class Stage:
    """What one stage left: its accuracy (None without val data) and measured sizes.

    `bytes` is the stage's storage: dense float32 (`dense`), gzip of the float32 `.keras`
    of the plain model (`pruned`, `shared`: zeros and repeated values compress), the
    compressed file (`file`). `ratio` = the dense model's float32 bytes / `bytes`.
    `file_sha256` (`file` only) is the SHA-256 of the file as written, which a resumed
    run compares with the file it finds (`stages.check_file`).
    """

    name: str
    accuracy: float
    metrics: dict
    params: int
    nonzero: int
    dense_bytes: int
    keras_gzip_bytes: int
    file_bytes: int
    bytes: int
    ratio: float
    seconds: float
    file_sha256: str | None = None  # (records written before it was kept have none)

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Result:
    """`stages` (one `Stage` per stage, in order), the trained shared-weights `model`, the
    `pruned` model (its `WeightMask` layers, as left after retraining) and the file's
    `report` (`tfcompress.codec.Report`)."""

    stages: list
    model: keras.Model
    pruned: keras.Model
    report: object

    def as_dict(self):
        return {"stages": [s.as_dict() for s in self.stages], "report": self.report.as_dict()}


def check_density(density, what="density"):
    """`density` as a float; raises naming it unless it is a number in (0, 1]."""
    if not is_number(density) or not 0 < density <= 1:
        raise ValueError(f"{what} must be a number in (0, 1]. Received: {what}={density!r}")
    return float(density)


def check_quality(quality):
    """`quality` as a float; raises naming it unless it is a number > 0."""
    if not is_number(quality) or not quality > 0:
        raise ValueError(f"quality must be a number > 0. Received: quality={quality!r}")
    return float(quality)


def _check_count(value, name, minimum):
    check_int(name, value, minimum=minimum)
    return int(value)


def check_output_path(output_path):
    """Raises naming `output_path` unless a file can be written there (`training.paths`:
    not a folder, no file where its folders are, a writable folder), before any training."""
    from tfcompress.training import paths  # (training imports sharing: imported on use)

    if not isinstance(output_path, (str, os.PathLike)) or not os.fspath(output_path):
        raise ValueError(f"output_path must be a file path. Received: output_path={output_path!r}")
    try:
        paths.output_file("output_path", os.fspath(output_path))
    except OSError as e:
        raise ValueError(str(e)) from e
    return output_path


def _metric_list(metrics):
    """`metrics` as `compile` takes them: a list or tuple as a list, a dict (per output) as
    a copy, None as none, and anything else (a name, as "accuracy", or a metric) as one."""
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        return dict(metrics)
    if isinstance(metrics, (list, tuple)):
        return list(metrics)
    return [metrics]


def resolve_densities(masked, densities, exclude=()):
    """`{pruned layer name: density}` for every `WeightMask` of `masked`: a float applies
    to all, a dict to the layers it names (the others keep every weight). A dict entry
    for a layer of `exclude` (which `masked` was wrapped with) is refused, saying so."""
    names = [wm.layer.name for wm in weight_masks(masked)]
    if not isinstance(densities, dict):
        density = check_density(densities, "densities")
        return {name: density for name in names}
    excluded = sorted(n for n in densities if n in exclude)
    if excluded:
        raise ValueError(
            f"densities names layers that exclude leaves unpruned: {excluded} (exclude keeps "
            "a layer out of both pruning and weight sharing). Received: "
            f"densities={densities}, exclude={list(exclude)}"
        )
    unknown = sorted(set(densities) - set(names))
    if unknown:
        raise ValueError(
            f"densities names no prunable layer of model '{masked.name}': {unknown}. Its "
            f"prunable layers are {names}. Received: densities={densities}"
        )
    return {
        name: check_density(densities[name], f"densities[{name!r}]") if name in densities else 1.0
        for name in names
    }


def density_schedule(density, steps):
    """The density each of `steps` pruning steps reaches: geometric from 1 to `density`
    (each step removes the same fraction of the surviving weights, as Han's iterations)."""
    return [float(density ** ((i + 1) / steps)) for i in range(steps)]


def prune_to_densities(masked, densities):
    """One pruning step: each `WeightMask` layer keeps its `densities[name]` fraction of
    weights largest in magnitude; weights already masked stay masked (they rank lowest).
    Masked weights are set to zero. Returns `{layer name: achieved density}`."""
    achieved = {}
    for wm in weight_masks(masked):
        density = densities[wm.layer.name]
        kept = total = 0
        for var in wm.layer.weights:
            if var.name not in wm.masks:
                continue
            value, old = np.asarray(var), wm.mask_values(var.name)
            ranked = np.where(old > 0.5, np.abs(value), -1.0) + 1.0
            mask = magnitude_mask(ranked, 1.0 - density)
            wm.masks[var.name].assign(mask)
            var.assign(value * mask)
            kept, total = kept + int(mask.sum()), total + mask.size
        achieved[wm.layer.name] = kept / max(1, total)
    return achieved


def keras_gzip_bytes(plain):
    """Bytes of gzip -9 of `plain`'s `.keras` file: architecture and float32 weights, no
    optimizer state (a `.keras` of a compiled, trained model holds Adam's two slots too)."""
    copy = keras.models.clone_model(plain)
    copy.set_weights(plain.get_weights())
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        copy.save(path)
        with open(path, "rb") as f:
            return len(gzip.compress(f.read(), compresslevel=9))


def _fit(model, data, stage, log_every, log_dir, **kwargs):
    """`model.fit` on `data()`; with `log_every`, a `StepLog` of `stage` added to the
    callbacks."""
    if log_every is not None:
        kwargs["callbacks"] = [*kwargs["callbacks"], StepLog(log_every, stage, log_dir)]
    data = data()
    if isinstance(data, tuple):
        return model.fit(*data, **kwargs)
    return model.fit(data, shuffle=False, **kwargs)  # a dataset comes shuffled or not


def _once(data):
    """A function returning `data`, or what the function `data` returns (called on the
    first call only). `deep_compress` makes one per stage: each stage builds its own
    dataset, so its data order depends on that stage alone (a reshuffling dataset starts
    each iteration in another order), not on how many stages ran before in this process."""
    if not callable(data):
        return lambda: data
    made = []

    def get():
        if not made:
            made.append(data())
        return made[0]

    return get


def _evaluate(model, data, batch_size):
    if data is None:
        return {}
    if isinstance(data, tuple):
        out = model.evaluate(*data, batch_size=batch_size, verbose=0, return_dict=True)
    else:
        out = model.evaluate(data, verbose=0, return_dict=True)
    return {k: float(v) for k, v in out.items()}


def measure(
    name, plain, evaluated, *, val_data, dense_bytes, file_bytes=None, file_sha256=None,
    batch_size=None, started=None,
):  # fmt: skip
    """The `Stage` record of `plain` (a model of plain layers holding the stage's weights);
    `evaluated` is the compiled model whose metrics on `val_data` are the stage's."""
    values = [np.asarray(w) for w in plain.weights]
    params = int(sum(v.size for v in values))
    metrics = _evaluate(evaluated, val_data, batch_size)
    keras_gzip = keras_gzip_bytes(plain)
    if name == "dense":
        stored = dense_bytes
    elif file_bytes is not None:
        stored = file_bytes
    else:
        stored = keras_gzip
    return Stage(
        name=name,
        accuracy=metrics.get("accuracy"),
        metrics=metrics,
        params=params,
        nonzero=int(sum(np.count_nonzero(v) for v in values)),
        dense_bytes=dense_bytes,
        keras_gzip_bytes=keras_gzip,
        file_bytes=file_bytes,
        bytes=int(stored),
        ratio=dense_bytes / max(1, stored),
        seconds=0.0 if started is None else time.time() - started,
        file_sha256=file_sha256,
    )


def log_stage(log_dir, index, stage):
    """TensorBoard scalars of one stage under `deep_compression/` (step = its index)."""
    import tensorflow as tf  # the summary writer is TensorFlow's (an edge)

    from tfcompress.callbacks.summaries import scalar

    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        values = {k: getattr(stage, k) for k in ("ratio", "bytes", "nonzero", "keras_gzip_bytes")}
        for key, value in {**values, **stage.metrics}.items():
            scalar(f"deep_compression/{key}", value, step=index)
    writer.flush()


def check_optimizer(optimizer, name="optimizer"):
    """Raises naming `optimizer` unless it is a name or a function (each stage compiles its
    own model, and a Keras optimizer is built for one set of variables)."""
    if not isinstance(optimizer, str) and not callable(optimizer):
        raise ValueError(
            f"{name} must be an optimizer name or a function returning a new optimizer "
            f"(each stage trains other variables). Received: {name}={optimizer!r}"
        )
    return optimizer


def _describe(optimizer):
    """An optimizer argument as a settings entry: its name, or the function's."""
    if isinstance(optimizer, str):
        return optimizer
    return f"{getattr(optimizer, '__module__', '')}.{getattr(optimizer, '__qualname__', '')}"


def _make_optimizer(optimizer):
    return optimizer() if callable(optimizer) else keras.optimizers.get(optimizer)


def _write_again(problem, folder):
    """Warns that a finished run's file is written again from the shared stage's model
    (`problem`: `check_file`'s sentence, the file is missing, damaged or not the one
    written; a resume serves a damaged or another file no more than a missing one); raises
    naming both files if that model is gone too (the file then stays as found)."""
    shared = folder.file("shared.keras")
    if not os.path.exists(shared):
        raise ValueError(
            f"deep_compress: {problem} {shared}, which would write it again, is missing too. "
            f"Delete {folder.file(RECORDS)} to run every stage again, or use another workdir."
        )
    logging.warning(
        "deep_compress: %s The file is written again from the shared stage's model (%s); "
        "no stage trains again.", problem, shared,
    )  # fmt: skip


def deep_compress(
    model,
    train_data,
    *,
    output_path,
    val_data=None,
    densities=None,
    quality=None,
    dense_epochs=0,
    prune_steps=1,
    prune_epochs=1,
    share_epochs=1,
    bits=None,
    index_bits=None,
    exclude=(),
    optimizer="adam",
    dense_optimizer=None,
    share_optimizer=None,
    loss=None,
    metrics=("accuracy",),
    batch_size=None,
    steps_per_epoch=None,
    compile_args=None,
    callbacks=(),
    log_dir=None,
    log_every=None,
    workdir=None,
    seed=None,
    verbose=1,
):
    """Runs Deep Compression (Han, Mao & Dally 2016) on a trained `model`.

    Stages: `dense` (the model as given, or trained `dense_epochs` more) -> `pruned`
    (`prune_steps` times: magnitude pruning then `prune_epochs` of retraining with the
    masks) -> `shared` (k-means weight sharing of the surviving weights, then
    `share_epochs` of centroid training) -> `file` (sparse, Huffman-coded file at
    `output_path`, decoded and evaluated). Each stage is measured (`Stage`): accuracy on
    `val_data`, non-zero parameters, dense float32 bytes, gzip of its float32 `.keras`, the
    file's bytes. Densities, bits and index bits are checked before any training, and
    so is every layer and operation: each must be re-creatable from its config.

    Args:
        model: a built functional or Sequential model of plain layers (left untouched).
        train_data: what `model.fit` takes: a dataset of (x, y) batches (endless: give
            `steps_per_epoch`), or an (x, y) tuple of arrays (with `batch_size`); or a
            function returning one, called as each stage starts training (a resumed run
            with no training left never builds it). Give a shuffled dataset as a
            function: each stage then iterates a dataset of its own, while one dataset
            object reshuffles on each stage's new iteration, so its order would depend on
            the stages run before in the same process.
        output_path: where the compressed file is written (atomically); a folder, or a
            path below a file, is refused before any training.
        val_data: a finite dataset of (x, y) batches or an (x, y) tuple, to measure each
            stage; optional.
        densities: the fraction in (0, 1] of weights each layer keeps after pruning: a
            float for every prunable layer or `{layer name: density}` (the paper's
            per-layer tables; layers not named are not pruned). Or give
        quality: Han's threshold: each step masks `|w| <= quality * std(w)` per layer
            (std of the weights still unmasked; so each step prunes further).
        dense_epochs: epochs of training of (a copy of) `model` before it is measured.
        prune_steps: pruning iterations, each followed by `prune_epochs` of retraining
            (with `densities`, the densities are reached geometrically).
        bits: passed to `share_weights` (None: conv 8 bits, dense 5 bits).
        exclude: layers kept out of both stages (a nested model's name stands for every
            layer inside it): not pruned (`wrap`'s exclude) and not shared
            (`share_weights`' exclude), their weights stay float as trained. A
            `densities` or `bits` entry naming one is refused.
        index_bits: passed to `codec.encode` (None: conv 8 bits, dense 4 bits).
        optimizer: for the pruned retraining: a Keras optimizer name or a function
            returning a new optimizer (each stage compiles its own model).
        dense_optimizer, share_optimizer: the same for the dense training and the
            centroid training; default `optimizer`.
        loss: default sparse categorical cross-entropy on logits.
        metrics: a metric (or its name) or a list of them, compiled into each stage's
            model; "accuracy" gives `Stage.accuracy`.
        steps_per_epoch: passed to `model.fit` (batches that make an epoch).
        compile_args: more `model.compile` arguments for every stage's model (e.g.
            `{"run_eagerly": True}` for tiny models, `{"steps_per_execution": 8}`).
        callbacks: passed to every `model.fit` (e.g. `keras.callbacks.TensorBoard`).
        log_dir: if given, each stage's measurements as TensorBoard scalars (step = the
            stage's index in `STAGES`).
        log_every: if given, a log line (absl INFO) every this many training steps of
            each stage, and at its last: the stage, its step, loss, metrics and learning
            rate (`callbacks.StepLog`); with `log_dir`, also as TensorBoard scalars
            `train/<stage>/<metric>` at the stage's step.
        workdir: if given, each finished stage's record and model are kept there
            (`tfcompress.sharing.stages`); a call with the same arguments and folder
            resumes after the last finished stage, and one with other densities, bits,
            epochs, ... (or another architecture, or other weights: the SHA-256 of
            `model`'s weights as given) is refused, naming them.
        seed: if given, Keras' seeds are set to `seed + stage index` as each stage starts
            (a resumed run trains as an uninterrupted one; with `train_data` a function
            or arrays, see there).
        verbose: 0 silent; 1 one line per stage (and Keras' progress bars).

    Returns:
        `Result`: the list of `Stage` records, the shared-weights and pruned models and
        the file's `Report`.
    """
    from tfcompress import codec
    from tfcompress.codec.decoder import check_decodable
    from tfcompress.codec.encoder import resolve_index_bits
    from tfcompress.sharing.model import kind_of
    from tfcompress.surgery import strip, wrap

    if (densities is None) == (quality is None):
        raise ValueError(
            "Give exactly one of densities or quality. Received: "
            f"densities={densities!r}, quality={quality!r}"
        )
    if quality is not None:
        quality = check_quality(quality)
    dense_epochs = _check_count(dense_epochs, "dense_epochs", 0)
    prune_steps = _check_count(prune_steps, "prune_steps", 1)
    prune_epochs = _check_count(prune_epochs, "prune_epochs", 0)
    share_epochs = _check_count(share_epochs, "share_epochs", 0)
    check_output_path(output_path)
    loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    dense_optimizer = optimizer if dense_optimizer is None else dense_optimizer
    share_optimizer = optimizer if share_optimizer is None else share_optimizer
    check_optimizer(optimizer)
    check_optimizer(dense_optimizer, "dense_optimizer")
    check_optimizer(share_optimizer, "share_optimizer")
    compile_args = {"loss": loss, "metrics": _metric_list(metrics), **(compile_args or {})}
    fit_args = {"verbose": verbose, "callbacks": list(callbacks), "batch_size": batch_size}
    if log_every is not None:
        log_every = _check_count(log_every, "log_every", 1)
    fit_args.update(log_every=log_every, log_dir=log_dir)
    if steps_per_epoch is not None:
        fit_args["steps_per_epoch"] = _check_count(steps_per_epoch, "steps_per_epoch", 1)
    # densities, bits and index bits naming no layer (or out of range) fail before any work
    exclude = resolve_exclude(model, exclude)  # a nested model's name: its layers
    checked = wrap(model, method="magnitude", exclude=exclude)
    for stage_model in (model, checked):  # the stages' models and the file's architecture
        check_decodable(stage_model, _COPIES)
    chosen = resolve_bits(checked, bits, exclude)
    kinds = {layer_name(layer): kind_of(getattr(layer, "layer", layer)) for layer in checked.layers}
    chosen_index = resolve_index_bits({name: kinds[name] for name in chosen}, index_bits)
    targets = None
    if densities is not None:
        targets = resolve_densities(checked, densities, exclude)
        schedule = {name: density_schedule(d, prune_steps) for name, d in targets.items()}
    del checked
    settings = {  # what shapes the stages: a workdir made with others is refused
        "weight_shapes": [list(w.shape) for w in model.weights],  # (names: Keras's counters)
        "weights_sha256": weights_sha256(model),  # the weights as given: not another model's
        "densities": targets, "quality": quality, "bits": chosen, "index_bits": chosen_index,
        "exclude": sorted(exclude), "dense_epochs": dense_epochs, "prune_steps": prune_steps,
        "prune_epochs": prune_epochs, "share_epochs": share_epochs, "seed": seed,
        "batch_size": batch_size, "steps_per_epoch": steps_per_epoch,
        "optimizers": [_describe(o) for o in (dense_optimizer, optimizer, share_optimizer)],
    }
    folder = StageFolder(workdir)
    folder.check_settings(settings)
    done = folder.records()
    if len(done) == len(STAGES):  # finished: its file must read whole and be the one written
        report, problem = check_file(output_path, done)
        if problem is not None:
            done = done[:-1]  # removed, damaged or another: written again from shared.keras
            _write_again(problem, folder)
    stages = [Stage(**d) for d in done]

    def finished(name):
        index = STAGES.index(name)
        if index >= len(done):
            if seed is not None:
                keras.utils.set_random_seed(seed + index)
            return False
        if verbose:
            print(f"deep_compress: {name:6s} finished earlier ({folder.file(RECORDS)})")
        return True

    def record(stage, model=None):
        stages.append(stage)
        if log_dir is not None:
            log_stage(log_dir, len(stages) - 1, stage)
        folder.save([s.as_dict() for s in stages], stage.name, model, settings)
        if verbose:
            acc = "-" if stage.accuracy is None else f"{stage.accuracy:.4f}"
            print(
                f"deep_compress: {stage.name:6s} accuracy {acc}  nonzero {stage.nonzero:,}/"
                f"{stage.params:,}  {stage.bytes:,} B  ratio {stage.ratio:.1f}x  "
                f"({stage.seconds:.1f} s)",
                flush=True,
            )

    dense_bytes = 4 * int(sum(np.prod(w.shape) for w in model.weights))
    common = {"val_data": val_data, "dense_bytes": dense_bytes, "batch_size": batch_size}

    # dense: the model as given (trained dense_epochs more, if asked)
    if finished("dense"):
        dense = folder.load("dense") if dense_epochs else model
    else:
        started = time.time()
        dense = keras.models.clone_model(model)
        dense.set_weights(model.get_weights())
        dense.compile(optimizer=_make_optimizer(dense_optimizer), **compile_args)
        if dense_epochs:
            _fit(dense, _once(train_data), "dense", epochs=dense_epochs, **fit_args)
        record(measure("dense", dense, dense, started=started, **common), dense)

    # pruned: iterative magnitude pruning, retraining the survivors after each step
    if finished("pruned"):
        masked = folder.load("pruned")
    else:
        started = time.time()
        masked = wrap(dense, method="magnitude", exclude=exclude)
        masked.compile(optimizer=_make_optimizer(optimizer), **compile_args)
        data = _once(train_data)
        for step in range(prune_steps):
            if densities is not None:
                achieved = prune_to_densities(masked, {n: s[step] for n, s in schedule.items()})
            else:
                sparsity = prune_weights(masked, quality=quality, keep_pruned=True)
                achieved = {name: 1.0 - s for name, s in sparsity.items()}
            if verbose:
                kept = ", ".join(f"{n} {d:.3f}" for n, d in achieved.items())
                print(
                    f"deep_compress: prune step {step + 1}/{prune_steps}: kept {kept}", flush=True
                )
            if prune_epochs:
                _fit(masked, data, "pruned", epochs=prune_epochs, **fit_args)
        record(measure("pruned", strip(masked), masked, started=started, **common), masked)

    # shared: k-means over the survivors, then the centroids train
    if finished("shared"):
        shared = folder.load("shared")
    else:
        started = time.time()
        shared = share_weights(masked, bits, exclude=exclude)
        shared.compile(optimizer=_make_optimizer(share_optimizer), **compile_args)
        if share_epochs:
            _fit(shared, _once(train_data), "shared", epochs=share_epochs, **fit_args)
        record(measure("shared", strip_shared(shared), shared, started=started, **common), shared)

    # file: sparse + Huffman; the decoded model is what is measured
    if not finished("file"):  # else: `report`, the file read whole as the run resumed
        started = time.time()
        report = codec.encode(shared, output_path, index_bits=index_bits)
        digest = file_sha256(output_path)  # what a resume finds there, if it is this file
        decoded = codec.decode(output_path)
        decoded.compile(**compile_args)
        size = os.path.getsize(output_path)
        record(measure("file", decoded, decoded, file_bytes=size, file_sha256=digest,
                       started=started, **common))  # fmt: skip
    if stages[-1].bytes >= dense_bytes:
        logging.warning(
            "deep_compress: %s holds %d bytes, not fewer than the dense float32 model's %d "
            "(ratio %.2fx): fewer bits or index_bits, or lower densities, make it smaller. "
            "Received: bits=%s, index_bits=%s",
            output_path,
            stages[-1].bytes,
            dense_bytes,
            stages[-1].ratio,
            bits,
            index_bits,
        )
    return Result(stages=stages, model=shared, pruned=masked, report=report)
