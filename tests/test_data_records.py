"""Shards, manifest, verify and inspect: atomic writes and corrupt records named by index."""

import gzip
import json
import os
import re
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfcompress import atomic
from tfcompress.data import convert, encode, records, schema, shards
from tfcompress.data.convert import Item, Record, Source
from tfcompress.data.errors import CorruptInputError

ROOT = os.path.dirname(os.path.dirname(__file__))


def _record(i, image=None):
    image = image or encode.encode_png(np.full((4, 5), i, np.uint8), f"img{i}")
    return Record(encode.classification_example(image, i % 2), {i % 2: 1})


def _source(n, fail_at=None, hook=None):
    def load(i):
        if hook:
            hook(i)
        if i == fail_at:
            raise RuntimeError("interrupted")
        return _record(i)

    items = [Item(f"img{i}", lambda i=i: load(i)) for i in range(n)]
    return Source("classification", {"train": items}, ["even", "odd"])


def test_no_whole_looking_shard_while_writing_or_after_a_crash(tmp_path):
    seen = []
    hook = lambda i: seen.append(sorted(p.name for p in tmp_path.glob("train-*")))  # noqa: E731
    with pytest.raises(RuntimeError, match="interrupted"):
        convert.convert(_source(10, fail_at=7, hook=hook), str(tmp_path), 3)
    assert seen and all(names == [] for names in seen)  # nothing visible mid-write
    assert os.listdir(tmp_path) == []  # temp files removed, no manifest


@pytest.mark.slow
def test_killed_conversion_leaves_only_hidden_temp_files(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {ROOT!r})
        from tests.test_data_records import _source
        from tfcompress.data import convert
        def hook(i):
            if i == 5:
                os.kill(os.getpid(), signal.SIGKILL)
        convert.convert(_source(10, hook=hook), {str(tmp_path)!r}, 2)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})  # fmt: skip
    assert result.returncode == -9, result.stderr
    hidden = sorted(atomic.parse_hidden(name)[:2] for name in os.listdir(tmp_path))
    assert hidden == [(f"train-0000{i}-of-00002.tfrecord", "tmp") for i in range(2)]
    assert shards.recover_interrupted(str(tmp_path)).removed  # the dead writer's, removed
    assert os.listdir(tmp_path) == []


def test_manifest_merges_splits_and_stale_shards_go(tmp_path):
    convert.convert(_source(5), str(tmp_path), 4)
    val = Source("classification", {"val": _source(3).splits["train"]}, ["even", "odd"])
    manifest = convert.convert(val, str(tmp_path), 1)
    assert sorted(manifest["splits"]) == ["train", "val"]
    assert manifest["splits"]["train"]["shard_counts"] == [2, 1, 1, 1]
    assert manifest["splits"]["val"]["class_histogram"] == {"0": 2, "1": 1}
    with open(tmp_path / "manifest.json") as f:
        assert json.load(f) == manifest
    convert.convert(_source(5), str(tmp_path), 2)  # re-shard train: 4 old shards removed
    assert sorted(p.name for p in tmp_path.glob("train-*")) == [
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]  # fmt: skip


def _corrupt_set(tmp_path):
    """Shard 0: record 1 has broken PNG bytes. Shard 1: its stream ends inside record 2."""
    bad = encode.EncodedImage(b"\x89PNG\r\n\x1a\ngarbage", "png", 4, 5, 1, "bad")
    with shards.ShardWriter(str(tmp_path), "test", 2) as writer:
        for i in range(6):
            writer.write(_record(i, bad if i == 2 else None).serialized)
    cut = tmp_path / "test-00001-of-00002.tfrecord"
    stream = gzip.decompress(cut.read_bytes())
    cut.write_bytes(gzip.compress(stream[: len(stream) - 20]))
    return str(tmp_path / "test-*.tfrecord")


def test_verify_names_file_and_record(tmp_path):
    report = records.verify_records(_corrupt_set(tmp_path))
    assert report.task == "classification" and report.num_corrupt == 2
    messages = report.messages()
    assert "test-00000-of-00002.tfrecord: record 1:" in messages[0]
    assert "test-00001-of-00002.tfrecord: record 2: truncated" in messages[1]
    with pytest.raises(CorruptInputError, match=r"Corrupt record in .*test-00000-of-00002"
                       r"\.tfrecord: record 1"):  # fmt: skip
        records.verify_records(str(tmp_path / "test-*"), raise_on_error=True)


