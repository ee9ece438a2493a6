"""Conversions killed (SIGKILL) inside a split, between splits and at each step of the commit,
over an earlier conversion: after `shards.recover_interrupted` the folder holds the old
dataset or the new one, whole (the manifest lists exactly the shards present, with their
counts, all readable), and the next conversion leaves no hidden file and nothing in $TMPDIR.

One subprocess (TMPDIR pointed at a test folder) imports TensorFlow once and forks a child
per kill, each replacing `tfcompress.atomic._fault_point` (or an item's load) with a SIGKILL.
The old conversion has splits train, test and val in 4 shards; the new one train and test in
2, so a commit also deletes stale shards and keeps val listed.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from .test_kill_exports import ROOT, _in_child, _kill_at

# (fault point, its occurrence, what the folder holds after recovery)
CASES = [
    ("load test", 3, "old"),  # inside the second split
    ("convert:split-written", 1, "old"),  # between the splits
    ("convert:split-written", 2, "old"),  # every split written, nothing committed
    ("replace:before", 1, "old"),  # the journal written, not yet renamed into place
    ("commit:journal-written", 1, "new"),
    ("commit:renamed", 1, "new"),
    ("commit:renamed", 3, "new"),
    ("commit:stale-removed", 1, "new"),
    ("commit:manifest-written", 1, "new"),
]
OLD_SPLITS, NEW_SPLITS = {"train": 8, "test": 4, "val": 3}, {"train": 6, "test": 5}
_kill_in_load = [None]  # (split, item index) at which an item's load kills the process


def _source(age, sizes):
    from tfcompress.data.convert import Item, Record, Source

    def load(split, i):
        if _kill_in_load[0] == (split, i):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        return Record(f"{age}/{split}/{i}".encode(), {i % 2: 1})

    splits = {
        split: [Item(f"{split}/{i}", lambda s=split, i=i: load(s, i)) for i in range(n)]
        for split, n in sizes.items()
    }
    return Source("classification", splits, ["even", "odd"])


def _convert_new(folder):
    from tfcompress.data import convert

    convert.convert(_source("new", NEW_SPLITS), folder, 2)


def _drive(work):
    """The subprocess: the old conversion, then a kill per case over a copy of it."""
    from tfcompress.data import convert

    base = os.path.join(work, "base")
    statuses = [_in_child(lambda: convert.convert(_source("old", OLD_SPLITS), base, 4))]

    def kill(i, folder):
        point, occurrence, _ = CASES[i]
        if point.startswith("load "):
            _kill_in_load[0] = (point.split()[1], occurrence)
        else:
            _kill_at(point, occurrence)
        _convert_new(folder)

    for i in range(len(CASES)):
        folder = os.path.join(work, "cases", str(i))
        shutil.copytree(base, folder)
        statuses.append(_in_child(lambda i=i, folder=folder: kill(i, folder)))
    report = {"statuses": statuses, "tmpdir": sorted(os.listdir(os.environ["TMPDIR"]))}
    with open(os.path.join(work, "report.json"), "w") as f:
        json.dump(report, f)


def _dataset(folder):
    """{split: age of all its records} after checking the manifest against the files."""
    import tensorflow as tf

    from tfcompress.data import shards

    manifest = shards.read_manifest(folder)
    files = sorted(n for n in os.listdir(folder) if n.endswith(".tfrecord"))
    listed = sorted(n for e in manifest["splits"].values() for n in e["shards"])
    assert files == listed, f"{folder}: shards {files}, manifest lists {listed}"
    ages = {}
    for split, entry in manifest["splits"].items():
        records = []
        for name, count in zip(entry["shards"], entry["shard_counts"], strict=True):
            got = [r.numpy().decode() for r in tf.data.TFRecordDataset(f"{folder}/{name}", "GZIP")]
            assert len(got) == count, f"{folder}/{name}: {len(got)} records, manifest {count}"
            records += got
        assert len(records) == entry["num_examples"]
        (age,) = {r.split("/")[0] for r in records}
        assert sorted(records) == sorted(f"{age}/{split}/{i}" for i in range(len(records)))
        ages[split] = age
    return ages


EXPECTED = {
    "old": {"train": "old", "test": "old", "val": "old"},
    "new": {"train": "new", "test": "new", "val": "old"},  # val: an earlier run's, kept
}


@pytest.mark.slow
def test_a_killed_conversion_leaves_the_old_or_the_new_dataset_and_nothing_else(tmp_path):
    from tfcompress.data import shards

    (tmp_path / "T").mkdir()
    script = f"import sys; sys.path.insert(0, {ROOT!r}); from tests.test_kill_conversions import _drive; _drive({str(tmp_path)!r})"  # noqa: E501
    env = {**os.environ, "TMPDIR": str(tmp_path / "T"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "report.json") as f:
        report = json.load(f)
    assert report["statuses"] == [0] + [-9] * len(CASES), done.stderr[-3000:]
    assert report["tmpdir"] == []
    assert _dataset(str(tmp_path / "base")) == EXPECTED["old"]
    for i, (point, occurrence, expected) in enumerate(CASES):
        folder = str(tmp_path / "cases" / str(i))
        where = f"killed at {point} #{occurrence}"
        recovery = shards.recover_interrupted(folder)
        assert recovery.rolled_forward == (expected == "new"), where
        assert _dataset(folder) == EXPECTED[expected], where
        assert not [n for n in os.listdir(folder) if n.startswith(".")], where
        _convert_new(folder)  # the next run
        assert _dataset(folder) == EXPECTED["new"], where
        assert not [n for n in os.listdir(folder) if n.startswith(".")], where
