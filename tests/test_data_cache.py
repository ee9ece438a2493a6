"""build_dataset(cache=...): decoded once, then served from memory or files, equal to the
uncached pipeline."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfcompress.data import build_dataset

from .test_data_pipeline import _classification, _detection, _segmentation, _write

TASKS = {
    "classification": (_classification, {"output_size": (8, 8)}),
    "segmentation": (_segmentation, {"output_size": (12, 12)}),
    "detection": (_detection, {"max_boxes": 3}),
}


def _arrays(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), e) for e in ds]


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        tf.nest.map_structure(np.testing.assert_array_equal, x, y)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_cached_eval_equals_uncached_and_outlives_the_shards(tmp_path, task):
    make, kwargs = TASKS[task]
    pattern = _write(tmp_path, make())
    plain = _arrays(build_dataset(pattern, task, 4, training=False, **kwargs))
    cached = build_dataset(pattern, task, 4, training=False, cache=True, **kwargs)
    _assert_same(_arrays(cached), plain)
    for path in tf.io.gfile.glob(pattern):  # the second pass reads only the cache
        os.remove(path)
    _assert_same(_arrays(cached), plain)


def test_cached_training_epochs_hold_every_record_once(tmp_path):
    records = _classification(n=10)
    pattern = _write(tmp_path, records)
    ds = build_dataset(pattern, "classification", 4, training=True, output_size=(8, 8),
                       cache=True, drop_remainder=False, seed=3)
    first = np.concatenate([labels.numpy() for _, labels in ds])
    second = np.concatenate([labels.numpy() for _, labels in ds])
    expected = sorted(i % 3 for i in range(10))
    assert sorted(first) == expected and sorted(second) == expected
    images = next(iter(ds))[0]
    assert images.shape == (4, 8, 8, 3) and images.dtype == tf.float32


def test_cached_training_is_deterministic_with_a_seed(tmp_path):
    pattern = _write(tmp_path, _segmentation(n=8), num_shards=3)

    def run():
        ds = build_dataset(pattern, "segmentation", 4, training=True, output_size=(10, 10),
                           seed=7, deterministic=True, cache=True, repeat=True)
        return _arrays(ds.take(4))

    _assert_same(run(), run())


@pytest.mark.slow
def test_file_cache_is_written_and_reused(tmp_path):
    pattern = _write(tmp_path / "records", _classification())
    prefix = str(tmp_path / "cache" / "train")
    os.makedirs(tmp_path / "cache")
    plain = _arrays(build_dataset(pattern, "classification", 5, training=False))
    _assert_same(_arrays(build_dataset(pattern, "classification", 5, training=False,
                                       cache=prefix)), plain)
    assert tf.io.gfile.glob(prefix + "*.index")
    # a new pipeline on the same prefix reads the cache files, not the shards
    again = build_dataset(pattern, "classification", 5, training=False, cache=prefix)
    for path in tf.io.gfile.glob(pattern):
        os.remove(path)
    _assert_same(_arrays(again), plain)


@pytest.mark.parametrize(
    "cache, error, match",
    [
        (5, ValueError, "cache=5"),
        ("", ValueError, "cache=''"),
        ("/no/such/dir/cache", FileNotFoundError, "'/no/such/dir'"),
    ],
)
def test_bad_cache_named(tmp_path, cache, error, match):
    pattern = _write(tmp_path, _classification())
    with pytest.raises(error, match=match):
        build_dataset(pattern, "classification", 4, training=True, cache=cache)
