"""tfcompress.atomic and the conversion commit, in process: the replace never deletes first
(exchange, or the rename-aside fallback), recovery after a dead writer, leftovers of dead
processes removed and of live ones kept, tool temp files kept in the hidden folder, the
commit journal rolled forward idempotently and checked. Real kills: test_kill_*.py."""

import contextlib
import ctypes
import errno
import json
import os
import subprocess
import tempfile

import pytest

from tfcompress import atomic
from tfcompress.data import shards
from tfcompress.export.saved_model import SAVED_MODEL


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _tree(path):
    """{relative file path: text} of a folder."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name)) as f:
                out[os.path.relpath(os.path.join(root, name), path)] = f.read()
    return out


def _write_folder(path, files):
    os.makedirs(path, exist_ok=True)
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
        with open(os.path.join(path, name), "w") as f:
            f.write(text)


OLD = {"saved_model.pb": "old", "variables/variables.index": "old-vars"}
NEW = {"saved_model.pb": "new", "variables/variables.index": "new-vars", "extra": "x"}


@pytest.fixture
def points(monkeypatch):
    seen = []
    monkeypatch.setattr(atomic, "_fault_point", seen.append)
    return seen


def test_file_is_written_beside_and_renamed_over(tmp_path, points):
    target = tmp_path / "report.json"
    target.write_text("old")
    atomic.atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["report.json"]
    assert points == ["replace:before", "replace:done"]


def _export_folder(target, files):
    with atomic.atomic_path(target, SAVED_MODEL) as tmp:
        assert _tree(target) == OLD  # the old one stays whole while the new one is written
        _write_folder(tmp, files)


@pytest.mark.skipif(atomic._renameat2 is None, reason="no renameat2 here")
def test_a_file_write_creates_its_missing_folders(tmp_path):
    path = tmp_path / "out" / "deeper" / "x.bin"
    atomic.atomic_write_bytes(path, b"abc")
    assert path.read_bytes() == b"abc"
    assert os.listdir(path.parent) == ["x.bin"]


def test_folder_is_swapped_in_one_exchange(tmp_path, points):
    target = tmp_path / "saved_model"
    _write_folder(target, OLD)
    _export_folder(target, NEW)
    assert _tree(target) == NEW
    assert os.listdir(tmp_path) == ["saved_model"]
    assert points == ["replace:before", "replace:exchanged", "replace:done"]


def _einval_renameat2(*args):
    ctypes.set_errno(errno.EINVAL)
    return -1


@pytest.mark.parametrize("renameat2", [None, _einval_renameat2], ids=["missing", "EINVAL"])
def test_fallback_renames_the_old_folder_aside_then_the_new_one_in(
    tmp_path, points, monkeypatch, renameat2
):
    monkeypatch.setattr(atomic, "_renameat2", renameat2)
    target = tmp_path / "saved_model"
    _write_folder(target, OLD)
    _export_folder(target, NEW)
    assert _tree(target) == NEW
    assert os.listdir(tmp_path) == ["saved_model"]
    assert points == ["replace:before", "replace:aside", "replace:exchanged", "replace:done"]


def test_an_exchange_error_other_than_unsupported_is_raised_and_keeps_the_old(
    tmp_path, monkeypatch
):
    def eacces(*args):
        ctypes.set_errno(errno.EACCES)
        return -1

    monkeypatch.setattr(atomic, "_renameat2", eacces)
    target = tmp_path / "saved_model"
    _write_folder(target, OLD)
    with pytest.raises(PermissionError, match="saved_model"):
        _export_folder(target, NEW)
    assert _tree(target) == OLD and os.listdir(tmp_path) == ["saved_model"]


def test_a_failed_export_keeps_the_old_and_leaves_nothing(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic.atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.keras"]
    with pytest.raises(FileNotFoundError, match="Nothing was written to .*model.keras"):
        with atomic.atomic_path(target):
            pass
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.keras"]


def test_tool_temp_files_go_in_the_hidden_folder_and_go_with_it(tmp_path):
    before = tempfile.gettempdir()
    with atomic.atomic_path(tmp_path / "model.tflite") as tmp:
        made = tempfile.mkdtemp()  # what the TFLite converter or autograph would do
        work = os.path.dirname(os.path.dirname(tmp))  # the hidden folder: result/<name>
        assert os.path.dirname(os.path.dirname(made)) == work
        with open(tmp, "wb") as f:
            f.write(b"lite")
    assert not os.path.exists(made) and tempfile.gettempdir() == before
    assert os.listdir(tmp_path) == ["model.tflite"]


@pytest.mark.parametrize("name", ["tempfiles", "result", "sm"])
def test_any_name_can_be_written_even_those_of_the_hidden_folders_parts(tmp_path, name):
    # the hidden folder holds the temporary files' folder beside the result's
    with atomic.atomic_path(tmp_path / name) as tmp:
        scratch = tempfile.mkdtemp()
        _write_folder(tmp, {"saved_model.pb": "graph"})
        assert not os.path.commonpath([scratch, tmp]) == tmp
    assert _tree(tmp_path / name) == {"saved_model.pb": "graph"}
    assert os.listdir(tmp_path) == [name]


def test_recover_restores_a_folder_a_dead_writer_renamed_aside(tmp_path):
    dead = _dead_pid()
    target = tmp_path / "saved_model"
    _write_folder(tmp_path / f".saved_model.old-{dead}-abcd1234", OLD)  # killed after aside
    _write_folder(tmp_path / f".saved_model.tmp-{dead}-efgh5678" / "saved_model", NEW)
    restored = atomic.recover(target)
    assert _tree(target) == OLD and os.listdir(tmp_path) == ["saved_model"]
    assert len(restored) == 2
    assert atomic.recover(target) == []  # nothing left to do


def test_the_next_write_removes_dead_writers_leftovers_and_keeps_live_ones(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    target = tmp_path / "model.keras"
    target.write_text("old")
    names = {
        f".model.keras.tmp-{dead}-aaaa1111": False,  # removed
        f".model.keras.old-{dead}-bbbb2222": False,
        f".model.keras.tmp-{live}-cccc3333": True,  # a live writer's: kept
        f".other.keras.tmp-{dead}-dddd4444": True,  # another target's: not this write's
        ".model.keras.tmp": True,  # not a name of ours
    }
    for name in names:
        os.makedirs(tmp_path / name)
    atomic.atomic_write_text(target, "new")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["model.keras", *(n for n, k in names.items() if k)]
    )
    assert target.read_text() == "new"


def test_hidden_names_parse_and_bad_kinds_are_named():
    name = atomic.hidden_name("train-00000-of-00002.tfrecord")
    assert atomic.parse_hidden(name) == ("train-00000-of-00002.tfrecord", "tmp", os.getpid())
    assert atomic.parse_hidden("train-00000-of-00002.tfrecord") is None
    with pytest.raises(ValueError, match="kind='new'"):
        atomic.hidden_name("x", "new")


# ---- the conversion commit -------------------------------------------------------------


def _write_split(folder, split, n_shards, tag, deferred=True):
    writer = shards.ShardWriter(str(folder), split, n_shards, compression="", deferred=deferred)
    with writer:
        for i in range(2 * n_shards):
            writer.write(f"{tag}-{split}-{i}".encode())
    return writer


def _visible(folder):
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


class _Killed(BaseException):
    pass


@contextlib.contextmanager
def _killed_at(monkeypatch, point):
    """Runs the block with ``atomic._fault_point`` raising at ``point`` (a kill there)."""

    def fault(name):
        if name == point:
            raise _Killed

    monkeypatch.setattr(atomic, "_fault_point", fault)
    with pytest.raises(_Killed):
        yield


def test_a_commit_interrupted_midway_is_rolled_forward_once(tmp_path, monkeypatch):
    _write_split(tmp_path, "train", 4, "old", deferred=False)
    assert _visible(tmp_path) == [f"train-0000{i}-of-00004.tfrecord" for i in range(4)]
    train, test = (
        _write_split(tmp_path, "train", 2, "new"),
        _write_split(tmp_path, "test", 1, "new"),
    )
    with _killed_at(monkeypatch, "commit:renamed"):
        shards.commit(str(tmp_path), [train, test], {"splits": {"train": {}, "test": {}}})
    assert os.path.exists(tmp_path / shards.JOURNAL_NAME)
    monkeypatch.setattr(atomic, "_fault_point", lambda name: None)
    recovery = shards.recover_interrupted(str(tmp_path))
    assert recovery.rolled_forward and recovery
    assert _visible(tmp_path) == [
        "manifest.json",
        "test-00000-of-00001.tfrecord",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]  # every new shard, no stale train-*-of-00004, no hidden file, no journal
    assert sorted(os.listdir(tmp_path)) == _visible(tmp_path)
    assert sorted(shards.read_manifest(str(tmp_path))["splits"]) == ["test", "train"]
    assert not shards.recover_interrupted(str(tmp_path))  # idempotent: nothing left


def test_a_reader_finishes_an_interrupted_commit_before_listing_shards(tmp_path, monkeypatch):
    from tfcompress.data import reader

    _write_split(tmp_path, "train", 4, "old", deferred=False)
    train = _write_split(tmp_path, "train", 2, "new")
    with _killed_at(monkeypatch, "commit:renamed"):
        shards.commit(str(tmp_path), [train], {"splits": {"train": {}}})
    monkeypatch.setattr(atomic, "_fault_point", lambda name: None)
    files = reader.list_shards(str(tmp_path / "train-*.tfrecord"))
    assert [os.path.basename(f) for f in files] == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]  # the new dataset only: no stale train-*-of-00004
    assert not os.path.exists(tmp_path / shards.JOURNAL_NAME)


def test_without_a_journal_recovery_removes_only_dead_writers_shards(tmp_path):
    dead = _dead_pid()
    live = _write_split(tmp_path, "train", 1, "new")  # this (live) process's, uncommitted
    stray = tmp_path / f".train-00000-of-00001.tfrecord.tmp-{dead}-0a1b2c3d"
    stray.write_bytes(b"half")
    (tmp_path / f".manifest.json.tmp-{dead}-0a1b2c3d").write_text("{")
    recovery = shards.recover_interrupted(str(tmp_path))
    assert not recovery.rolled_forward and len(recovery.removed) == 2
    assert os.listdir(tmp_path) == [os.path.basename(live.temp_paths[0])]
    assert not shards.recover_interrupted(str(tmp_path / "missing"))


@pytest.mark.parametrize(
    "journal, message",
    [
        ({"renames": [], "remove": ["manifest.json"], "manifest": None}, "deletes 'manifest.json'"),
        ({"renames": [], "remove": ["../x-00000-of-00001.tfrecord"], "manifest": None}, "deletes"),
        ({"renames": [[".a.tmp-1-x", "../a"]], "remove": [], "manifest": None}, "renames"),
        ({"renames": []}, "not a valid journal"),
    ],
)
def test_a_crafted_journal_is_refused_by_name(tmp_path, journal, message):
    (tmp_path / "manifest.json").write_text("{}")
    path = tmp_path / shards.JOURNAL_NAME
    path.write_text(json.dumps(journal))
    with pytest.raises(ValueError, match=message) as info:
        shards.recover_interrupted(str(tmp_path))
    assert str(path) in str(info.value)
    assert (tmp_path / "manifest.json").read_text() == "{}"


def test_a_file_is_not_written_over_a_folder_nor_a_folder_over_a_file(tmp_path):
    """`export.tflite(model, "exported")` onto a SavedModel folder replaced the folder by
    the file (and a SavedModel written at a file's path replaced the file)."""
    folder = tmp_path / "exported"
    _write_folder(folder, {"saved_model.pb": "graph"})
    with pytest.raises(IsADirectoryError, match=rf"{folder} is a folder, and a file was "
                       r"written for it: it is left as it is, not replaced"):
        atomic.atomic_write_bytes(folder, b"tflite")
    assert _tree(folder) == {"saved_model.pb": "graph"}
    target = tmp_path / "model.keras"
    target.write_bytes(b"keras zip")
    with pytest.raises(NotADirectoryError, match=rf"{target} is a file, and a folder was "
                       r"written for it"):
        with atomic.atomic_path(target) as tmp:
            _write_folder(tmp, {"saved_model.pb": "graph"})
    assert target.read_bytes() == b"keras zip"
    assert sorted(os.listdir(tmp_path)) == ["exported", "model.keras"]  # no leftovers


# ---- what a write refuses to replace ---------------------------------------------------


def _snapshot(path):
    """Every name under `path` with its text (files) or None (folders and links)."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            is_file = os.path.isfile(p) and not os.path.islink(p)
            out[os.path.relpath(p, path)] = open(p).read() if is_file else None
    return out


def _refused(path, error, match, folder_kind=SAVED_MODEL):
    entered = []
    with pytest.raises(error, match=match):
        with atomic.atomic_path(path, folder_kind) as tmp:
            entered.append(tmp)
            _write_folder(tmp, NEW)
    assert entered == []  # refused before anything was written


USER_FILES = {"m.tflite": "earlier export", "notes.txt": "my notes", "runs/a/log": "log"}


@pytest.mark.parametrize("folder_kind", [SAVED_MODEL, None], ids=["SavedModel", "unsaid"])
def test_a_folder_holding_other_files_is_refused_and_left_as_it_is(tmp_path, folder_kind):
    """`export.saved_model(model, "out")` onto an `out/` of earlier exports and notes
    deleted them all."""
    out = tmp_path / "out"
    _write_folder(out, USER_FILES)
    before = _snapshot(tmp_path)
    what = " and is not a SavedModel \\(it holds no saved_model.pb or saved_model.pbtxt\\)"
    _refused(out, FileExistsError, rf"{out} is a folder that holds other files \(m.tflite, "
             rf"notes.txt, runs/\){what if folder_kind else ''}: it is left as it is, not "
             r"replaced. Give the path of a new or empty folder, or remove this one first.",
             folder_kind)
    assert _snapshot(tmp_path) == before


def test_a_folder_of_many_files_is_named_by_its_first_few(tmp_path):
    out = tmp_path / "out"
    _write_folder(out, {f"f{i}": "x" for i in range(7)})
    _refused(out, FileExistsError, r"other files \(f0, f1, f2, f3 and 3 more\)")


def test_replace_itself_refuses_a_folder_holding_other_files(tmp_path):
    """The check is in `replace` too: a folder filled while the new one was written."""
    new, out = tmp_path / "new", tmp_path / "out"
    _write_folder(new, NEW)
    _write_folder(out, USER_FILES)
    before = _snapshot(tmp_path)
    with pytest.raises(FileExistsError, match=f"{out} is a folder that holds other files"):
        atomic.replace(new, out, SAVED_MODEL)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "old", [{}, OLD, {"saved_model.pbtxt": "old text"}], ids=["empty", "pb", "pbtxt"]
)
def test_an_empty_folder_or_an_earlier_saved_model_is_replaced(tmp_path, old):
    target = tmp_path / "sm"
    _write_folder(target, old)
    with atomic.atomic_path(target, SAVED_MODEL) as tmp:
        _write_folder(tmp, NEW)
    assert _tree(target) == NEW and os.listdir(tmp_path) == ["sm"]


@pytest.mark.parametrize(
    "given, why",
    [
        ("", "the working directory"),
        (".", "the working directory"),
        ("..", "a folder holding the working directory"),
        ("../../..", "a folder holding the working directory"),
        ("../..", "the home folder"),
        ("/", "the file system's root"),
    ],
)
def test_the_working_directory_its_folders_home_and_root_are_never_replaced(
    tmp_path, monkeypatch, given, why
):
    """`saved_model(model, ".")` (or "") swapped the working directory for the SavedModel:
    the project's files were deleted."""
    home, cwd = tmp_path / "home", tmp_path / "home" / "project" / "sm"
    _write_folder(cwd, OLD)  # even a SavedModel: the working directory is never replaced
    (home / "project" / "train.py").write_text("code")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    real = os.path.realpath(given or ".")
    before = _snapshot(tmp_path)
    message = rf"'{given}' is {why}.*\({real}\): it is never replaced, nothing is written"
    _refused(given, PermissionError, message)
    with pytest.raises(PermissionError, match=message):
        atomic.atomic_write_bytes(given, b"tflite")
    assert _snapshot(tmp_path) == before and os.getcwd() == str(cwd)


def test_a_symlink_to_a_folder_is_named_as_a_link(tmp_path):
    """It was refused as "is a file"."""
    real, link = tmp_path / "real_exports", tmp_path / "exports"
    _write_folder(real, OLD)
    os.symlink(real, link)
    before = _snapshot(tmp_path)
    message = rf"{link} is a symbolic link \(to {real}\): it is left as it is, not replaced"
    _refused(link, FileExistsError, message)
    with pytest.raises(FileExistsError, match=message):
        atomic.atomic_write_bytes(link, b"tflite")
    assert _snapshot(tmp_path) == before and os.path.islink(link)


@pytest.mark.parametrize("under", ["sm", "deeper/sm"])
def test_a_file_where_a_folder_is_needed_is_named(tmp_path, under):
    """It was a bare `FileExistsError: [Errno 17] File exists: '.../notes'`."""
    notes = tmp_path / "notes"
    notes.write_text("x")
    path = notes / under
    message = rf"{path} cannot be written: {notes} is a file, not a folder"
    _refused(path, NotADirectoryError, message)
    with pytest.raises(NotADirectoryError, match=message):
        atomic.atomic_write_bytes(path, b"tflite")
    assert os.listdir(tmp_path) == ["notes"] and notes.read_text() == "x"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc here")
@pytest.mark.parametrize("path", ["/proc/sm", "/proc/sub/m.tflite"])
def test_an_unwritable_place_is_named_by_the_path_given(path):
    """The error named the hidden temporary path ('/proc/.sm.tmp-23244-1d2rlogc')."""
    for folder_kind in (SAVED_MODEL, None):
        with pytest.raises(OSError) as info:
            with atomic.atomic_path(path, folder_kind):
                pass
        _names_the_path(info.value, path)
    with pytest.raises(OSError) as info:
        atomic.atomic_write_bytes(path, b"tflite")
    _names_the_path(info.value, path)


def _names_the_path(error, path):
    assert str(error).startswith(f"[Errno {error.errno}] {path} cannot be written: ")
    assert ".tmp-" not in str(error) and isinstance(error.__cause__, OSError)


def test_a_folder_kind_names_its_bad_markers():
    with pytest.raises(ValueError, match=r"Received: markers='saved_model.pb'"):
        atomic.FolderKind("a SavedModel", "saved_model.pb")
    with pytest.raises(ValueError, match=r"Received: name=''"):
        atomic.FolderKind("", ("x",))
