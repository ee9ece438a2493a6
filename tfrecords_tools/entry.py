"""How every command starts: the `run()` of each `tfrecords_tools` and `tfcompress.scripts`
main, run as `python -m ...` or as an installed console script (`tfrecords-verify`,
`tfcompress-train`, ...):

    def run():
        entry.run(main)

- `--help` lists the command's flags. absl lists the key flags of the module sys.argv[0]
  names, which for a console script is its launcher: the main module's key flags (and its
  docstring, the usage text) are declared for the launcher too.
- A positional argument is an error naming it. Every input is a flag, and an unquoted glob
  (`--file_pattern data/x/train-*`) reaches the program as one value and many left-overs.
- TensorFlow's start-up noise stays out of what the user reads, unless they chose a level
  themselves (TF_CPP_MIN_LOG_LEVEL, --verbosity): TF_CPP_MIN_LOG_LEVEL=3 drops TensorFlow's
  C++ log lines, such as `failed call to cuInit` on a machine without a GPU; it takes effect
  in a process that has not imported TensorFlow yet (the converters here, every process a
  script starts) and not in the tfcompress scripts themselves, since `import tfcompress`
  loads TensorFlow before any script code runs. INFO lines logged by code outside
  tfcompress and tfrecords_tools (`Sharding callback duration`, ...) are dropped; warnings,
  errors and tfcompress's own INFO lines still show.

This module lives outside `tfcompress`, and imports neither it nor TensorFlow, so that a
converter's `--help` and usage errors answer at once.
"""

import functools
import importlib.util
import logging as std_logging
import os
import sys

from absl import app, flags, logging

# Environment defaults set before TensorFlow starts (a value the user set is kept).
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}
OWN_PACKAGES = ("tfcompress", "tfrecords_tools")
MAX_SHOWN = 5  # unexpected arguments named in the error


def run(main):
    """`app.run(main)` with the behaviour above; `main(argv)` receives argv == [program]."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    declare_main_flags(sys.modules[main.__module__])
    app.run(_checked(main))


def declare_main_flags(module):
    """Makes `module`'s key flags (and docstring) what `--help` shows for sys.argv[0]."""
    fv = flags.FLAGS
    for flag in fv.get_key_flags_for_module(module):
        fv.register_key_flag_for_module(sys.argv[0], flag)
    launcher = sys.modules["__main__"]
    if launcher is not module and not launcher.__doc__:
        launcher.__doc__ = module.__doc__


def unexpected_arguments(args, command_line=()):
    """The error for positional `args` left over from `command_line` (sys.argv[1:])."""
    shown = " ".join(args[:MAX_SHOWN])
    if len(args) > MAX_SHOWN:
        shown += f" ... ({len(args)} in all)"
    flag, value = _flag_before(args[0], list(command_line))
    if flag is None:
        return (
            f"unexpected arguments: {shown}. Every input is a flag (--name=value); quote a "
            "glob such as 'data/x/train-*' so that the shell does not expand it into "
            "several arguments."
        )
    prefix = os.path.commonprefix([value, *args]).rstrip("0123456789")
    glob = f"{prefix}*" if prefix else "<glob>"
    return (
        f"unexpected arguments: {shown}. --{flag} takes one value ({value!r}): if the shell "
        f"expanded a glob into these, quote it: --{flag} '{glob}'."
    )


def _flag_before(arg, command_line):
    """(flag name, value) when `arg` directly follows `--flag value`, else (None, None)."""
    if arg not in command_line:
        return None, None
    i = command_line.index(arg)
    if i >= 2 and command_line[i - 2].startswith("-") and "=" not in command_line[i - 2]:
        return command_line[i - 2].lstrip("-"), command_line[i - 1]
    return None, None


def _checked(main):
    @functools.wraps(main)
    def checked(argv):
        if len(argv) > 1:
            sys.exit(f"error: {unexpected_arguments(argv[1:], sys.argv[1:])}")
        if not flags.FLAGS["verbosity"].present:
            quiet_logging()
        return main(argv)

    return checked


def quiet_logging():
    """INFO logging for tfcompress's own lines; other code's INFO lines are dropped."""
    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
    handler = logging.get_absl_handler()
    if not any(isinstance(f, OwnInfoOnly) for f in handler.filters):
        handler.addFilter(OwnInfoOnly())


class OwnInfoOnly(std_logging.Filter):
    """Passes warnings and errors, and lower levels only from tfcompress / tfrecords_tools."""

    def __init__(self):
        super().__init__()
        self.roots = tuple(
            os.path.join(os.path.abspath(location), "")
            for name in OWN_PACKAGES
            for location in importlib.util.find_spec(name).submodule_search_locations
        )

    def filter(self, record):
        if record.levelno >= std_logging.WARNING:
            return True
        return os.path.abspath(record.pathname).startswith(self.roots)
