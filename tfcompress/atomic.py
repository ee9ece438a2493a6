"""Atomic writes: the one place tfcompress puts a file or a folder in place.

A writer writes beside its target, under a hidden name ``.{name}.tmp-{pid}-{token}``, then
puts it in place with a rename; nothing is deleted first, so a reader of the target (or a
kill at any instant) sees the old artefact or the new one, whole:

- a file: ``os.replace`` over the old one;
- a folder (a SavedModel): the two names are exchanged in one step (Linux
  ``renameat2(RENAME_EXCHANGE)``), then the old copy, now under the hidden name, is removed.
  Where the exchange is unsupported (another OS, a file system without it) the old folder is
  renamed aside to ``.{name}.old-{pid}-{token}`` and the new one renamed in: a kill between
  the two renames leaves the target missing, and ``recover(path)`` renames the old one back.

What is replaced: a file over a file, and a folder over an empty folder or over a previous
output of the same kind, which the caller names (``atomic_path(path, FolderKind(...))``:
a folder holding one of its marker files, e.g. ``saved_model.pb``). Anything else at the
target is refused with an error naming it and left as it is: a folder over a file or a file
over a folder, a symbolic link to a folder, a folder holding other files (``FileExistsError``
listing a few of them), and, whatever it holds, the file system's root, the user's home, the
working directory or a folder holding it (``""`` and ``"."`` included).

A killed writer leaves its hidden names behind. ``recover(path)``, which every write to the
path calls first, removes those of dead processes (the pid is in the name; a live process's
are left alone). Inside ``atomic_path`` Python's ``tempfile`` (TensorFlow's autograph, the
TFLite converter, Keras) writes under the hidden folder too, so their temporary files go
with it. (``tempfile.tempdir`` is process-wide: a thread creating a temporary file meanwhile
gets one there as well.)

Durability: written files are flushed to disk (``fsync``) before the rename and the folder
after it. Pids are those of this machine: a folder shared with other hosts may hold hidden
names of processes this one cannot see, which count as dead.
"""

import contextlib
import ctypes
import dataclasses
import errno
import os
import re
import secrets
import shutil
import sys
import tempfile

from tfcompress.names import check_name

TEMP, OLD = "tmp", "old"
_HIDDEN = re.compile(r"^\.(?P<base>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-(?P<token>[a-z0-9_]+)$")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP)


def _fault_point(name):
    """Called at each step of a replace or a commit; does nothing. A kill test replaces it
    (in a subprocess) with a SIGKILL at the step it names."""


@dataclasses.dataclass(frozen=True)
class FolderKind:
    """What a folder written by ``atomic_path`` is, so that an earlier one (and nothing
    else) at its path is replaced: ``name`` for messages ("a SavedModel"), ``markers``: file
    names, one of which such a folder holds (``("saved_model.pb", "saved_model.pbtxt")``)."""

    name: str
    markers: tuple

    def __post_init__(self):
        check_name("name", self.name)
        markers = self.markers
        if isinstance(markers, str) or not markers or not all(
            isinstance(m, str) and m and os.sep not in m for m in markers
        ):
            raise ValueError(
                "markers must be a non-empty tuple of file names (no folder part). "
                f"Received: markers={markers!r}"
            )
        object.__setattr__(self, "markers", tuple(markers))

    def holds(self, folder):
        """True if ``folder`` holds one of the marker files."""
        return any(os.path.lexists(os.path.join(folder, m)) for m in self.markers)


def _load_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # glibc < 2.28, musl, ...
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()  # None: exchange unsupported (the tests set it so too)


def hidden_name(base, kind=TEMP):
    """``.{base}.{kind}-{pid}-{token}``: the name a writer uses beside ``base``."""
    if kind not in (TEMP, OLD):
        raise ValueError(f"kind must be {TEMP!r} or {OLD!r}. Received: kind={kind!r}")
    token = secrets.token_hex(4)
    return f".{base}.{kind}-{os.getpid()}-{token}"


