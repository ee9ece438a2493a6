"""build_dataset contracts: element structure per task, determinism, errors, skip_corrupt."""

import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

from tfcompress.data import CorruptInputError, SkippedRecords, build_dataset, encode, parse, shards


def _write(tmp_path, records, split="train", num_shards=2):
    with shards.ShardWriter(str(tmp_path), split, num_shards) as writer:
        for r in records:
            writer.write(r)
    return str(tmp_path / f"{split}-*.tfrecord")


def _classification(n=10, size=(12, 10)):
    rng = np.random.default_rng(0)
    return [encode.classification_example(
        encode.encode_png(rng.integers(0, 256, (*size, 3), dtype=np.uint8)), i % 3)
        for i in range(n)]  # fmt: skip


def _segmentation(n=6, size=(16, 20)):
    rng = np.random.default_rng(1)
    return [encode.segmentation_example(
        encode.encode_png(rng.integers(0, 256, (*size, 1), dtype=np.uint8)),
        rng.integers(0, 4, size, dtype=np.uint8)) for _ in range(n)]  # fmt: skip


def _detection(n=6, size=(20, 20)):
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.2, 0.6, 0.9, 0.9], [0, 0, 1, 1]], np.float32)
    return [encode.detection_example(
        encode.encode_png(np.full((*size, 3), 9 * i, np.uint8)), boxes[: 1 + i % 3],
        np.arange(1 + i % 3)) for i in range(n)]  # fmt: skip


def test_classification_element_spec(tmp_path):
    pattern = _write(tmp_path, _classification())
    for training in (True, False):
        ds = build_dataset(pattern, "classification", 4, training, output_size=(8, 8))
        image_spec, label_spec = ds.element_spec
        assert image_spec.shape.as_list() == [4 if training else None, 8, 8, 3]
        assert image_spec.dtype == tf.float32 and label_spec.dtype == tf.int32
        images, labels = next(iter(ds))
        assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
        assert set(labels.numpy()) <= {0, 1, 2}


def test_segmentation_element_spec_and_labels(tmp_path):
    pattern = _write(tmp_path, _segmentation())
    ds = build_dataset(pattern, "segmentation", 3, training=True, output_size=(12, 12), seed=0)
    image_spec, mask_spec = ds.element_spec
    assert image_spec.shape.as_list() == [3, 12, 12, 1]
    assert mask_spec.shape.as_list() == [3, 12, 12] and mask_spec.dtype == tf.int32
    masks = np.concatenate([m.numpy() for _, m in ds.repeat(3)])
    assert set(np.unique(masks)) <= {0, 1, 2, 3, 255} and (masks == 255).any()
    eval_ds = build_dataset(pattern, "segmentation", 3, training=False)  # native 16x20
    assert eval_ds.element_spec[1].shape.as_list() == [None, 16, 20]


def test_detection_element_spec(tmp_path):
    pattern = _write(tmp_path, _detection())
    ds = build_dataset(pattern, "detection", 2, training=True, max_boxes=5, seed=0)
    image_spec, target_spec = ds.element_spec
    assert image_spec.shape.as_list() == [2, 20, 20, 3]
    assert sorted(target_spec) == ["boxes", "classes", "difficult", "num_boxes"]
    assert target_spec["boxes"].shape.as_list() == [2, 5, 4]
    assert target_spec["classes"].shape.as_list() == [2, 5]
    assert target_spec["classes"].dtype == tf.int32
    assert target_spec["num_boxes"].shape.as_list() == [2]
    eval_target = next(iter(build_dataset(pattern, "detection", 6, training=False, max_boxes=2)))[1]
    assert eval_target["num_boxes"].numpy().tolist() == [1, 2, 2, 1, 2, 2]  # 3 truncated to 2
    default = build_dataset(pattern, "detection", 2, training=False)  # max_boxes left out
    assert default.element_spec[1]["boxes"].shape.as_list() == [None, 100, 4]
    numpy = build_dataset(pattern, "detection", 2, training=False, max_boxes=np.int64(3))
    assert numpy.element_spec[1]["boxes"].shape.as_list() == [None, 3, 4]


