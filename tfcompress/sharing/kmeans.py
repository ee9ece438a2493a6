"""One-dimensional k-means over a layer's surviving weights (Han et al. 2016, Sec. 3.1-3.2).

Centroids start linearly spaced between the smallest and the largest surviving weight (the
paper's best initialisation: it keeps centroids on the few large weights that matter most),
then Lloyd iterations move each centroid to the mean of the weights nearest to it. A
centroid whose cluster empties keeps its value. Plain NumPy, deterministic.
"""

import numpy as np

MAX_BITS = 16


def check_bits(bits, what="bits"):
    """`bits` as an int in [1, MAX_BITS]; raises naming `what` and the value otherwise."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise ValueError(f"{what} must be an int in [1, {MAX_BITS}]. Received: {what}={bits!r}")
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"{what} must be in [1, {MAX_BITS}]. Received: {what}={bits}")
    return int(bits)


def linear_init(values, k):
    """`k` centroids evenly spaced from `min(values)` to `max(values)` (float64); zeros
    when `values` is empty."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return np.zeros(k, dtype=np.float64)
    return np.linspace(values.min(), values.max(), k)


def assign(values, centroids):
    """Index of the nearest centroid of each value (ties go to the lower centroid value)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    centroids = np.asarray(centroids, dtype=np.float64)
    order = np.argsort(centroids, kind="stable")
    ranked = centroids[order]
    bounds = (ranked[1:] + ranked[:-1]) / 2.0
    return order[np.searchsorted(bounds, values, side="right")]


def kmeans(values, k, iterations=100):
    """Lloyd's k-means in one dimension from `linear_init`: `(centroids, labels)`, the
    centroids float64 of shape [k], the labels the nearest centroid of each value."""
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)):
        raise ValueError(f"iterations must be an int >= 0. Received: iterations={iterations!r}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0. Received: iterations={iterations}")
    values = np.asarray(values, dtype=np.float64).ravel()
    centroids = linear_init(values, k)
    labels = assign(values, centroids)
    for _ in range(iterations):
        sums = np.bincount(labels, weights=values, minlength=k)
        counts = np.bincount(labels, minlength=k)
        filled = counts > 0
        updated = centroids.copy()
        updated[filled] = sums[filled] / counts[filled]
        new_labels = assign(values, updated)
        centroids = updated
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return centroids, labels


def cluster_kernel(kernel, mask, bits, iterations=100):
    """`(codebook, indices)` of a kernel's surviving weights (`mask != 0`): the codebook
    float32 of shape [2**bits], the indices int32 of the kernel's shape, each surviving
    weight mapped to its nearest float32 centroid (pruned positions get index 0)."""
    bits = check_bits(bits)
    kernel = np.asarray(kernel)
    mask = np.asarray(mask)
    if mask.shape != kernel.shape:
        raise ValueError(
            f"The mask's shape must be the kernel's {kernel.shape}. Received: {mask.shape}"
        )
    alive = mask != 0
    values = kernel[alive]
    if not np.all(np.isfinite(values)):
        raise ValueError("Cannot cluster a kernel holding NaN or infinite weights.")
    centroids, _ = kmeans(values, 2**bits, iterations)
    codebook = centroids.astype(np.float32)
    indices = np.zeros(kernel.shape, dtype=np.int32)
    indices[alive] = assign(values, codebook)
    return codebook, indices