def parse_hidden(name):
    """``(base, kind, pid)`` of a hidden name, or None for any other name."""
    m = _HIDDEN.match(name)
    return (m["base"], m["kind"], int(m["pid"])) if m else None


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def dead_leftovers(folder, accept=None):
    """Paths of the hidden names in ``folder`` left by dead processes, for the bases
    ``accept(base)`` admits (all if None)."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):  # nothing to recover; the write will say
        return []
    found = []
    for name in sorted(names):
        parsed = parse_hidden(name)
        if parsed and (accept is None or accept(parsed[0])) and not _alive(parsed[2]):
            found.append(os.path.join(folder, name))
    return found


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def recover(path):
    """Repairs ``path`` after a killed write: if the target is missing and a dead writer
    renamed the old one aside, renames it back; then removes dead writers' hidden names
    beside ``path``. Returns the paths removed or restored."""
    path = os.path.abspath(os.fspath(path)).rstrip(os.sep)
    folder, base = os.path.split(path)
    leftovers = dead_leftovers(folder, lambda b: b == base)
    done = []
    if not os.path.lexists(path):
        olds = [p for p in leftovers if parse_hidden(os.path.basename(p))[1] == OLD]
        if olds:
            newest = max(olds, key=os.path.getmtime)
            os.rename(newest, path)
            leftovers.remove(newest)
            done.append(newest)
    for p in leftovers:
        _remove(p)
        done.append(p)
    return done


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path):
    if not os.path.isdir(path):
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        return
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(root)


def _exchange(src, dst):
    """Swaps the names ``src`` and ``dst`` in one step. False if this system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_EXCHANGE):
        err = ctypes.get_errno()
        if err in _UNSUPPORTED:
            return False
        raise OSError(err, os.strerror(err), src, None, dst)
    return True


def _target(path):
    return os.path.abspath(os.fspath(path)).rstrip(os.sep) or os.sep


def _protected(target):
    """Why ``target`` (absolute) is never replaced, whatever it holds; None if it may be."""
    real = os.path.realpath(target)
    if real == os.path.dirname(real):
        return "the file system's root"
    if real == os.path.realpath(os.path.expanduser("~")):
        return "the home folder"
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the working directory was removed
        return None
    if real == cwd:
        return "the working directory"
    if os.path.commonpath([real, cwd]) == real:
        return f"a folder holding the working directory ({cwd})"
    return None


def _entries(folder, shown=4):
    names = sorted(os.listdir(folder))
    listed = [n + os.sep if os.path.isdir(os.path.join(folder, n)) else n for n in names[:shown]]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(listed) + more


def check_target(path, src_dir=None, folder_kind=None):
    """Raises, naming ``path``, unless what is at ``path`` may be replaced by a folder
    (``src_dir=True``) of ``folder_kind`` (a ``FolderKind`` or None), by a file
    (``False``) or by either (None: not known yet). A free path is always admitted."""
    dst = _target(path)
    why = _protected(dst)
    if why is not None:
        raise PermissionError(
            f"{os.fspath(path)!r} is {why} ({os.path.realpath(dst)}): it is never replaced, "
            "nothing is written there. Give the path of a new or empty folder inside it "
            f"instead (e.g. {os.path.join(dst, 'export')!r})."
        )
    if not os.path.lexists(dst):
        return
    what = {True: "folder", False: "file", None: "file or folder"}[src_dir]
    if os.path.islink(dst) and (src_dir or os.path.isdir(dst)):
        raise FileExistsError(
            f"{dst} is a symbolic link (to {os.readlink(dst)}): it is left as it is, not "
            f"replaced (a {what} put there would replace the link, not write into what it "
            "points to). Give the path it points to, or another path."
        )
    dst_dir = os.path.isdir(dst) and not os.path.islink(dst)
    if src_dir is not None and src_dir != dst_dir:  # a .tflite onto a SavedModel folder ...
        kinds = {True: "folder", False: "file"}
        raise (IsADirectoryError if dst_dir else NotADirectoryError)(
            f"{dst} is a {kinds[dst_dir]}, and a {what} was written for it: it is "
            f"left as it is, not replaced. Remove it first or write to another path."
        )
    kind = folder_kind
    if dst_dir and os.listdir(dst) and not (kind is not None and kind.holds(dst)):
        which = "" if kind is None else (
            f" and is not {kind.name} (it holds no {' or '.join(kind.markers)})")
        raise FileExistsError(
            f"{dst} is a folder that holds other files ({_entries(dst)}){which}: it is left "
            "as it is, not replaced. Give the path of a new or empty folder, or remove this "
            "one first."
        )


