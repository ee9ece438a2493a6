"""Write-then-rename: a failed export leaves nothing behind at the target path."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; renames it to `path` on success only."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path.rstrip("/"))
    tmp_dir = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    tmp = os.path.join(tmp_dir, base)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"The export did not write {tmp}.")
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
