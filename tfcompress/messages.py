"""The one line of an error that a user is shown (every command ends in one line)."""

import re


def first_line(error, limit=None):
    """The first non-blank line of `error` (an exception or text), stripped; at most
    `limit` characters; "" if there is none."""
    line = next((x.strip() for x in str(error).splitlines() if x.strip()), "")
    return line if limit is None else line[:limit]


def clean_tf_line(line):
    """A line of a TensorFlow error without its ``{{function_node ...}}`` prefix and its
    ``[Op:...]`` suffix."""
    line = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", line.strip())
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", line).strip()


def tf_error_line(error):
    """The line of a TensorFlow error that says what failed: the line before its first
    ``[[{{node ...}}]]`` (a function's ``Graph execution error:`` preamble skipped), else
    the first line; cleaned by `clean_tf_line`."""
    text = getattr(error, "message", None) or str(error)
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    line = lines[0] if lines else ""
    for before, after in zip(lines, lines[1:], strict=False):
        if after.startswith("[[") and not before.startswith(("[[", "Graph execution error")):
            line = before
            break
    return clean_tf_line(line)