def test_deterministic_with_seed(tmp_path):
    pattern = _write(tmp_path, _segmentation(n=8), num_shards=3)

    def run(seed):
        ds = build_dataset(pattern, "segmentation", 4, training=True, output_size=(10, 10),
                           seed=seed, deterministic=True)  # fmt: skip
        return [m.numpy() for _, m in ds]

    a, b, c = run(5), run(5), run(6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_no_matching_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No TFRecord file matches file_pattern=.*nope-\*"):
        build_dataset(str(tmp_path / "nope-*"), "classification", 2, training=False)


def test_uncompressed_read_as_gzip_named(tmp_path):
    with shards.ShardWriter(str(tmp_path), "train", 1, compression="") as writer:
        writer.write(_classification(1)[0])
    with pytest.raises(CorruptInputError, match=r"Corrupt record in .*train-00000-of-00001"
                       r".*: record 0 .*not a GZIP stream"):  # fmt: skip
        build_dataset(str(tmp_path / "train-*"), "classification", 2, False, compression="GZIP")
    ds = build_dataset(str(tmp_path / "train-*"), "classification", 2, False, compression="")
    assert next(iter(ds))[0].shape == (1, 12, 10, 3)


def test_skip_corrupt_drops_undecodable_records(tmp_path):
    records = _classification(6)
    bad = encode.EncodedImage(b"\x89PNG\r\n\x1a\nbroken", "png", 12, 10, 3, "bad")
    records.insert(2, encode.classification_example(bad, 1))
    pattern = _write(tmp_path, records, num_shards=1)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Corrupt record in .*train-00000-"
        r"of-00001.tfrecord: record 2: image/encoded or its mask does not decode "
        r"\(tfrecords_tools.verify shows the decoder error\)",
    ):
        list(build_dataset(pattern, "classification", 7, training=False))
    skipped = SkippedRecords()
    ds = build_dataset(pattern, "classification", 7, training=False, skip_corrupt=True,
                       skipped=skipped)  # fmt: skip
    assert next(iter(ds))[1].numpy().tolist() == [0, 1, 2, 0, 1, 2]  # bad one gone
    assert skipped.records == [(str(tmp_path / "train-00000-of-00001.tfrecord"), 2,
                                "image/encoded or its mask does not decode "
                                "(tfrecords_tools.verify shows the decoder error)")]  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(task="depth", batch_size=2), r"task='depth'"),
        (dict(task="classification", batch_size=0), r"batch_size=0"),
        # each of these was read as something else, or failed in TensorFlow naming nothing
        (dict(task="classification", batch_size=True), r"batch_size must be an integer >= 1"
         r"\. Received: batch_size=True"),
        (dict(task="classification", batch_size=2, num_classes=2.7), r"num_classes must be an "
         r"integer >= 1 or None\. Received: num_classes=2\.7"),
        (dict(task="classification", batch_size=2, channels=2), r"channels must be 1, 3 or "
         r"None\. Received: channels=2"),
        (dict(task="classification", batch_size=2, cycle_length=0), r"cycle_length=0"),
        (dict(task="classification", batch_size=2, shuffle_buffer=0), r"shuffle_buffer=0"),
        (dict(task="classification", batch_size=2, repeat="no"), r"repeat must be True or "
         "False"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    pattern = _write(tmp_path, _classification(2))
    with pytest.raises(ValueError, match=match):
        build_dataset(pattern, training=False, **kwargs)


def test_arguments_it_would_leave_unread_are_refused(tmp_path):
    # each was silently ignored: skipped without skip_corrupt (an invalid record raised and
    # skipped read 0), max_boxes for a target without boxes or beside a parser's own
    pattern = _write(tmp_path, _classification(2))
    skipped = SkippedRecords()
    with pytest.raises(ValueError, match=re.escape(
            "skipped counts the records skip_corrupt=True leaves out; without it a bad record "
            "raises and nothing is counted. Pass skip_corrupt=True with it, or leave skipped "
            f"out. Received: skip_corrupt=False, skipped={skipped!r}")):
        build_dataset(pattern, "classification", 2, False, skipped=skipped)
    for task in ("classification", "segmentation"):
        with pytest.raises(ValueError, match=re.escape(
                "max_boxes is read only for task='detection' (the box rows each target is "
                f"padded to); a {task} target holds no boxes. Leave max_boxes out. "
                f"Received: task={task!r}, max_boxes=100")):
            build_dataset(pattern, task, 2, False, max_boxes=100)
    parser = parse.DetectionParser((12, 10), max_boxes=4)
    with pytest.raises(ValueError, match=re.escape(
            "max_boxes is read by the default parser only; the parser given pads to its own "
            "max_boxes (parse.DetectionParser(output_size, max_boxes=...)). Give it there. "
            f"Received: max_boxes=5, parser={parser!r}")):
        build_dataset(pattern, "detection", 2, False, max_boxes=5, parser=parser)
    with pytest.raises(ValueError, match=re.escape(
            "max_boxes must be an integer >= 1 or None. Received: max_boxes=True")):
        build_dataset(pattern, "detection", 2, False, max_boxes=True)
    # with skip_corrupt, or left out, as before
    ds = build_dataset(pattern, "classification", 2, False, skip_corrupt=True, skipped=skipped)
    assert [y.numpy().tolist() for _, y in ds] == [[0, 1]] and skipped.count == 0



def test_file_pattern_may_be_a_path_or_a_list_of_paths(tmp_path):
    # a pathlib.Path failed with "'PosixPath' object is not iterable"
    pattern = _write(tmp_path, _classification(4))
    shard_paths = sorted(tmp_path.glob("train-*.tfrecord"))
    for file_pattern in (pathlib.Path(pattern), shard_paths, tuple(shard_paths)):
        ds = build_dataset(file_pattern, "classification", 4, False)
        assert sorted(next(iter(ds))[1].numpy().tolist()) == [0, 0, 1, 2]
    for bad in (3, None, [pattern, 3]):
        with pytest.raises(ValueError, match=re.escape(
                "file_pattern must be a glob (a str or a path such as pathlib.Path) or a list "
                f"of them. Received: file_pattern={bad!r}")):  # fmt: skip
            build_dataset(bad, "classification", 4, False)


@pytest.mark.parametrize("output_size", [32, np.array([[8, 8]]), (8, 0), (8.0, 8), (8, 8, 3),
                                         "88", np.array([8.0, 8.0]), (True, 8)])  # fmt: skip
def test_output_size_that_is_not_a_pair_of_sizes_is_refused(tmp_path, output_size):
    # 32 failed with "'int' object is not iterable", an array with "truth value of an
    # array ... is ambiguous"
    pattern = _write(tmp_path, _classification(2), num_shards=1)
    with pytest.raises(ValueError, match=re.escape(
            "output_size must be (height, width): a tuple, list or 1-D array of 2 integers "
            f">= 1. Received: output_size={output_size!r}")):  # fmt: skip
        build_dataset(pattern, "classification", 2, False, output_size=output_size)


def test_output_size_may_be_a_list_or_an_array_of_numpy_ints(tmp_path):
    pattern = _write(tmp_path, _classification(2), num_shards=1)
    for output_size in ([8, 6], np.array([8, 6]), (np.int64(8), np.int32(6))):
        ds = build_dataset(pattern, "classification", 2, False, output_size=output_size)
        assert ds.element_spec[0].shape.as_list() == [None, 8, 6, 3]
    assert parse.make_parser("segmentation", np.array([8, 6])).output_size == (8, 6)


@pytest.mark.parametrize("seed", ["a", 1.5, True, np.float64(2.0)])
def test_seed_that_is_not_an_integer_is_refused(tmp_path, seed):
    # "a" failed in TensorFlow's random_seed, 1.5 with "Cannot convert 1.5 to EagerTensor"
    pattern = _write(tmp_path, _classification(2), num_shards=1)
    with pytest.raises(ValueError, match=re.escape(
            f"seed must be an integer or None. Received: seed={seed!r}")):  # fmt: skip
        build_dataset(pattern, "classification", 2, True, seed=seed)


def test_seed_may_be_a_numpy_integer(tmp_path):
    pattern = _write(tmp_path, _classification(4), num_shards=1)
    labels = [sorted(next(iter(build_dataset(pattern, "classification", 4, True, seed=s)))[1]
                     .numpy().tolist()) for s in (np.int64(3), -1)]  # fmt: skip
    assert labels == [[0, 0, 1, 2]] * 2

@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 3])
def test_raw_png_and_mixed_shards_give_identical_pixels(tmp_path, channels):
    rng = np.random.default_rng(4)
    arrays = rng.integers(0, 256, (9, 6, 7, channels), dtype=np.uint8)
    expected = arrays / np.float32(255)
    formats = {"png": ["png"] * 9, "raw": ["raw"] * 9, "mixed": ["raw", "png", "png"] * 3}
    for name, fmts in formats.items():
        recs = [encode.classification_example(encode.encode_array(a, image_format=f), i)
                for i, (a, f) in enumerate(zip(arrays, fmts, strict=True))]  # fmt: skip
        pattern = _write(tmp_path / name, recs, num_shards=3)
        for skip_corrupt in (False, True):  # batched path, per-element path
            ds = build_dataset(pattern, "classification", 4, False, skip_corrupt=skip_corrupt)
            images = np.concatenate([x.numpy() for x, _ in ds])
            np.testing.assert_array_equal(images, expected, err_msg=f"{name} {skip_corrupt}")


