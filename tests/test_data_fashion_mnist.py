"""Contract of tfcompress.data.fashion_mnist.load on the real Debian package and bad files."""

import gzip
import os

import numpy as np
import pytest

from tfcompress.data import fashion_mnist


def test_load_real_splits(fmnist_dir):
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = fashion_mnist.load(fmnist_dir, split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert np.array_equal(np.bincount(labels), np.full(10, n // 10))


def test_missing_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz"):
        fashion_mnist.load(str(tmp_path), "train")


def test_unknown_split():
    with pytest.raises(ValueError, match=r"split='val'"):
        fashion_mnist.load(split="val")


def _write_idx(path, magic, array):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_truncated_and_bad_magic_named(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    img_path = os.path.join(tmp_path, "t10k-images-idx3-ubyte.gz")
    lbl_path = os.path.join(tmp_path, "t10k-labels-idx1-ubyte.gz")
    _write_idx(img_path, 2051, images)
    _write_idx(lbl_path, 2049, np.array([1, 2, 3]))
    images_, labels_ = fashion_mnist.load(str(tmp_path), "test")
    assert np.array_equal(images_, images) and labels_.tolist() == [1, 2, 3]

    _write_idx(lbl_path, 2049, np.array([1, 2]))
    with pytest.raises(ValueError, match="count mismatch"):
        fashion_mnist.load(str(tmp_path), "test")
    _write_idx(lbl_path, 2051, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"magic.*t10k-labels-idx1-ubyte\.gz|t10k-labels.*magic"):
        fashion_mnist.load(str(tmp_path), "test")
    with gzip.open(img_path, "wb") as f:
        f.write((2051).to_bytes(4, "big") + b"\x00\x00\x00\x03\x00\x00\x00\x1c\x00\x00\x00\x1c")
    with pytest.raises(ValueError, match=r"Truncated.*t10k-images-idx3-ubyte\.gz"):
        fashion_mnist.load(str(tmp_path), "test")
