"""The run directory (`--checkpoint`): run.json, checkpoints, results.

    <checkpoint>/run.json        what the run is: kind, config, resolved values (written
                                 once, before the first step; a restart is checked against it)
    <checkpoint>/ckpt-<step>.*   tf.train checkpoints: weights, masks, optimizer, step
    <checkpoint>/tensorboard/    TensorBoard scalars
    <checkpoint>/final.keras     the trained (train) or compact (compress) model
    <checkpoint>/result.json     final metrics, parameters, step count, mask digests
    <checkpoint>/.worker_<i>/    what non-chief workers of a multi-worker run write

A directory that holds another run (another model, method or setting) is refused before
anything is written, naming the differences. A checkpoint that cannot be read (truncated,
bytes flipped: it fails TensorFlow's checksums) is reported as damaged and left alone; a
readable one that does not fit the model is reported as another model's, naming the
variables (`restore`).
"""

import dataclasses
import json
import os
import re

import tensorflow as tf
from absl import logging

from tfcompress import messages
from tfcompress.atomic import atomic_write_text

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
FINAL_MODEL = "final.keras"
TENSORBOARD = "tensorboard"
# What a run writes into its directory, as `paths.outputs_inside` checks it.
FILES = {RUN_FILE: "file", RESULT_FILE: "file", FINAL_MODEL: "file", TENSORBOARD: "directory"}

# Settings a restart may change: they do not alter what the run computes.
RESUMABLE = frozenset({
    "progress", "skip_step", "save_step", "eval_step", "eval_batches", "keep_checkpoints",
    "test_data", "initialize", "devices", "checkpoint", "skip_corrupt",
})  # fmt: skip


def record_of(config):
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def defaults_of(config):
    """The defaults of `config`'s fields (nested configs: theirs), as `record_of` writes
    values: a setting added after a run started is absent from its run.json, and a
    restart at the setting's default is the same run."""
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            out[field.name] = defaults_of(value)
        elif field.default is not dataclasses.MISSING:
            out[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = field.default_factory()
    return json.loads(json.dumps(out))


def _differences(old, new, prefix="", defaults=None):
    out, defaults = [], defaults or {}
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE:
            continue
        a, b = old.get(key), new.get(key)
        if key not in old and key in defaults and b == defaults[key]:
            continue  # a setting newer than the run, at its default
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_differences(a, b, f"{prefix}{key}.", defaults.get(key)))
        elif a != b:
            out.append(f"{prefix}{key}={a!r} (this command: {b!r})")
    return out


def model_record(record):
    """The `model` section of a train or compress record."""
    return record["train"]["model"] if "train" in record else record["model"]


class RunDirectory:
    """One run's directory, seen from this process (`context` from `devices.setup`)."""

    def __init__(self, path, context):
        self.path = os.path.abspath(path)
        self.context = context
        self.work_dir = (
            self.path if context.is_chief else os.path.join(self.path, f".worker_{context.task_id}")
        )

    def read(self):
        """The run.json dict, or None."""
        path = os.path.join(self.path, RUN_FILE)
        if not os.path.exists(path):
            return None
        return read_json(path, f"checkpoint={self.path!r}")

    def latest_checkpoint(self):
        return latest_checkpoint(self.path)

    def finished(self):
        """The result of a finished run (the chief's result.json, with its "path"), or None.

        result.json is the last file a run writes: a run that has one is not run again.
        """
        path = os.path.join(self.path, RESULT_FILE)
        if not os.path.exists(path):
            return None
        result = read_json(path, f"checkpoint={self.path!r}")
        logging.info(
            "checkpoint=%r holds this run, finished (%s): nothing to do. Use a new "
            "--checkpoint to run it again, or the evaluate script to test it on other data.",
            self.path,
            RESULT_FILE,
        )
        return {**result, "path": path}

    def check(self, kind, record, defaults=None, resolve=None):
        """Raises unless the directory is empty of runs or holds this very run
        (`defaults`, `defaults_of(config)`: settings missing from an older run.json count
        as their defaults; `resolve`, optional `fn(record) -> record`: fills settings whose
        None stands for a value, applied to both records before they are compared).

        Returns the existing run.json dict (a restart) or None (a new run).
        """
        existing = self.read()
        if existing is None:
            if self.latest_checkpoint():
                raise ValueError(
                    f"checkpoint={self.path!r} holds checkpoints but no {RUN_FILE}: it is not "
                    "a tfcompress run directory. Use a new --checkpoint directory."
                )
            return None
        old_model, new_model = model_record(existing["config"]), model_record(record)
        if old_model != new_model:
            raise ValueError(
                f"checkpoint={self.path!r} holds a {existing.get('kind')} run of model "
                f"{_describe(old_model)}; this {kind} command builds {_describe(new_model)}. "
                "It is a checkpoint from a different model: use another --checkpoint "
                "directory."
            )
        if existing.get("kind") != kind:
            raise ValueError(
                f"checkpoint={self.path!r} holds a {existing.get('kind')} run; this is a "
                f"{kind} command. Use another --checkpoint directory (to start from that "
                "run's weights, pass it as --initialize)."
            )
        resolve = resolve or (lambda r: r)
        diffs = _differences(resolve(existing["config"]), resolve(record), defaults=defaults)
        if diffs:
            raise ValueError(
                f"checkpoint={self.path!r} holds a run started with other settings: "
                f"{'; '.join(diffs)}. Restart it with the same command to resume, or use a "
                "new --checkpoint directory."
            )
        return existing

    def start(self, kind, record, resolved):
        """Writes run.json (chief, first start only)."""
        if self.context.is_chief and self.read() is None:
            os.makedirs(self.path, exist_ok=True)
            text = json.dumps(
                {"kind": kind, "config": record, "resolved": resolved}, indent=2, sort_keys=True
            )
            atomic_write_text(os.path.join(self.path, RUN_FILE), text)
        os.makedirs(self.work_dir, exist_ok=True)

    def manager(self, checkpoint, keep):
        """A `tf.train.CheckpointManager` writing to this process's directory (non-chief
        workers save too, as MultiWorkerMirroredStrategy needs, into `.worker_<i>`)."""
        return tf.train.CheckpointManager(checkpoint, self.work_dir, max_to_keep=keep)

    def restore(self, checkpoint):
        """Restores the latest checkpoint (the chief's) into `checkpoint`; True if any."""
        latest = self.latest_checkpoint()
        if latest is None:
            return False
        restore(checkpoint, latest, f"checkpoint={self.path!r}")
        logging.info("Resuming from %s", latest)
        return True

    def write_json(self, name, data):
        """Writes `data` as JSON into this process's directory (atomically)."""
        os.makedirs(self.work_dir, exist_ok=True)
        path = os.path.join(self.work_dir, name)
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))
        return path

    def file(self, name):
        return os.path.join(self.path, name)