def test_raw_segmentation_canvas(tmp_path):
    canvas = np.arange(48, dtype=np.uint8).reshape(6, 8, 1)
    record = encode.segmentation_example(
        encode.encode_array(canvas, image_format="raw"), (canvas[..., 0] % 3).astype(np.uint8)
    )
    ds = build_dataset(_write(tmp_path, [record], num_shards=1), "segmentation", 1, False)
    image, mask = next(iter(ds))
    np.testing.assert_array_equal(image[0].numpy(), canvas / np.float32(255))
    np.testing.assert_array_equal(mask[0].numpy(), canvas[..., 0] % 3)


@pytest.mark.slow
def test_classification_training_deterministic_with_seed(tmp_path):
    pattern = _write(tmp_path, _classification(n=20), num_shards=3)

    def run(seed):
        ds = build_dataset(pattern, "classification", 8, True, seed=seed, deterministic=True)
        return np.concatenate([x.numpy() for x, _ in ds])

    first = run(1)
    np.testing.assert_array_equal(first, run(1))
    assert not np.array_equal(first, run(2))


def test_bad_image_format_named():
    with pytest.raises(ValueError, match=r"image_format must be 'png' or 'raw'. Received: 'gif'"):
        encode.encode_array(np.zeros((2, 2), np.uint8), image_format="gif")
