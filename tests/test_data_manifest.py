"""The manifest.json of a conversion folder: a damaged or foreign one is refused by name before
any example is converted; readers ignore a foreign one."""

import json

import numpy as np
import pytest

from tfcompress.data import convert, encode, reader, shards
from tfcompress.data.errors import CorruptInputError
from tfcompress.training import inputs


def _source(split="train", classes=("cat", "dog"), task="classification", loaded=None):
    """One example per class; ``loaded`` (a list) collects the ids of the items loaded."""

    def item(i):
        def load():
            if loaded is not None:
                loaded.append(f"{split}/{i}")
            image = encode.encode_array(np.full((2, 2), i, np.uint8), f"{split}/{i}", "raw")
            return convert.Record(encode.classification_example(image, i), {i: 1})

        return convert.Item(f"{split}/{i}", load)

    return convert.Source(task, {split: [item(i) for i in range(len(classes))]}, classes)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "the file is empty"),
        ('{"splits": ', "Expecting value: line 1 column 12 (char 11)"),
        ("[1, 2]", "it holds a JSON array, not an object"),
        ('{"task": "classification"}', 'it has no "splits"'),
        ('{"splits": [1]}', 'its "splits" is a JSON array, not an object'),
        ('{"splits": {"train": 3}}', "its split 'train' is a JSON number, not an object"),
    ],
)
def test_a_damaged_or_foreign_manifest_is_named_before_any_work(tmp_path, content, problem):
    path = tmp_path / "manifest.json"
    path.write_text(content)
    loaded = []
    with pytest.raises(CorruptInputError) as info:
        convert.convert(_source(loaded=loaded), str(tmp_path), 1)
    assert str(info.value).startswith(f"Unreadable shard manifest {path}: {problem}")
    assert loaded == []  # refused before the first example
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    assert path.read_text() == content  # left as it was


def test_readers_ignore_a_foreign_manifest(tmp_path):
    convert.convert(_source(), str(tmp_path), 1)
    shard = str(tmp_path / "train-00000-of-00001.tfrecord")
    assert reader.manifest_num_classes([shard]) == 2
    (tmp_path / "manifest.json").write_text("[1, 2]")  # another tool's file
    assert reader.manifest_num_classes([shard]) is None
    assert inputs.inspect(shard).num_classes is None
    (tmp_path / "manifest.json").write_text("")
    with pytest.raises(CorruptInputError, match="Unreadable shard manifest .*: the file is empty"):
        reader.manifest_num_classes([shard])


def test_a_manifest_converted_here_is_read_back(tmp_path):
    manifest = convert.convert(_source(), str(tmp_path), 1)
    assert shards.read_manifest(str(tmp_path)) == json.loads(
        (tmp_path / "manifest.json").read_text()) == manifest  # fmt: skip


def test_another_split_of_the_same_dataset_merges(tmp_path):
    convert.convert(_source("train"), str(tmp_path), 1)
    manifest = convert.convert(_source("val"), str(tmp_path), 1)
    assert sorted(manifest["splits"]) == ["train", "val"]
    assert manifest["classes"] == ["cat", "dog"] and manifest["num_classes"] == 2
    assert shards.read_manifest(str(tmp_path)) == manifest


def test_each_split_keeps_how_it_was_written(tmp_path):
    convert.convert(_source("train"), str(tmp_path), 1, compression="GZIP", shuffle_seed=3)
    manifest = convert.convert(_source("val"), str(tmp_path), 1, compression="")
    assert "compression" not in manifest and "shuffle_seed" not in manifest
    assert manifest["splits"]["train"]["compression"] == "GZIP"
    assert manifest["splits"]["train"]["shuffle_seed"] == 3
    assert manifest["splits"]["val"]["compression"] == ""
    assert manifest["splits"]["val"]["shuffle_seed"] is None


def test_an_older_manifests_top_level_write_fields_move_to_the_splits_it_keeps(tmp_path):
    old = convert.convert(_source("train"), str(tmp_path), 1, compression="GZIP")
    for entry in old["splits"].values():  # as written before 2026-12-01
        del entry["compression"], entry["shuffle_seed"]
    old.update(compression="GZIP", shuffle_seed=7)
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    manifest = convert.convert(_source("val"), str(tmp_path), 1, compression="")
    assert "compression" not in manifest and "shuffle_seed" not in manifest
    assert manifest["splits"]["train"]["compression"] == "GZIP"
    assert manifest["splits"]["train"]["shuffle_seed"] == 7
    assert manifest["splits"]["val"]["compression"] == ""


def test_a_split_of_another_dataset_is_refused_before_any_work(tmp_path):
    train = convert.convert(_source("train"), str(tmp_path), 1)
    loaded = []
    val = _source("val", classes=("ant", "bee", "cat", "dog", "eel"), loaded=loaded)
    with pytest.raises(ValueError) as info:
        convert.convert(val, str(tmp_path), 1)
    assert str(info.value) == (
        f"Cannot add split(s) ['val'] to {tmp_path / 'manifest.json'}: it describes split(s) "
        "['train'] of another dataset (classes=['cat', 'dog'], num_classes=2), this "
        "conversion has classes=['ant', 'bee', 'cat', 'dog', 'eel'], num_classes=5. The "
        "labels of ['train'] would be read against the new classes: convert into another "
        "folder, or with the same classes."
    )
    assert loaded == []
    assert shards.read_manifest(str(tmp_path)) == train
    assert not list(tmp_path.glob("val-*"))


def test_a_split_of_another_task_is_refused(tmp_path):
    convert.convert(_source("train"), str(tmp_path), 1)
    with pytest.raises(ValueError, match=(
            r"describes split\(s\) \['train'\] of another dataset \(task='classification'\), "
            r"this conversion has task='segmentation'")):  # fmt: skip
        shards.check_merge(str(tmp_path), ["val"], task="segmentation", classes=["cat", "dog"])


def test_reconverting_every_split_may_change_the_classes(tmp_path):
    convert.convert(_source("train"), str(tmp_path), 1)
    manifest = convert.convert(_source("train", classes=("a", "b", "c")), str(tmp_path), 1)
    assert manifest["classes"] == ["a", "b", "c"] and list(manifest["splits"]) == ["train"]
