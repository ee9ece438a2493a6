"""The paths a run reads and writes, checked before anything is read, trained or written.

Every entry point (`train`, `compress`, `evaluate`, `export`, the demo) calls its
`check_*` first, so a path that cannot work fails at once with one message naming the flag
and the value, instead of an `OSError` traceback after minutes of work:

- an output directory must be a directory, or not exist yet below a directory this process
  can write into (it is created later);
- an output file must not be a directory, and its folder must be (or become) writable;
- an input path must exist and be readable; a TFRecord pattern must match a file.

Writability is probed by opening an unnamed temporary file in the directory (it never
appears there), which also catches read-only file systems where `os.access` says yes.
"""

import os
import tempfile

import tensorflow as tf

DIRECTORY, FILE = "directory", "file"
# What `initialize` and a `checkpoint` to evaluate or export may be.
INITIALIZE = "train run directory, .keras or .weights.h5 file"
TRAINED = "run directory or .keras file"


def _describe(path):
    return "a directory" if os.path.isdir(path) else "a file"


def _writable(flag, value, directory):
    """Raises unless this process can create files in `directory` (an existing folder)."""
    if not os.access(directory, os.W_OK | os.X_OK):
        reason = "Permission denied"
    else:
        try:
            tempfile.TemporaryFile(dir=directory).close()
            return
        except OSError as e:
            reason = e.strerror or str(e)
    where = "it" if os.path.abspath(directory) == os.path.abspath(value) else repr(directory)
    raise PermissionError(
        f"{flag}={value!r} cannot be written: {where} is not writable ({reason})."
    )


def _existing_ancestor(flag, value):
    """The nearest existing folder of `value` (which does not exist); raises if a file
    stands where a folder is needed."""
    parent = os.path.dirname(os.path.abspath(value))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(
            f"{flag}={value!r} cannot be created: {parent!r} is a file, not a directory."
        )
    return parent


def output_directory(flag, value):
    """A directory the run writes into (created later if missing)."""
    if os.path.exists(value):
        if not os.path.isdir(value):
            raise NotADirectoryError(
                f"{flag}={value!r} is a file, not a directory: give a directory to write into."
            )
        _writable(flag, value, value)
        return
    _writable(flag, value, _existing_ancestor(flag, value))


def output_file(flag, value):
    """A file the run writes (atomically: beside it, then renamed over it)."""
    if os.path.isdir(value):
        raise IsADirectoryError(
            f"{flag}={value!r} is a directory, not a file: give a file name "
            f"(e.g. {os.path.join(value, 'result.json')!r})."
        )
    folder = os.path.dirname(os.path.abspath(value))
    if os.path.isdir(folder):
        _writable(flag, value, folder)
    else:
        _writable(flag, value, _existing_ancestor(flag, value))


def outputs_inside(flag, folder, kinds):
    """The files and folders the run writes inside `folder` (`{name: FILE or DIRECTORY}`)
    must not exist as the other kind (a folder named like the model file, ...)."""
    for name, kind in kinds.items():
        path = os.path.join(folder, name)
        if not os.path.exists(path) or os.path.isdir(path) == (kind == DIRECTORY):
            continue
        raise (IsADirectoryError if kind == FILE else NotADirectoryError)(
            f"{flag}={folder!r}: {path!r} is {_describe(path)}, but the run writes a {kind} "
            f"there. Move it away, or use another {flag}."
        )


def input_path(flag, value, kind="file or directory"):
    """A file or directory the run reads (`kind` says which, in the message)."""
    if not os.path.exists(value):
        raise FileNotFoundError(f"{flag}={value!r}: no such {kind}.")
    if not os.access(value, os.R_OK):
        raise PermissionError(f"{flag}={value!r} is not readable (Permission denied).")


def input_pattern(flag, pattern):
    """A TFRecord file pattern the run reads: it must match at least one file."""
    if pattern is None:
        return
    try:
        found = tf.io.gfile.glob(pattern)
    except tf.errors.OpError as e:
        raise FileNotFoundError(f"{flag}: cannot list {pattern!r}: {e.message}") from e
    if not found:
        raise FileNotFoundError(f"{flag}: no TFRecord file matches {pattern!r}")


def check_run(config, files):
    """A train or compress run (`config`: its `TrainConfig`): the run directory and the
    files the run writes in it (`{name: FILE or DIRECTORY}`), the data, `initialize`."""
    output_directory("checkpoint", config.checkpoint)
    outputs_inside("checkpoint", config.checkpoint, files)
    input_pattern("train_data", config.train_data)
    input_pattern("test_data", config.test_data)
    if config.initialize:
        input_path("initialize", config.initialize, INITIALIZE)
