"""Augmentation contracts: pure functions of (seed, inputs) that keep labels aligned."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfcompress.data import augment, parse

SEED = tf.constant([1, 2], tf.int64)


def _image(h=8, w=10, c=3):
    return tf.reshape(tf.range(h * w * c, dtype=tf.float32), [h, w, c]) / (h * w * c)


def _mask_of(image):
    """A mask that equals the image's first channel, scaled to 0..99: alignment is checkable."""
    return tf.cast(tf.round(image[..., 0] * 99), tf.uint8)


def test_same_seed_same_result():
    image = _image()
    a = augment.random_rotate(SEED, image, _mask_of(image))
    b = augment.random_rotate(SEED, image, _mask_of(image))
    c = augment.random_rotate(tf.constant([3, 4], tf.int64), image, _mask_of(image))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_flip_moves_image_mask_and_boxes_together():
    image = _image()
    boxes = tf.constant([[0.1, 0.2, 0.5, 0.3]])
    flipped = [augment.random_flip_left_right(tf.constant([s, 0]), image, _mask_of(image), boxes)
               for s in range(8)]  # fmt: skip
    outcomes = {bool(np.array_equal(f[0], image[:, ::-1])) for f in flipped}
    assert outcomes == {True, False}  # both branches happen
    for out_image, out_mask, out_boxes in flipped:
        np.testing.assert_array_equal(out_mask, _mask_of(out_image))
        if np.array_equal(out_image, image[:, ::-1]):
            np.testing.assert_allclose(out_boxes, [[0.1, 0.7, 0.5, 0.8]], atol=1e-6)
        else:
            np.testing.assert_array_equal(out_boxes, boxes)


def test_crop_or_pad_pads_mask_with_ignore_label():
    image = tf.ones([4, 5, 1])
    mask = tf.fill([4, 5], tf.constant(3, tf.uint8))
    out_image, out_mask = augment.random_crop_or_pad(SEED, image, (7, 6), mask)
    assert out_image.shape == (7, 6, 1) and out_mask.shape == (7, 6)
    out_image, out_mask = out_image.numpy(), out_mask.numpy()
    assert (out_mask[out_image[..., 0] == 1] == 3).all() and (out_image == 1).sum() == 20
    assert (out_mask[out_image[..., 0] == 0] == 255).all() and (out_mask == 255).sum() == 22


def test_crop_is_a_window_of_the_input():
    image = _image(12, 12, 1)
    out, _ = augment.random_crop_or_pad(SEED, image, (5, 4))
    big, small = image.numpy()[..., 0], out.numpy()[..., 0]
    hits = [(y, x) for y in range(8) for x in range(9)
            if np.array_equal(big[y:y + 5, x:x + 4], small)]  # fmt: skip
    assert len(hits) == 1


def test_scale_range_and_nearest_mask():
    image = _image(20, 30)
    for s in range(5):
        out_image, out_mask = augment.random_scale(tf.constant([s, 9]), image, _mask_of(image))
        h, w = out_image.shape[:2]
        assert 10 <= h <= 40 and 15 <= w <= 60 and out_mask.shape == (h, w)
        assert set(np.unique(out_mask)) <= set(np.unique(_mask_of(image)))  # no new ids


def test_rotation_zero_is_identity_and_fills_ignore():
    image = _image(9, 9)
    mask = _mask_of(image)
    same_image, same_mask = augment.random_rotate(SEED, image, mask, max_degrees=0.0)
    np.testing.assert_allclose(same_image, image, atol=1e-6)
    np.testing.assert_array_equal(same_mask, mask)
    transform = augment.rotation_transform(tf.constant(math.pi / 4), 9, 9)
    rotated = augment._transform(mask[..., None], transform, "NEAREST", 255)[..., 0].numpy()
    assert rotated[0, 0] == 255 and rotated[4, 4] == mask[4, 4]  # corners leave, centre stays


