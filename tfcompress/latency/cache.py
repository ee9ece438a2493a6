"""Cost tables cached as JSON, one file per machine key and model signature, written
atomically (`tfcompress.atomic`): `<cache_dir>/<host>-<machine hash>/<model>-<signature>.json`.

A read checks the machine key and the signature stored in the file, so a table measured
on another machine, TensorFlow version or thread count, or for another model (or batch,
or grid), is a miss. So is a file that is not a table (truncated, or with fields of
another version), with a warning naming it; `measure_cost_table` then overwrites it.
"""

import hashlib
import json
import os
import re

from absl import logging

from tfcompress.atomic import atomic_write_text
from tfcompress.latency.table import CostTable

ENV_CACHE_DIR = "TFCOMPRESS_LATENCY_CACHE"


def default_cache_dir():
    """`$TFCOMPRESS_LATENCY_CACHE`, or `~/.cache/tfcompress/latency`."""
    return os.environ.get(ENV_CACHE_DIR) or os.path.join(
        os.path.expanduser("~"), ".cache", "tfcompress", "latency"
    )


def digest(obj, n=16):
    """A short stable hash of a JSON-able object."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:40] or "_"


def cache_path(cache_dir, machine, signature, model_name="model"):
    """Where the table of `signature` measured on `machine` lives."""
    folder = f"{_slug(machine.get('host', 'host'))}-{digest(machine, 10)}"
    return os.path.join(cache_dir, folder, f"{_slug(model_name)}-{_slug(signature)}.json")


def save_table(table, cache_dir=None, model_name="model"):
    """Writes `table` (which names its machine and signature) atomically; returns the path."""
    if table.machine is None or table.signature is None:
        raise ValueError(
            "Only a table that names its machine and signature can be cached. Received: "
            f"machine={table.machine!r}, signature={table.signature!r}"
        )
    path = cache_path(cache_dir or default_cache_dir(), table.machine, table.signature, model_name)
    atomic_write_text(path, table.to_json())
    return path


def load_table(machine, signature, cache_dir=None, model_name="model"):
    """The cached table of `signature` on `machine`, or None (a miss). A file that cannot
    be read as a table (damaged, or written by another version) is a miss too, with a
    warning naming it."""
    path = cache_path(cache_dir or default_cache_dir(), machine, signature, model_name)
    try:
        with open(path) as f:
            table = CostTable.from_json(f.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, TypeError) as e:  # unreadable, damaged, another version's
        logging.warning(
            "Ignoring the cached cost table %s (%s: %s): a miss. measure_cost_table "
            "measures the table again and overwrites the file.", path, type(e).__name__, e)
        return None
    if table.machine != machine or table.signature != signature:
        return None
    return table