def read_json(path, what):
    """The JSON object in `path`; raises naming `what` and the file when it is damaged."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = json.loads(raw)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(
            f"{what}: {path} is damaged (truncated or corrupted) and cannot be read as "
            f"JSON: {first_line(e)}. Use another --checkpoint directory."
        ) from e
    if not isinstance(data, dict):
        raise ValueError(f"{what}: {path} holds no JSON object. Received: {str(data)[:80]}")
    return data


def latest_checkpoint(directory):
    """The prefix of the newest checkpoint in `directory` whose files exist, or None.

    The newest listed in the directory's `checkpoint` file; when its files were deleted
    (a damaged checkpoint removed by hand), the newest earlier one that is still there.
    Raises naming the `checkpoint` file when it cannot be read.
    """
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception as e:  # a damaged text proto raises parser errors of many kinds
        raise ValueError(
            f"checkpoint={directory!r}: its checkpoint list "
            f"({os.path.join(directory, 'checkpoint')}) is damaged and cannot be read "
            f"({first_line(e)}). Delete that file to start the run again from its beginning, "
            "or use another --checkpoint directory."
        ) from e
    if state is None:
        return None
    listed = [*state.all_model_checkpoint_paths, state.model_checkpoint_path]
    for prefix in reversed(listed):
        prefix = prefix if os.path.isabs(prefix) else os.path.join(directory, prefix)
        if prefix and tf.io.gfile.exists(prefix + ".index"):
            return prefix
    return None


def damage(prefix):
    """Why the checkpoint at `prefix` cannot be read (its index, or any tensor failing its
    checksum or cut short), or None when every tensor reads back intact."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, IndexError, ValueError, OSError, RuntimeError) as e:
        return first_line(e)
    return None


def restore(checkpoint, prefix, what, partial=False):
    """`checkpoint.restore(prefix)`; raises a ValueError that tells a damaged checkpoint
    (cannot be read: truncated, flipped bytes) from a readable one of another model
    (naming the variables that do not fit). `what` names the flag and value
    (`"checkpoint='runs/x'"`)."""
    flag = what.split("=")[0]
    try:
        status = checkpoint.restore(prefix)
        if partial:
            status.expect_partial()
        else:
            status.assert_existing_objects_matched()
    except (AssertionError, ValueError, IndexError, tf.errors.OpError) as e:
        reason = damage(prefix)
        if reason is not None:
            raise ValueError(
                f"{what}: the checkpoint {prefix} is damaged (truncated or corrupted) and "
                f"cannot be read: {reason}. It was left as it is: delete its files "
                f"({os.path.basename(prefix)}.index, {os.path.basename(prefix)}.data-*) to "
                f"use an earlier checkpoint of the run, or use another --{flag}."
            ) from e
        raise ValueError(
            f"{what}: the checkpoint {prefix} is intact but does not fit the model this "
            f"command builds: {_mismatch(e)}. It is a checkpoint from a different model: "
            f"use another --{flag} directory."
        ) from e


def _mismatch(error):
    """The variables a failed restore names, shortly."""
    text = str(error)
    unmatched = re.findall(r"<Variable path=(\S+), shape=(\([^)]*\))", text)
    if unmatched:
        names = ", ".join(f"{path} {shape}" for path, shape in unmatched[:5])
        more = f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else ""
        return f"its variables have no value there for {names}{more}"
    return first_line(error)


def first_line(error):
    """`messages.first_line` of `error` (300 characters at most) without its final period,
    or the error's type name when it has no text."""
    return messages.first_line(error, 300).rstrip(".") or type(error).__name__


def _describe(model):
    parts = [f"{model.get('name')!r}", f"num_classes={model.get('num_classes')}"]
    if model.get("height") or model.get("width"):
        parts.append(f"input {model.get('height')}x{model.get('width')}")
    if model.get("width_multiplier", 1.0) != 1.0:
        parts.append(f"width_multiplier={model.get('width_multiplier')}")
    return " ".join(parts)
