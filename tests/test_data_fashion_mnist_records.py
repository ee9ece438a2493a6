"""Fashion-MNIST route on the real Debian package: 60,000 + 10,000 records, labels exact."""

import numpy as np
import pytest

from tfcompress.data import build_dataset, convert, fashion_mnist
from tfcompress.data.sources import fashion_mnist as fmnist_source


def _read(pattern):
    xs, ys = [], []
    for x, y in build_dataset(pattern, "classification", 10000, training=False):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.slow
def test_real_package_round_trip(tmp_path, fmnist_dir):
    manifest = convert.convert(fmnist_source.source(fmnist_dir), str(tmp_path), num_shards=8)
    assert manifest["splits"]["train"]["num_examples"] == 60000
    assert manifest["splits"]["test"]["num_examples"] == 10000
    assert manifest["splits"]["train"]["shard_counts"] == [7500] * 8
    assert manifest["splits"]["test"]["class_histogram"] == {str(c): 1000 for c in range(10)}
    assert len(list(tmp_path.glob("train-*-of-00008.tfrecord"))) == 8
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = fashion_mnist.load(fmnist_dir, split)
        got_images, got_labels = _read(str(tmp_path / f"{split}-*.tfrecord"))
        assert got_labels.shape == (n,)
        np.testing.assert_array_equal(got_labels, labels)  # same order as the idx file
        np.testing.assert_array_equal(got_images[..., 0], images / np.float32(255))