def test_rotation_within_ten_degrees():
    mask = tf.zeros([41, 41], tf.uint8)

    def ignored_at(degrees):
        transform = augment.rotation_transform(tf.constant(math.radians(degrees)), 41, 41)
        out = augment._transform(mask[..., None], transform, "NEAREST", 255)
        return int((out.numpy() == 255).sum())

    limit = ignored_at(10.0)  # pixels rotated in from outside grow with |angle|
    assert ignored_at(12.0) > limit > 0
    counts = []
    for s in range(20):
        _, out = augment.random_rotate(tf.constant([s, 1]), tf.zeros([41, 41, 1]), mask)
        counts.append(int((out.numpy() == 255).sum()))
    assert max(counts) <= limit and len(set(counts)) > 5


def test_box_clipping_and_dropping():
    boxes = tf.constant([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 1.0, 1.0], [0.4, 0.4, 0.8, 0.8]])
    # A 2x image (20x20) cropped to its top-left 10x10 window.
    out, keep = augment.scale_crop_boxes(boxes, tf.constant([20, 20]), tf.constant([0, 0]),
                                         tf.constant([10, 10]))  # fmt: skip
    assert keep.numpy().tolist() == [True, False, True]
    np.testing.assert_allclose(out.numpy()[[0, 2]], [[0, 0, 1, 1], [0.8, 0.8, 1, 1]], atol=1e-6)


def test_detection_train_parse_keeps_static_shapes_and_valid_boxes():
    parser = parse.DetectionParser((16, 16), max_boxes=4)
    decoded = {
        "image": tf.zeros([10, 12, 3], tf.uint8),
        "boxes": tf.constant([[0.1, 0.1, 0.3, 0.4], [0.5, 0.5, 0.9, 0.95]]),
        "classes": tf.constant([2, 7], tf.int64),
        "difficult": tf.constant([0, 1], tf.int64),
    }
    for s in range(10):
        image, target = parser.parse_train(decoded, tf.constant([s, 5]))
        assert image.shape == (16, 16, 3) and target["boxes"].shape == (4, 4)
        n = int(target["num_boxes"])
        boxes, classes = target["boxes"].numpy(), target["classes"].numpy()
        assert (classes[n:] == -1).all() and set(classes[:n]) <= {2, 7}
        assert ((boxes >= 0) & (boxes <= 1)).all()
        assert (boxes[:n, 2] > boxes[:n, 0]).all() and (boxes[n:] == 0).all()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: parse.SegmentationParser((0, 4)), r"output_size=\(0, 4\)"),
        (lambda: parse.SegmentationParser((4, 4), scale_range=(2.0, 0.5)),
         r"scale_range=\(2\.0, 0\.5\)"),
        (lambda: parse.DetectionParser((4, 4), max_boxes=0), r"max_boxes=0"),
        (lambda: parse.make_parser("depth", (4, 4)), r"task='depth'"),
    ],
)  # fmt: skip
def test_parser_arguments_validated(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_shift_flip_batch_is_a_padded_window_per_example():
    images = tf.random.stateless_uniform([16, 6, 5, 2], [0, 1])
    out = augment.random_shift_flip_batch(SEED, images, max_shift=2).numpy()
    padded = np.pad(images.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)])
    flips = 0
    for src, got in zip(padded, out, strict=True):
        windows = [src[y:y + 6, x:x + 5] for y in range(5) for x in range(5)]  # fmt: skip
        plain = any(np.array_equal(w, got) for w in windows)
        mirrored = any(np.array_equal(w[:, ::-1], got) for w in windows)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 0 < flips < 16
    single = parse.ClassificationParser((6, 5)).parse_train(
        {"image": tf.cast(images[0] * 255, tf.uint8), "label": tf.constant(3, tf.int64)}, SEED
    )
    assert single[0].shape == (6, 5, 2) and int(single[1]) == 3
