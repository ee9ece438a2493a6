"""Training on small raw classification images decodes blocks of records as each shard is
read and shuffles uint8 pixels (``pipeline._decodes_first``): which sets take that route, and
that it yields what the string-shuffle route yields."""

import numpy as np
import pytest
import tensorflow as tf

from tfcompress.data import build_dataset, encode, parse, pipeline

from .test_data_classification_batches import _jpeg, _write


def _example(image_format, shape):
    image = np.zeros(shape, np.uint8)
    make = {"raw": lambda a: encode.encode_array(a, image_format="raw"), "png": encode.encode_png,
            "jpeg": _jpeg}[image_format]  # fmt: skip
    return tf.train.Example.FromString(encode.classification_example(make(image), 0))


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, True),
        ({"training": False}, False),
        ({"skip_corrupt": True}, False),
        ({"task": "segmentation"}, False),
        ({"first": ("png", (28, 28, 1))}, False),
        ({"first": ("jpeg", (28, 28, 1))}, False),
        ({"first": ("raw", (32, 28, 1))}, False),  # resized to the output size
        ({"channels": 3}, False),  # gray records read as RGB
        ({"shuffle_buffer": 1 << 20}, False),  # 784 MB of pixels in the shuffle buffer
        ({"output_size": (32, 32), "channels": 3, "first": ("raw", (32, 32, 3))}, True),
    ],
)
def test_only_training_on_small_raw_images_of_the_output_size_decodes_first(kwargs, expected):
    args = {"task": "classification", "training": True, "skip_corrupt": False,
            "output_size": (28, 28), "channels": 1, "shuffle_buffer": 2048,
            "first": ("raw", (28, 28, 1)), **kwargs}  # fmt: skip
    first = args.pop("first")
    decided = pipeline._decodes_first(**args, first_record=lambda: _example(*first))
    assert decided is expected


def _records(rng, formats, sizes):
    images = [rng.integers(0, 256, (*s, 1), dtype=np.uint8) for s in sizes]
    make = {"raw": lambda a: encode.encode_array(a, image_format="raw"), "png": encode.encode_png}
    return images, [encode.classification_example(make[f](a), i)
                    for i, (a, f) in enumerate(zip(images, formats, strict=True))]  # fmt: skip


def _by_label(ds):
    out = {}
    for images, labels in ds:
        for image, label in zip(images.numpy(), labels.numpy(), strict=True):
            assert int(label) not in out, f"record {label} drawn twice in one epoch"
            out[int(label)] = image
    return out


@pytest.mark.slow
def test_decoded_first_epoch_equals_the_eval_images_for_every_route(tmp_path):
    """First record raw (so training decodes first); later blocks hold PNGs and records of
    another size, which take the per-image routes inside a block."""
    sizes = [(6, 7)] * 8 + [(6, 7), (9, 5), (6, 7), (4, 4)] * 2
    formats = ["raw"] * 8 + ["png", "raw", "png", "raw"] * 2
    _, records = _records(np.random.default_rng(11), formats, sizes)
    pattern = _write(tmp_path, records, num_shards=2)
    still = parse.ClassificationParser((6, 7), crop_padding=0, flip=False)  # no augmentation
    example = pipeline.first_example(tf.io.gfile.glob(pattern))
    assert pipeline._decodes_first("classification", True, False, (6, 7), 1, 8, lambda: example)
    train = _by_label(build_dataset(pattern, "classification", 5, True, parser=still,
                                    shuffle_buffer=8, drop_remainder=False, seed=1))  # fmt: skip
    evaluate = _by_label(build_dataset(pattern, "classification", 5, False))
    assert sorted(train) == sorted(evaluate) == list(range(16))  # every record once
    for label, image in evaluate.items():
        if sizes[label] == (6, 7):
            np.testing.assert_array_equal(train[label], image)
        else:  # resized, then rounded to uint8 before the shuffle
            np.testing.assert_allclose(train[label], image, atol=0.5 / 255 + 1e-7)


@pytest.mark.slow
def test_decoded_first_is_deterministic_with_a_seed(tmp_path):
    _, records = _records(np.random.default_rng(2), ["raw"] * 24, [(5, 4)] * 24)
    pattern = _write(tmp_path, records, num_shards=3)

    def run(seed):
        ds = build_dataset(pattern, "classification", 4, True, seed=seed, deterministic=True,
                           shuffle_buffer=6)  # fmt: skip
        return [(x.numpy(), y.numpy()) for x, y in ds]

    first, again, other = run(7), run(7), run(8)
    assert len(first) == 6
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert [y.tolist() for _, y in first] != [y.tolist() for _, y in other]
