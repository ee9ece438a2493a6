"""Compression "auto": readers detect GZIP vs uncompressed shards file by file."""

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcompress.data import build_dataset, compression, encode, records, shards

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(directory, split, codec, n=4):
    rng = np.random.default_rng(0)
    with shards.ShardWriter(str(directory), split, 2, compression=codec) as writer:
        for i in range(n):
            pixels = rng.integers(0, 256, (6, 5, 1), dtype=np.uint8)
            image = encode.encode_array(pixels, image_format="raw")
            writer.write(encode.classification_example(image, i % 2))
    return [str(directory / f"{split}-{i:05d}-of-00002.tfrecord") for i in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["GZIP", ""])
def test_detect_and_read_without_being_told(tmp_path, codec):
    files = _write(tmp_path, "train", codec)
    assert [compression.detect(f) for f in files] == [codec, codec]
    auto = build_dataset(str(tmp_path / "train-*"), "classification", 4, training=False)
    told = build_dataset(files, "classification", 4, training=False, compression=codec)
    (a_img, a_lab), (t_img, t_lab) = next(iter(auto)), next(iter(told))
    np.testing.assert_array_equal(a_img, t_img)
    np.testing.assert_array_equal(a_lab, t_lab)
    assert records.verify_records(str(tmp_path / "train-*")).num_corrupt == 0
    assert records.inspect_records(files)["class_histogram"] == {0: 2, 1: 2}


def test_uncompressed_record_whose_length_looks_like_a_gzip_header(tmp_path):
    # A record of 0x??088b1f bytes starts the file with the gzip magic and method byte.
    path = tmp_path / "odd.tfrecord"
    payload = b"x" * 0x088B1F
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(payload)
    assert path.read_bytes()[:3] == b"\x1f\x8b\x08"
    assert compression.detect(str(path)) == ""
    gz = tmp_path / "real.tfrecord"
    with tf.io.TFRecordWriter(str(gz), "GZIP") as writer:
        writer.write(struct.pack("<Q", 1))
    assert compression.detect(str(gz)) == "GZIP"


def test_mixed_compressions_named(tmp_path):
    gz = _write(tmp_path / "a", "train", "GZIP")
    plain = _write(tmp_path / "b", "train", "")
    with pytest.raises(ValueError, match=r"mix compressions: .*a/train-00000-of-00002"
                       r"\.tfrecord is GZIP, .*b/train-00000-of-00002\.tfrecord is "
                       r"uncompressed"):  # fmt: skip
        build_dataset([gz[0], plain[0]], "classification", 2, training=False)


def test_explicit_wrong_compression_named(tmp_path):
    _write(tmp_path, "train", "")
    with pytest.raises(ValueError, match=r"Corrupt record in .*train-00000-of-00002\.tfrecord: "
                       r"record 0 .*not a GZIP stream.*the file looks uncompressed, read as "
                       r"GZIP: pass compression='auto'"):  # fmt: skip
        build_dataset(str(tmp_path / "train-*"), "classification", 2, False, compression="GZIP")


@pytest.mark.parametrize("bad", ["gzip", "ZLIB", None, "NONE"])
def test_unknown_compression_named(tmp_path, bad):
    _write(tmp_path, "train", "GZIP")
    with pytest.raises(ValueError, match=rf"compression must be .*Received: compression={bad!r}"):
        build_dataset(str(tmp_path / "train-*"), "classification", 2, False, compression=bad)
    with pytest.raises(ValueError, match=rf"Received: compression={bad!r}"):
        records.verify_records(str(tmp_path / "train-*"), compression=bad)


@pytest.mark.slow
def test_verify_command_line_detects_uncompressed(tmp_path):
    _write(tmp_path, "val", "")
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.verify", f"--file_pattern={tmp_path}/val-*"],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 records" in result.stdout
