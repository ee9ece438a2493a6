"""Unstructured (Han et al. 2015) pruning of `WeightMask`-wrapped layers."""

import numpy as np

from tfcompress.graph.trace import layers_of
from tfcompress.importance import magnitude_mask, std_threshold_mask
from tfcompress.layers import WeightMask


def weight_masks(model):
    """The `WeightMask` layers of `model` (nested models included)."""
    return layers_of(model, WeightMask)


def prune_weights(masked, sparsity=None, quality=None, keep_pruned=True):
    """Sets the element-wise masks of a model wrapped with method "magnitude".

    Give exactly one rule:
        sparsity: per layer, mask this fraction of the weights smallest in magnitude.
        quality: Han's rule, per layer mask `|w| <= quality * std(w)` (std over the
            still unmasked weights).

    With `keep_pruned`, weights already masked stay masked (iterative pruning) and count
    towards `sparsity`. Masked weights are also set to zero. Returns `{layer: sparsity}`.
    """
    if (sparsity is None) == (quality is None):
        raise ValueError(
            "Give exactly one of sparsity or quality. Received: "
            f"sparsity={sparsity!r}, quality={quality!r}"
        )
    if sparsity is not None and (
        isinstance(sparsity, bool)
        or not isinstance(sparsity, (int, float))
        or not 0 <= sparsity < 1
    ):
        raise ValueError(f"sparsity must be a number in [0, 1). Received: sparsity={sparsity!r}")
    layers = weight_masks(masked)
    if not layers:
        raise ValueError(
            f"Model '{masked.name}' has no WeightMask layers. Wrap it with "
            "`tfcompress.wrap(model, method='magnitude')` first."
        )
    achieved = {}
    for wm in layers:
        for var in wm.layer.weights:
            mask_var = wm.masks.get(var.name)
            if mask_var is None:
                continue
            values = np.asarray(var)
            old = np.asarray(mask_var) if keep_pruned else np.ones(values.shape, np.float32)
            if quality is not None:
                mask = std_threshold_mask(values, quality, mask=old)
            else:
                # already-masked weights rank lowest, so they stay masked
                ranked = np.where(old > 0.5, np.abs(values), -1.0)
                mask = magnitude_mask(ranked + 1.0, sparsity)
            mask_var.assign(mask)
            var.assign(values * mask)
            achieved[wm.layer.name] = float(1.0 - mask.mean())
    return achieved