def test_verify_catches_a_cut_file_tensorflow_reads_silently(tmp_path):
    with shards.ShardWriter(str(tmp_path), "train", 1) as writer:
        for i in range(3):
            writer.write(_record(i).serialized)
    path = tmp_path / "train-00000-of-00001.tfrecord"
    stream = gzip.decompress(path.read_bytes())
    first = 16 + struct.unpack_from("<Q", stream)[0]
    second = first + 16 + struct.unpack_from("<Q", stream, first)[0]
    # A copy cut off after record 1's bytes: the GZIP stream has no end marker.
    path.write_bytes(gzip.compress(stream[:second])[:-8])
    assert sum(1 for _ in tf.data.TFRecordDataset(str(path), "GZIP")) == 2  # TF: no error
    ((index, message),) = records.verify_records(str(path)).files[0].corrupt
    assert index == 2 and message.startswith("truncated GZIP stream")


def test_verify_finds_a_flipped_byte(tmp_path):
    with shards.ShardWriter(str(tmp_path), "val", 1, compression="") as writer:
        for i in range(3):
            writer.write(_record(i).serialized)
    path = tmp_path / "val-00000-of-00001.tfrecord"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside record 1
    path.write_bytes(bytes(data))
    report = records.verify_records(str(path), compression="")
    second = 16 + struct.unpack_from("<Q", data)[0]  # record 1's byte offset
    assert report.messages() == [f"{path}: record 1: data CRC mismatch (byte {second})"]
    assert report.num_records == 3


