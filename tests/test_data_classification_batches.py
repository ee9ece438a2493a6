"""Classification batches: build_dataset parses and decodes whole batches (one decode_raw for
raw pixels, decode_png per image, decode + resize otherwise) and augments once per batch.
Every route gives the pixels of the per-record path; bad records are named or skipped; the
Fashion-MNIST converter writes raw pixels, uncompressed, by default."""

import gzip
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcompress.data import build_dataset, compression, encode, pipeline, shards
from tfcompress.data.sources import fashion_mnist as fmnist_source

ROOT = os.path.dirname(os.path.dirname(__file__))


def _write(directory, records, num_shards=2):
    with shards.ShardWriter(str(directory), "train", num_shards) as writer:
        for r in records:
            writer.write(r)
    return str(directory / "train-*.tfrecord")


def _jpeg(array):
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, "JPEG")
    h, w, c = array.shape
    return encode.EncodedImage(buffer.getvalue(), "jpeg", h, w, c)


def _images(ds):
    return np.concatenate([x.numpy() for x, _ in ds])


def _routes(rng):
    """name -> (records, build_dataset kwargs): one per decoding route."""
    gray = rng.integers(0, 256, (8, 6, 7, 1), dtype=np.uint8)
    rgb = rng.integers(0, 256, (8, 6, 7, 3), dtype=np.uint8)
    sizes = [(6, 7), (9, 5), (6, 7), (4, 4)] * 2

    def records(images, formats):
        raw = lambda a: encode.encode_array(a, image_format="raw")  # noqa: E731
        make = {"raw": raw, "png": encode.encode_png, "jpeg": _jpeg}
        return [encode.classification_example(make[f](a), i) for i, (a, f) in
                enumerate(zip(images, formats, strict=True))]  # fmt: skip

    return {
        "png": (records(rgb, ["png"] * 8), {}),
        "raw gray as rgb": (records(gray, ["raw"] * 8), {"channels": 3}),
        "rgb with jpeg": (records(rgb, ["jpeg", "raw", "png", "png"] * 2), {}),
        "resized": (records(gray, ["raw"] * 8), {"output_size": (5, 9)}),
        "mixed sizes": (
            records(
                [rng.integers(0, 256, (*s, 1), dtype=np.uint8) for s in sizes], ["png", "raw"] * 4
            ),
            {"output_size": (6, 7)},
        ),  # fmt: skip
    }


@pytest.mark.parametrize(
    "route", ["png", "raw gray as rgb", "rgb with jpeg", "resized", "mixed sizes"]
)
@pytest.mark.slow
def test_every_batch_route_equals_the_per_record_path(tmp_path, route):
    records, kwargs = _routes(np.random.default_rng(7))[route]
    pattern = _write(tmp_path, records)
    per_record = build_dataset(pattern, "classification", 4, False, skip_corrupt=True, **kwargs)
    expected = _images(per_record)
    for drop_remainder in (False, True):  # batch size unknown / static (PNGs: unrolled)
        batched = build_dataset(pattern, "classification", 4, False, drop_remainder=drop_remainder,
                                **kwargs)  # fmt: skip
        np.testing.assert_array_equal(_images(batched), expected)
        assert [y.numpy().tolist() for _, y in batched] == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.fixture(params=["decoded first", "serialized shuffled"])
def training_route(request, monkeypatch):
    """Training on small raw images decodes before the shuffle; with no byte budget for
    decoded pixels in the shuffle buffer it shuffles serialized records (as for PNGs)."""
    if request.param == "serialized shuffled":
        monkeypatch.setattr(pipeline, "_DECODED_SHUFFLE_BYTES", 0)
    return request.param


def test_training_batch_is_a_shift_and_flip_of_each_record(tmp_path, training_route):
    arrays = np.random.default_rng(3).integers(1, 256, (16, 10, 12, 1), dtype=np.uint8)
    records = [encode.classification_example(encode.encode_array(a, image_format="raw"), i)
               for i, a in enumerate(arrays)]  # fmt: skip
    pattern = _write(tmp_path, records, num_shards=3)
    ds = build_dataset(pattern, "classification", 8, True, seed=3, deterministic=True)
    assert ds.element_spec[0].shape.as_list() == [8, 10, 12, 1]
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[1].dtype == tf.int32
    seen, moves = [], set()
    for images, labels in ds:
        for image, label in zip(images.numpy(), labels.numpy(), strict=True):
            padded = np.pad(arrays[label] / np.float32(255), [(2, 2), (2, 2), (0, 0)])
            found = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (0, 1)
                     if np.array_equal(image, (lambda w: w[:, ::-1] if flip else w)(
                         padded[dy : dy + 10, dx : dx + 12]))]  # fmt: skip
            assert found, f"record {label} is not a shifted/flipped copy of itself"
            moves.add(found[0])
            seen.append(int(label))
    assert sorted(seen) == list(range(16))  # an epoch: every record once, labels kept
    assert len(moves) > 1  # drawn per example, not once per batch


@pytest.mark.slow
def test_corrupt_raw_record_named_or_skipped(tmp_path, training_route):
    arrays = np.random.default_rng(5).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    records = [encode.classification_example(encode.encode_array(a, image_format="raw"), i % 3)
               for i, a in enumerate(arrays)]  # fmt: skip
    bad = encode.EncodedImage(b"\x00" * 7, "raw", 5, 4, 1, "cam3/frame_0042.png")
    records.insert(2, encode.classification_example(bad, 1))
    pattern = _write(tmp_path, records, num_shards=1)
    for training in (False, True):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"Corrupt record in .*train-00000-of-00001.tfrecord: record 2: "
                           r"raw image/encoded holds 7 bytes, but .* 5 x 4 x 1 = 20"):  # fmt: skip
            list(build_dataset(pattern, "classification", 7, training, seed=0))
    ds = build_dataset(pattern, "classification", 7, False, skip_corrupt=True)
    images, labels = next(iter(ds))
    assert labels.numpy().tolist() == [0, 1, 2, 0, 1, 2]
    np.testing.assert_array_equal(images.numpy()[..., 0], arrays / np.float32(255))


def _write_idx(path, magic, array):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _image_format(serialized):
    return tf.train.Example.FromString(serialized).features.feature["image/format"].bytes_list.value


@pytest.mark.slow
def test_fashion_mnist_converter_writes_raw_uncompressed_by_default(tmp_path):
    rng = np.random.default_rng(0)
    idx = tmp_path / "idx"
    idx.mkdir()
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 6, dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _write_idx(idx / f"{prefix}-images-idx3-ubyte.gz", 2051, images)
        _write_idx(idx / f"{prefix}-labels-idx1-ubyte.gz", 2049, labels)
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.fashion_mnist", f"--fmnist_dir={idx}",
         f"--output_dir={tmp_path / 'out'}", "--num_shards=2", "--splits=train"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pattern = str(tmp_path / "out" / "train-*.tfrecord")
    assert {compression.detect(f) for f in tf.io.gfile.glob(pattern)} == {""}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["compression"] == ""
    first = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "")))
    assert _image_format(first.numpy()) == [b"raw"]
    x, y = next(iter(build_dataset(pattern, "classification", 10, training=False)))
    np.testing.assert_array_equal(y.numpy(), labels)  # in idx order
    np.testing.assert_array_equal(x.numpy()[..., 0], images / np.float32(255))
    png = fmnist_source.source(str(idx), ["test"], image_format="png")  # --image_format png
    assert _image_format(png.splits["test"][0].load().serialized) == [b"png"]
