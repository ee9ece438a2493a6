"""What every script's `main` does around its one library call: input errors turned into
one clear `error: ...` line (exit code 1). How a script starts (flags in `--help`, no
positional arguments, quiet TensorFlow, INFO logging) is `tfrecords_tools.entry`.

The library checks every path a run reads or writes before it starts
(`tfcompress.training.paths`); what the operating system still refuses later (a disk
that fills up, a folder removed under a running job) is caught here and printed as one
line naming the path, as are bad records met while training or evaluating.
"""

import json
import re
import sys

import tensorflow as tf
from absl import logging

from tfcompress.messages import clean_tf_line, first_line

# Errors that mean "the command is wrong" (bad flag values, missing or unwritable paths,
# wrong data), reported as one line; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError)
# TensorFlow's errors about files (tf.io.gfile, checkpoints, summaries, SavedModel).
PATH_ERRORS = (
    tf.errors.PermissionDeniedError,
    tf.errors.NotFoundError,
    tf.errors.AlreadyExistsError,
    tf.errors.FailedPreconditionError,
)
# A bad record met inside tf.data: the readers' own message (it names the file and the
# record), or TensorFlow's when a shard is cut short or fails its checksum.
DATA_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.DataLossError)
CORRUPT = re.compile(r"Corrupt record in .*")
SKIP_HINT = " (--skip_corrupt skips bad records, counts them and reports them at the end)"


def message(e, skip_flag=False):
    """The one line an error prints (without `error: `), or None for a bug (traceback).

    `skip_flag`: the script has `--skip_corrupt`; a bad-record message says so.
    """
    hint = SKIP_HINT if skip_flag else ""
    if isinstance(e, OSError) and e.filename is not None:  # from the OS: name the path
        path = e.filename if e.filename2 is None else f"{e.filename} -> {e.filename2}"
        return f"{path}: {e.strerror or e}"
    if type(e).__name__ == "CorruptInputError":  # tfcompress.data.errors, a ValueError
        return f"{e}{hint}"
    if isinstance(e, USER_ERRORS):
        return str(e)
    if isinstance(e, PATH_ERRORS):
        return clean_tf_line(first_line(e.message))
    if isinstance(e, DATA_ERRORS):
        corrupt = CORRUPT.search(e.message)
        if corrupt:
            line = clean_tf_line(corrupt.group(0))
            if e.message[: corrupt.start()].endswith("["):  # tf.debugging's "failed: [...]"
                line = line.removesuffix("]")
            return f"{line}{hint}"
        if isinstance(e, tf.errors.DataLossError):
            return f"damaged input data: {clean_tf_line(first_line(e.message))}{hint}"
    return None


INTERRUPTED = (
    "interrupted. Every file is written atomically, so none is left half-written; a train "
    "or compress run resumes from its last checkpoint (--save_step) when the same command "
    "runs again."
)


def run(fn, *args, skip_flag=False):
    """Calls `fn(*args)`; exits with `error: <message>` on a user error (see `message`),
    and with one line and status 130 on Ctrl-C (instead of a traceback)."""
    try:
        return fn(*args)
    except KeyboardInterrupt:
        print(f"error: {INTERRUPTED}", file=sys.stderr, flush=True)
        sys.exit(130)
    except (*USER_ERRORS, *PATH_ERRORS, *DATA_ERRORS) as e:
        text = message(e, skip_flag)
        if text is None:
            raise
        if _logging_to_a_file():  # (on stderr it would print the line twice)
            logging.error("%s", text)
        sys.exit(f"error: {text}")


def _logging_to_a_file():
    """True when absl writes its log to a file (`--log_dir`), not to stderr."""
    stream = getattr(logging.get_absl_handler().python_handler, "stream", sys.stderr)
    return stream not in (sys.stderr, sys.__stderr__)


def summary(result):
    """The result dict as one JSON line (the last line a script prints)."""
    return json.dumps(result, sort_keys=True, default=str)