def replace(src, dst, folder_kind=None):
    """Puts ``src`` (a file or a folder) at ``dst`` in one rename, over a ``dst`` that
    ``check_target`` admits: a file over a file, a folder over an empty folder or over a
    folder of ``folder_kind`` (a ``FolderKind``); anything else is refused, naming ``dst``.
    Never deletes ``dst`` first. ``src`` and ``dst`` must be in the same file system."""
    src, dst = os.fspath(src), _target(dst)
    _fault_point("replace:before")
    src_dir = os.path.isdir(src) and not os.path.islink(src)
    check_target(dst, src_dir, folder_kind)
    dst_dir = os.path.isdir(dst) and not os.path.islink(dst)
    if not os.path.lexists(dst) or not (src_dir or dst_dir):
        os.replace(src, dst)  # a file over a file, or anything onto a free name
        _fault_point("replace:done")
    elif _exchange(src, dst):
        _fault_point("replace:exchanged")
        _remove(src)  # now the old one
        _fault_point("replace:done")
    else:
        folder, base = os.path.split(dst)
        old = os.path.join(folder, hidden_name(base, OLD))
        os.rename(dst, old)
        _fault_point("replace:aside")  # the target is missing here: `recover` restores it
        os.rename(src, dst)
        _fault_point("replace:exchanged")
        _remove(old)
        _fault_point("replace:done")
    _fsync_dir(os.path.dirname(dst))


@contextlib.contextmanager
def _tempfiles_under(folder):
    os.makedirs(folder, exist_ok=True)
    saved = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = saved


def _make_folder(folder, target):
    """Creates ``folder`` (``target``'s) and its missing parents; errors name ``target``."""
    part = folder
    while not os.path.isdir(part):
        if os.path.lexists(part):
            what = "a symbolic link to nothing" if os.path.islink(part) else "a file"
            raise NotADirectoryError(
                errno.ENOTDIR, f"{target} cannot be written: {part} is {what}, not a folder"
            )
        part = os.path.dirname(part)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise _naming(e, f"{target} cannot be written: its folder {folder} cannot be "
                         f"created ({e.strerror or e})") from e


def _naming(error, message):
    """``error`` (an OSError of a hidden name) again, of its class, saying ``message``."""
    return type(error)(error.errno, message) if error.errno else type(error)(message)


@contextlib.contextmanager
def _writes_in(folder, target):
    try:
        yield
    except OSError as e:
        raise _naming(e, f"{target} cannot be written: {folder} does not take a new file "
                         f"({e.strerror or e})") from e


@contextlib.contextmanager
def atomic_path(path, folder_kind=None):
    """Yields a temporary path beside ``path`` (same name, in a hidden folder); on a clean
    exit puts what was written there at ``path`` (``replace``). On an exception, or a kill,
    ``path`` keeps its old content; the hidden folder is removed (after a kill: by the next
    write to ``path``). Python temporary files created meanwhile go in the hidden folder.

    ``folder_kind``: a ``FolderKind`` if a folder is written: an earlier folder of that kind
    at ``path`` is replaced. A folder holding anything else, and the paths ``check_target``
    never replaces, are refused before anything is written, and left as they are."""
    target = _target(path)
    folder, base = os.path.split(target)
    src_dir = True if folder_kind is not None else None  # else a file, or not said
    check_target(path, src_dir, folder_kind)  # before any folder is made
    _make_folder(folder, target)
    recover(target)
    check_target(path, src_dir, folder_kind)  # what `recover` renamed back
    with _writes_in(folder, target):
        work = tempfile.mkdtemp(prefix=f".{base}.{TEMP}-{os.getpid()}-", dir=folder)
    # the result in a folder of its own: its name may be any, "tempfiles" included
    os.makedirs(os.path.join(work, "result"))
    tmp = os.path.join(work, "result", base)
    try:
        with _tempfiles_under(os.path.join(work, "tempfiles")):
            yield tmp
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"Nothing was written to {tmp}, so {target} is unchanged.")
        _fsync_tree(tmp)
        replace(tmp, target, folder_kind)
    finally:
        _remove(work)


def atomic_write_bytes(path, data):
    """Writes ``data`` to ``path`` beside it and renames it over (``replace``); creates the
    missing folders of ``path``, as ``atomic_path`` does."""
    target = _target(path)
    folder, base = os.path.split(target)
    check_target(path, False)
    _make_folder(folder, target)
    recover(target)
    tmp = os.path.join(folder, hidden_name(base))
    with _writes_in(folder, target):
        f = open(tmp, "xb")  # noqa: SIM115 - closed below; only its creation names `target`
    try:
        with f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def atomic_write_text(path, text):
    """Writes ``text`` (UTF-8) to ``path`` beside it and renames it over (``replace``)."""
    atomic_write_bytes(path, text.encode("utf-8"))
