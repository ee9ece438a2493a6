"""Segmentation and detection sets made of real Fashion-MNIST images on larger canvases.

Each 28x28 image is pasted unscaled at a random position on a black (zero) canvas.
Only its *object pixels* are pasted, where

    object pixel  :=  source intensity > OBJECT_THRESHOLD   (= 0, i.e. any nonzero pixel)

so the labels are exact by construction:

- segmentation mask: 0 = background, ``class + 1`` (1..10) on object pixels. Objects are
  pasted in order; a later object overwrites earlier ones where its object pixels fall.
  Invariant: ``mask != 0`` exactly where ``canvas > OBJECT_THRESHOLD``, and every canvas
  value equals the source pixel of the object its mask names.
- detection boxes: the tight box of the object's own object pixels, normalised
  ``[ymin, xmin, ymax, xmax]`` in pixel-edge coordinates (``ymin = top / H``,
  ``ymax = (bottom + 1) / H``), so ``round(box * H)`` recovers the integer extent.
  With ``allow_overlap=False`` (default) the boxes of one canvas never intersect, so
  every box is fully visible; with ``allow_overlap=True`` boxes may overlap and a later
  object may hide part of an earlier one (the box stays the earlier object's full extent).

Deterministic for a given ``seed``. NumPy only.
"""

import numpy as np

OBJECT_THRESHOLD = 0
BACKGROUND = 0
NUM_OBJECT_CLASSES = 10
SEGMENTATION_CLASSES = NUM_OBJECT_CLASSES + 1  # background + 10

_MAX_PLACEMENT_TRIES = 50


def _check_inputs(images, labels, num_images, canvas_size, objects_per_image):
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 [N, H, W]. Received: shape={images.shape}, dtype={images.dtype}"
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape [{images.shape[0]}] to match images. "
            f"Received: labels.shape={labels.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError("images is empty: need at least one source image.")
    if labels.min() < 0 or labels.max() >= NUM_OBJECT_CLASSES:
        raise ValueError(
            f"labels must lie in 0..{NUM_OBJECT_CLASSES - 1}. "
            f"Received: min={labels.min()}, max={labels.max()}"
        )
    if int(num_images) != num_images or num_images < 0:
        raise ValueError(f"num_images must be a non-negative int. Received: {num_images!r}")
    h, w = images.shape[1:]
    if canvas_size < max(h, w):
        raise ValueError(
            f"canvas_size must be >= the source image size {max(h, w)}. "
            f"Received: canvas_size={canvas_size}"
        )
    lo, hi = objects_per_image
    if not 1 <= lo <= hi:
        raise ValueError(
            f"objects_per_image must be (lo, hi) with 1 <= lo <= hi. "
            f"Received: objects_per_image={objects_per_image}"
        )
    has_object = (images > OBJECT_THRESHOLD).any(axis=(1, 2))
    usable = np.flatnonzero(has_object)
    if usable.size == 0:
        raise ValueError(f"No source image has a pixel above OBJECT_THRESHOLD={OBJECT_THRESHOLD}.")
    return images, labels.astype(np.int64), usable


def _tight_box(object_mask):
    """(top, left, bottom, right) inclusive pixel extent of a boolean [h, w] mask."""
    rows = np.flatnonzero(object_mask.any(axis=1))
    cols = np.flatnonzero(object_mask.any(axis=0))
    return rows[0], cols[0], rows[-1], cols[-1]


def _paste(canvas, image, top, left):
    """Pastes the object pixels of ``image`` at (top, left); returns the pasted boolean mask."""
    h, w = image.shape
    obj = image > OBJECT_THRESHOLD
    window = canvas[top : top + h, left : left + w]
    window[obj] = image[obj]
    return obj


def segmentation_mosaic(
    images, labels, num_images, canvas_size=64, objects_per_image=(1, 3), seed=0
):
    """Builds a segmentation set.

    Args:
      images: uint8 ``[N, h, w]`` source images (e.g. ``fashion_mnist.load()[0]``).
      labels: int ``[N]`` classes in ``0..9``.
      num_images: number of canvases to make.
      canvas_size: side of the square canvas, ``>= max(h, w)``.
      objects_per_image: inclusive ``(lo, hi)`` range of objects per canvas.
      seed: RNG seed; the output is a pure function of the arguments.

    Returns:
      ``(canvases, masks)``: uint8 ``[num_images, S, S, 1]`` and uint8 ``[num_images, S, S]``
      with 0 = background and ``class + 1`` on object pixels.
    """
    images, labels, usable = _check_inputs(
        images, labels, num_images, canvas_size, objects_per_image
    )
    rng = np.random.default_rng(seed)
    h, w = images.shape[1:]
    canvases = np.zeros((num_images, canvas_size, canvas_size), np.uint8)
    masks = np.zeros((num_images, canvas_size, canvas_size), np.uint8)
    lo, hi = objects_per_image
    for i in range(num_images):
        for _ in range(rng.integers(lo, hi + 1)):
            src = usable[rng.integers(usable.size)]
            top = rng.integers(canvas_size - h + 1)
            left = rng.integers(canvas_size - w + 1)
            obj = _paste(canvases[i], images[src], top, left)
            masks[i, top : top + h, left : left + w][obj] = labels[src] + 1
    return canvases[..., None], masks


def _overlaps(box, boxes):
    top, left, bottom, right = box
    return any(
        top <= b2 and t2 <= bottom and left <= r2 and l2 <= right for t2, l2, b2, r2 in boxes
    )


def detection_mosaic(
    images,
    labels,
    num_images,
    canvas_size=96,
    objects_per_image=(1, 4),
    seed=0,
    allow_overlap=False,
):
    """Builds a detection set.

    With ``allow_overlap=False`` a position whose box would intersect an earlier box is
    re-drawn up to 50 times; an object that still does not fit is dropped, so a canvas can
    hold fewer than the drawn count (never fewer than one object).

    Returns:
      ``(canvases, boxes, classes)``: uint8 ``[num_images, S, S, 1]``; a list of float32
      ``[k_i, 4]`` normalised ``[ymin, xmin, ymax, xmax]`` tight boxes; a list of int64
      ``[k_i]`` classes in ``0..9``.
    """
    images, labels, usable = _check_inputs(
        images, labels, num_images, canvas_size, objects_per_image
    )
    rng = np.random.default_rng(seed)
    h, w = images.shape[1:]
    canvases = np.zeros((num_images, canvas_size, canvas_size), np.uint8)
    all_boxes, all_classes = [], []
    lo, hi = objects_per_image
    for i in range(num_images):
        boxes, classes = [], []
        for _ in range(rng.integers(lo, hi + 1)):
            src = usable[rng.integers(usable.size)]
            t, lft, b, r = _tight_box(images[src] > OBJECT_THRESHOLD)
            for _ in range(_MAX_PLACEMENT_TRIES):
                top = rng.integers(canvas_size - h + 1)
                left = rng.integers(canvas_size - w + 1)
                box = (top + t, left + lft, top + b, left + r)
                if allow_overlap or not _overlaps(box, boxes):
                    break
            else:
                continue
            _paste(canvases[i], images[src], top, left)
            boxes.append(box)
            classes.append(labels[src])
        pixel_boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        pixel_boxes[:, 2:] += 1.0  # inclusive last pixel -> pixel edge
        all_boxes.append(pixel_boxes / np.float32(canvas_size))
        all_classes.append(np.asarray(classes, np.int64))
    return canvases[..., None], all_boxes, all_classes
