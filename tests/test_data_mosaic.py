"""Mosaic contracts: exact masks and tight boxes over real Fashion-MNIST pixels, determinism."""

import numpy as np
import pytest

from tfcompress.data import fashion_mnist, mosaic


@pytest.fixture(scope="module")
def source():
    images, labels = fashion_mnist.load(split="test")
    return images[:500], labels[:500]


def test_segmentation_mask_agrees_with_canvas(source):
    images, labels = source
    canvases, masks = mosaic.segmentation_mosaic(images, labels, 40, seed=3)
    assert canvases.shape == (40, 64, 64, 1) and canvases.dtype == np.uint8
    assert masks.shape == (40, 64, 64) and masks.dtype == np.uint8
    assert np.array_equal(masks != 0, canvases[..., 0] > mosaic.OBJECT_THRESHOLD)
    assert masks.max() <= 10
    assert len(np.unique(masks)) > 5


def test_segmentation_single_object_is_the_source_image():
    images = np.zeros((1, 28, 28), np.uint8)
    images[0, 5:9, 10:20] = 200
    images[0, 6, 11] = 0  # a hole stays background
    canvases, masks = mosaic.segmentation_mosaic(
        images, np.array([7]), 4, canvas_size=40, objects_per_image=(1, 1), seed=1
    )
    for canvas, mask in zip(canvases[..., 0], masks, strict=True):
        ys, xs = np.nonzero(mask)
        assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (4, 10)
        assert set(np.unique(mask)) == {0, 8}
        assert (canvas[mask == 8] == 200).all() and (canvas[mask == 0] == 0).all()
        assert mask.sum() == 8 * (40 - 1)


def test_later_object_overwrites_earlier():
    a = np.full((28, 28), 10, np.uint8)
    b = np.full((28, 28), 20, np.uint8)
    canvases, masks = mosaic.segmentation_mosaic(
        np.stack([a, b]), np.array([0, 1]), 50, canvas_size=28, objects_per_image=(2, 2)
    )
    # Both objects cover the whole canvas: the second drawn one wins everywhere.
    assert np.array_equal(masks[..., 0, 0] * 10, canvases[:, 0, 0, 0].astype(np.uint8))
    assert {1, 2} == set(np.unique(masks))


def test_detection_boxes_are_tight_and_disjoint(source):
    images, labels = source
    canvases, boxes, classes = mosaic.detection_mosaic(images, labels, 30, seed=5)
    assert canvases.shape == (30, 96, 96, 1)
    assert len(boxes) == len(classes) == 30
    for canvas, b, c in zip(canvases[..., 0], boxes, classes, strict=True):
        assert b.dtype == np.float32 and c.dtype == np.int64 and 1 <= len(b) <= 4
        assert ((c >= 0) & (c <= 9)).all()
        px = np.round(b * 96).astype(int)
        covered = np.zeros_like(canvas, bool)
        for top, left, bottom, right in px:
            window = canvas[top:bottom, left:right] > 0
            # tight: every edge row/column of the box holds an object pixel
            assert window[0].any() and window[-1].any()
            assert window[:, 0].any() and window[:, -1].any()
            assert not covered[top:bottom, left:right].any()  # disjoint
            covered[top:bottom, left:right] = True
        assert not (canvas[~covered] > 0).any()  # nothing outside the boxes


def test_detection_allow_overlap_places_all(source):
    images, labels = source
    _, boxes, classes = mosaic.detection_mosaic(
        images, labels, 20, canvas_size=28, objects_per_image=(3, 3), allow_overlap=True
    )
    assert all(len(b) == 3 for b in boxes) and all(len(c) == 3 for c in classes)


def test_deterministic_for_seed(source):
    images, labels = source
    a = mosaic.segmentation_mosaic(images, labels, 8, seed=11)
    b = mosaic.segmentation_mosaic(images, labels, 8, seed=11)
    c = mosaic.segmentation_mosaic(images, labels, 8, seed=12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    d1 = mosaic.detection_mosaic(images, labels, 8, seed=11)
    d2 = mosaic.detection_mosaic(images, labels, 8, seed=11)
    assert np.array_equal(d1[0], d2[0])
    assert all(np.array_equal(x, y) for x, y in zip(d1[1], d2[1], strict=True))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(canvas_size=20), r"canvas_size=20"),
        (dict(objects_per_image=(0, 2)), r"objects_per_image=\(0, 2\)"),
        (dict(objects_per_image=(3, 2)), r"objects_per_image=\(3, 2\)"),
    ],
)
def test_bad_arguments(source, kwargs, match):
    images, labels = source
    with pytest.raises(ValueError, match=match):
        mosaic.segmentation_mosaic(images, labels, 2, **kwargs)


def test_bad_labels(source):
    images, labels = source
    with pytest.raises(ValueError, match="max=10"):
        mosaic.detection_mosaic(images, labels + 1, 2)
    with pytest.raises(ValueError, match=r"labels\.shape=\(3,\)"):
        mosaic.detection_mosaic(images, labels[:3], 2)
