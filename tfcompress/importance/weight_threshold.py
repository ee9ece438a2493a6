"""Han et al.'s (2015) per-layer threshold: `quality * std(weights)`."""

import numpy as np

from tfcompress.numbers import is_number


def std_threshold_mask(values, quality, mask=None):
    """Binary mask keeping weights with `|w| > quality * std(w)`.

    The standard deviation is taken over the weights that are still unmasked (`mask`
    is the current mask, default all ones); masked weights stay masked.
    """
    if not is_number(quality) or quality < 0:
        raise ValueError(f"quality must be a number >= 0. Received: quality={quality!r}")
    values = np.asarray(values)
    alive = np.ones(values.shape, bool) if mask is None else np.asarray(mask) > 0.5
    if not alive.any():
        return np.zeros(values.shape, np.float32)
    threshold = quality * float(np.std(values[alive]))
    return (alive & (np.abs(values) > threshold)).astype(np.float32)
