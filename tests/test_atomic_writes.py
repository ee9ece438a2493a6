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
    with atomic.atomic_path(target) as tmp:
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