@pytest.mark.slow
def test_verify_and_inspect_command_lines(tmp_path):
    convert.convert(_source(6), str(tmp_path / "good"), 2)
    pattern = _corrupt_set(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    verify = [sys.executable, "-m", "tfrecords_tools.verify"]
    bad = subprocess.run([*verify, f"--file_pattern={pattern}"],
                         capture_output=True, text=True, cwd=ROOT, env=env)  # fmt: skip
    assert bad.returncode == 1
    assert "corrupt: " in bad.stdout and "test-00000-of-00002.tfrecord: record 1" in bad.stdout
    samples = tmp_path / "samples"
    report = records.inspect_records(str(tmp_path / "good" / "train-*"), num_samples=2,
                                     samples_dir=str(samples))  # fmt: skip
    assert report["num_records"] == 6 and report["task"] == "classification"
    assert report["class_histogram"] == {0: 3, 1: 3}
    assert sorted(p.name for p in samples.iterdir()) == ["sample_000_image.png",
                                                         "sample_001_image.png"]  # fmt: skip
    good = records.verify_records(str(tmp_path / "good" / "*.tfrecord"))
    assert (good.num_records, good.num_corrupt, len(good.files)) == (6, 0, 2)


def _write_split(folder, split, serialized):
    with shards.ShardWriter(str(folder), split, 1) as writer:
        for record in serialized:
            writer.write(record)
    return writer.paths[0]


def _image():
    return encode.encode_png(np.zeros((4, 5), np.uint8), "img")


@pytest.mark.parametrize("label", [2**40, -1])
def test_inspect_refuses_a_label_out_of_range_naming_file_and_record(tmp_path, label):
    # inspect used to np.bincount the labels: 2**40 allocated 8 TiB, -1 raised numpy's
    # "'list' argument must have no negative elements", neither naming the file.
    labels = [label, 0, 1]
    path = _write_split(tmp_path, "train", [encode.classification_example(_image(), i)
                                            for i in labels])  # fmt: skip
    reason = f"image/class/label {label} outside [0, 2**31)"
    assert records.verify_records(path).messages() == [f"{path}: record 0: {reason}"]
    with pytest.raises(CorruptInputError) as info:
        records.inspect_records(path)
    assert str(info.value) == (
        f"Corrupt record in {path}: record 0: {reason}; 1 problem: inspect reads only valid "
        "shards, run verify to list every problem"
    )
    # class_histogram counts stored values, one key per distinct value (no bin per value)
    assert records.class_histogram(path, "classification") == {label: 1, 0: 1, 1: 1}


def test_inspect_and_verify_name_the_files_of_mixed_tasks(tmp_path):
    # inspect used to parse detection records for a label: a raw InvalidArgumentError
    # ("image/class/label ... is required") naming no file.
    cls = _write_split(tmp_path, "a", [encode.classification_example(_image(), i)
                                       for i in range(2)])  # fmt: skip
    det = _write_split(tmp_path, "b", [encode.detection_example(_image(), [[0, 0, 1, 1]], [3])
                                       for _ in range(2)])  # fmt: skip
    pattern = str(tmp_path / "*.tfrecord")
    mixed = (f"detection records while {cls} holds classification records: a pattern reads "
             "as one task (give each task its own)")  # fmt: skip
    assert records.verify_records(pattern).messages() == [
        f"{det}: {mixed}",
        f"{det}: record 0: image/class/label missing",
        f"{det}: record 1: image/class/label missing",
    ]
    with pytest.raises(CorruptInputError) as info:
        records.inspect_records(pattern)
    assert str(info.value) == (
        f"Corrupt file {det}: {mixed}; 3 problems in 1 of 2 files: inspect reads only "
        "valid shards, run verify to list every problem"
    )
    # class_histogram scans with its task: the first record without a label, named
    with pytest.raises(CorruptInputError) as info:
        records.class_histogram(pattern, "classification")
    assert re.fullmatch(rf"Corrupt record in {re.escape(det)}: record 0 \(byte \d+ of the "
                        r"decompressed stream\): image/class/label missing", str(info.value))


def test_class_histogram_names_the_segmentation_mask_that_does_not_decode(tmp_path):
    # it used to raise TensorFlow's InvalidArgumentError of the reduce, naming no file
    good = encode.segmentation_example(_image(), np.zeros((4, 5), np.uint8))
    bad = tf.train.Example.FromString(good)
    bad.features.feature[schema.MASK_ENCODED].bytes_list.value[:] = [b"\x89PNG\r\n\x1a\nbad"]
    path = _write_split(tmp_path, "val", [good, good, bad.SerializeToString()])
    with pytest.raises(CorruptInputError) as info:
        records.class_histogram(path, "segmentation")
    assert str(info.value) == (
        f"Corrupt record in {path}: record 2: image/segmentation/class/encoded does not "
        "decode (run verify to list every problem)"
    )


@pytest.mark.slow
def test_inspect_command_line_refuses_a_bad_label_in_one_line(tmp_path):
    path = _write_split(tmp_path, "train", [encode.classification_example(_image(), 2**40)])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "tfrecords_tools.inspect",
                             f"--file_pattern={path}"], capture_output=True, text=True,
                            cwd=ROOT, env=env)  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: Corrupt record in {path}: record 0: image/class/label 1099511627776 outside "
        "[0, 2**31); 1 problem: inspect reads only valid shards, run verify to list every "
        "problem"
    )


@pytest.mark.parametrize("num_samples", [-2, -1, 1.5, True])
def test_inspect_refuses_a_num_samples_that_is_not_a_count(tmp_path, num_samples):
    # take(-2) meant every record: a PNG was written for each
    path = _write_split(tmp_path, "train", [encode.classification_example(_image(), 0)] * 3)
    samples = tmp_path / "samples"
    with pytest.raises(ValueError, match=re.escape(
            f"num_samples must be an integer >= 0. Received: num_samples={num_samples!r}")):
        records.inspect_records(path, num_samples=num_samples, samples_dir=str(samples))
    assert not samples.exists()
    report = records.inspect_records(path, num_samples=np.int64(0), samples_dir=str(samples))
    assert report["samples"] == [] and report["num_records"] == 3


def test_inspect_command_line_refuses_a_negative_num_samples(tmp_path):
    # fails as the flags are parsed, before TensorFlow starts (about 0.1 s)
    result = subprocess.run([sys.executable, "-m", "tfrecords_tools.inspect",
                             f"--file_pattern={tmp_path}/*", "--num_samples", "-2",
                             f"--samples_dir={tmp_path / 'samples'}"], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert "flag --num_samples=-2: -2 is not a non-negative integer" in result.stderr
    assert not (tmp_path / "samples").exists()
