"""What every script's `main` does around its one library call: INFO logging, and input
errors turned into one clear `error: ...` line (exit code 1)."""

import json
import logging as std_logging
import sys

from absl import flags, logging

# Errors that mean "the command is wrong" (bad flag values, missing files, wrong data),
# reported as one line; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def run(fn, *args):
    """Calls `fn(*args)` with INFO logging; exits with `error: <message>` on a user error."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO)
        std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
    try:
        return fn(*args)
    except USER_ERRORS as e:
        logging.error("%s", e)
        sys.exit(f"error: {e}")


def summary(result):
    """The result dict as one JSON line (the last line a script prints)."""
    return json.dumps(result, sort_keys=True, default=str)
