"""Building models from configs, starting weights (`initialize`), and loading a finished
run (or a `.keras` file) for evaluation and export."""

import hashlib
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

import tfcompress as tfc
from tfcompress import models
from tfcompress.layers import ChannelMask, WeightMask
from tfcompress.training import runs


def build_model(model_config, input_shape):
    """`tfcompress.models.build` from a `ModelConfig` (or its run.json record)."""
    get = model_config.get if isinstance(model_config, dict) else model_config.__getattribute__
    options = {k: v for k, v in get("options")}
    return models.build(
        get("name"),
        get("num_classes"),
        tuple(input_shape),
        width=get("width_multiplier"),
        **options,
    )


def _shapes(model):
    return [tuple(v.shape) for v in model.weights]


def copy_weights(source_model, model, source):
    """Copies every weight of `source_model` into `model`; raises naming both models and
    the first weight whose shape differs."""
    a, b = _shapes(source_model), _shapes(model)
    if a != b:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        detail = (
            f"weight {first} is {a[first]} there and {b[first]} here"
            if first < min(len(a), len(b))
            else f"it has {len(a)} weights, this model {len(b)}"
        )
        raise ValueError(
            f"initialize={source!r} holds model {source_model.name!r} "
            f"({source_model.count_params():,} parameters), which does not fit model "
            f"{model.name!r} ({model.count_params():,} parameters): {detail}. It is a "
            "checkpoint from a different model (or num_classes, width_multiplier, input size)."
        )
    model.set_weights(source_model.get_weights())


def plain_copy(model):
    """`model` without its training setup (optimizer and its state, losses, metrics):
    what a train run's final.keras holds, so that plain Keras loads it
    (`keras.saving.load_model`) without tfcompress's optimizer and learning-rate classes.
    Runs resume from their checkpoints, which keep the optimizer."""
    copy = type(model).from_config(model.get_config())  # (clone_model compiles its copy)
    copy.set_weights(model.get_weights())
    return copy


def counted_original(model):
    """A copy of `model` whose every weight is 1: the "before" side of a compression
    report, each parameter of the original architecture counted as nonzero (its weights
    may be a fresh draw, whose zero-initialised biases, BatchNorm betas and moving means
    would read as parameters the compression removed). `model` is left as it is."""
    copy = type(model).from_config(model.get_config())
    copy.set_weights([np.ones(w.shape, w.dtype) for w in model.get_weights()])
    return copy


def load_keras(path, what):
    """`keras.saving.load_model(path)`; raises naming `what` (flag and value) and the file
    when it cannot be read (truncated, corrupted, not a Keras archive)."""
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{what}: {path} cannot be loaded as a Keras model (damaged, truncated or not a "
            f".keras file): {runs.first_line(e)}. Write it again, or use another file."
        ) from e


def initialize(model, source):
    """Loads starting weights into `model` (a freshly built, unwrapped model).

    `source`: a train run directory (its final.keras, else its latest checkpoint), a
    `.keras` model file or a `.weights.h5` file of the same architecture.
    """
    if source.endswith(".keras") and os.path.isfile(source):
        copy_weights(load_keras(source, f"initialize={source!r}"), model, source)
    elif source.endswith(".weights.h5") and os.path.isfile(source):
        try:
            model.load_weights(source)
        except OSError as e:  # h5py: not an HDF5 file, truncated
            raise ValueError(
                f"initialize={source!r} is damaged (truncated or corrupted) and cannot be "
                f"read: {runs.first_line(e)}. Write it again, or use another file."
            ) from e
        except ValueError as e:
            raise ValueError(
                f"initialize={source!r} does not fit model {model.name!r} (a checkpoint from "
                f"a different model?): {e}"
            ) from e
    elif os.path.isdir(source):
        _initialize_from_run(model, source)
    else:
        raise FileNotFoundError(
            f"initialize={source!r}: no such train run directory, .keras or .weights.h5 file."
        )


def _initialize_from_run(model, source):
    path = os.path.join(source, runs.RUN_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"initialize={source!r} is a directory without {runs.RUN_FILE}.")
    run = runs.read_json(path, f"initialize={source!r}")
    if run.get("kind") != "train":
        raise ValueError(
            f"initialize={source!r} is a {run.get('kind')} run: its final model is compact "
            "and its checkpoints hold masks. Start from a train run or a .keras file."
        )
    final = os.path.join(source, runs.FINAL_MODEL)
    if os.path.exists(final):
        copy_weights(load_keras(final, f"initialize={source!r}"), model, final)
        return
    latest = runs.latest_checkpoint(source)
    if latest is None:
        raise FileNotFoundError(f"initialize={source!r} holds no checkpoint yet.")
    reference = build_model(run["config"]["model"], run["resolved"]["input_shape"])
    runs.restore(tf.train.Checkpoint(model=reference), latest, f"initialize={source!r}", True)
    copy_weights(reference, model, latest)


def load_trained(path):
    """The model a run produced (or a `.keras` file), ready to evaluate or export.

    Returns `(model, run)`: `run` is the run.json dict (None for a `.keras` file). A run
    without final.keras yet (still training) is rebuilt from run.json and its latest
    checkpoint; for a compress run the masked model is stripped.
    """
    if os.path.isfile(path):
        if not path.endswith(".keras"):
            raise ValueError(f"checkpoint={path!r}: expected a run directory or a .keras file.")
        return load_keras(path, f"checkpoint={path!r}"), None
    run_file = os.path.join(path, runs.RUN_FILE)
    if not os.path.exists(run_file):
        raise FileNotFoundError(
            f"checkpoint={path!r}: no such run directory (with {runs.RUN_FILE}) or .keras file."
        )
    run = runs.read_json(run_file, f"checkpoint={path!r}")
    final = os.path.join(path, runs.FINAL_MODEL)
    if os.path.exists(final):
        return load_keras(final, f"checkpoint={path!r}"), run
    return restore_latest(path, run), run


def rebuild(run, wrapped=True):
    """A fresh model of `run`'s architecture (wrapped with its method if `wrapped`)."""
    config = run["config"]
    model_config = runs.model_record(config)
    model = build_model(model_config, run["resolved"]["input_shape"])
    if wrapped and "prune" in config:
        prune = config["prune"]
        model = tfc.wrap(
            model, prune["method"], exclude=tuple(prune["exclude"]), **run["resolved"]["wrap"]
        )
    return model


def restore_latest(path, run):
    """`run`'s model at its latest checkpoint (stripped if it is a compress run)."""
    latest = runs.latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"checkpoint={path!r} holds no checkpoint and no final model.")
    model = rebuild(run)
    runs.restore(tf.train.Checkpoint(model=model), latest, f"checkpoint={path!r}", True)
    return tfc.strip(model) if "prune" in run["config"] else model


def mask_digests(model):
    """sha256 of all mask values, one per local replica (equal when replicas agree)."""
    variables = []
    for layer in model.layers:
        if isinstance(layer, ChannelMask):
            variables.append(layer.mask)
        elif isinstance(layer, WeightMask):
            variables.extend(layer.masks[k] for k in sorted(layer.masks))
    per_replica = None
    for v in variables:
        inner = getattr(v, "value", v)
        values = getattr(inner, "values", None) or (inner,)
        arrays = [np.asarray(x) for x in values]
        if per_replica is None:
            per_replica = [hashlib.sha256() for _ in arrays]
        for h, a in zip(per_replica, arrays):
            h.update(np.ascontiguousarray(a, np.float32).tobytes())
    return [h.hexdigest() for h in per_replica or [hashlib.sha256()]]
