"""convert(shuffle_seed=...): each split written once, in a reproducible random order (the
file-folder converters do it by default, so class-, city- or frame-sorted sources do not
give shards whose neighbouring records are alike)."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tfcompress.data import convert, encode, shards

from .test_data_image_folder import _make_folder

ROOT = os.path.dirname(os.path.dirname(__file__))


def _item(i):
    image = encode.encode_array(tf.fill([2, 2], i).numpy().astype("uint8"), f"img/{i}", "raw")
    return convert.Item(f"img/{i}", lambda: convert.Record(
        encode.classification_example(image, i % 3), {i % 3: 1}))  # fmt: skip


def _source(n=30, splits=("train", "val")):
    return convert.Source("classification", {s: [_item(i) for i in range(n)] for s in splits},
                          ["a", "b", "c"])  # fmt: skip


def _written_order(directory, split, num_shards):
    """source ids in write order: shards are filled round-robin."""
    per_shard = [
        [tf.train.Example.FromString(r.numpy()).features.feature["image/source_id"]
         .bytes_list.value[0].decode() for r in tf.data.TFRecordDataset(
             str(directory / f"{split}-{k:05d}-of-{num_shards:05d}.tfrecord"), "GZIP")]
        for k in range(num_shards)
    ]  # fmt: skip
    return [shard[i] for i in range(len(per_shard[0])) for shard in per_shard if i < len(shard)]


def test_shuffle_seed_writes_every_item_once_in_a_reproducible_order(tmp_path):
    manifest = convert.convert(_source(), str(tmp_path / "a"), 3, shuffle_seed=5)
    convert.convert(_source(), str(tmp_path / "b"), 3, shuffle_seed=5)
    convert.convert(_source(), str(tmp_path / "c"), 3, shuffle_seed=6)
    convert.convert(_source(), str(tmp_path / "plain"), 3)
    source_order = [f"img/{i}" for i in range(30)]
    train = _written_order(tmp_path / "a", "train", 3)
    assert sorted(train) == sorted(source_order) and train != source_order
    assert _written_order(tmp_path / "b", "train", 3) == train  # same seed, same order
    assert _written_order(tmp_path / "c", "train", 3) != train
    assert _written_order(tmp_path / "a", "val", 3) != train  # each split its own order
    assert _written_order(tmp_path / "plain", "train", 3) == source_order
    assert manifest["splits"]["train"]["shuffle_seed"] == 5
    assert manifest["splits"]["train"]["num_examples"] == 30
    assert shards.read_manifest(str(tmp_path / "plain"))["splits"]["train"]["shuffle_seed"] is None


class _Streamed:
    """A split whose examples arrive one by one, number unknown (like a TFDS split)."""

    def __iter__(self):
        yield _item(0)

    def __len__(self):
        return 0


def test_streamed_split_cannot_be_shuffled(tmp_path):
    listed = [_item(i) for i in range(3)]
    streamed = convert.Source("classification", {"val": listed, "train": _Streamed()}, ["a"])
    with pytest.raises(ValueError, match=r"Cannot shuffle split 'train'.*shuffle_seed=1"):
        convert.convert(streamed, str(tmp_path), 1, shuffle_seed=1)
    assert not list(tmp_path.iterdir())  # nothing written, not even the listed split
    convert.convert(streamed, str(tmp_path), 1)  # in source order it converts


@pytest.mark.slow
@pytest.mark.parametrize("flag, seed", [([], 0), (["--noshuffle"], None)])
def test_image_folder_shuffles_by_default(tmp_path, flag, seed):
    _make_folder(tmp_path / "photos", per_class=4)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.image_folder", f"--image_dir={tmp_path / 'photos'}",
         f"--output_dir={out}", "--num_shards=1", "--split=train", *flag],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    train = json.loads((out / "manifest.json").read_text())["splits"]["train"]
    assert train["shuffle_seed"] == seed
    labels = [tf.train.Example.FromString(r.numpy()).features.feature["image/class/label"]
              .int64_list.value[0] for r in tf.data.TFRecordDataset(
                  str(out / "train-00000-of-00001.tfrecord"), "GZIP")]  # fmt: skip
    assert sorted(labels) == [0] * 4 + [1] * 4 + [2] * 4
    assert (labels == sorted(labels)) == (seed is None)  # class-sorted only without shuffle
