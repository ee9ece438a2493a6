"""What every script's `main` does around its one library call: input errors turned into
one clear `error: ...` line (exit code 1). How a script starts (flags in `--help`, no
positional arguments, quiet TensorFlow, INFO logging) is `tfrecords_tools.entry`."""

import json
import sys

from absl import logging

# Errors that mean "the command is wrong" (bad flag values, missing files, wrong data),
# reported as one line; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def run(fn, *args):
    """Calls `fn(*args)`; exits with `error: <message>` on a user error."""
    try:
        return fn(*args)
    except USER_ERRORS as e:
        logging.error("%s", e)
        sys.exit(f"error: {e}")


def summary(result):
    """The result dict as one JSON line (the last line a script prints)."""
    return json.dumps(result, sort_keys=True, default=str)
