"""Padded detection targets: a fixed-size `[N, max_boxes, 5]` array Keras can batch.

Row layout: `[ymin, xmin, ymax, xmax, class]`, boxes normalised to `[0, 1]`; rows past an
image's last box are padding with class `PAD_CLASS` (-1) and a zero box.
"""

import numpy as np

from tfcompress.numbers import check_count

PAD_CLASS = -1


def pad_detection_targets(boxes, classes, max_boxes):
    """Packs per-image `boxes [k_i, 4]` and `classes [k_i]` into float32 `[N, max_boxes, 5]`."""
    check_count("max_boxes", max_boxes)
    if len(boxes) != len(classes):
        raise ValueError(
            f"boxes and classes must list the same images. "
            f"Received: len(boxes)={len(boxes)}, len(classes)={len(classes)}"
        )
    targets = np.zeros((len(boxes), max_boxes, 5), np.float32)
    targets[..., 4] = PAD_CLASS
    for i, (b, c) in enumerate(zip(boxes, classes, strict=True)):
        b = np.asarray(b, np.float32).reshape(-1, 4)
        c = np.asarray(c).reshape(-1)
        if len(b) != len(c) or len(b) > max_boxes:
            raise ValueError(
                f"image {i} has {len(b)} boxes and {len(c)} classes; both must be equal and "
                f"<= max_boxes={max_boxes}"
            )
        targets[i, : len(b), :4] = b
        targets[i, : len(b), 4] = c
    return targets
