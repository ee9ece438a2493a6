"""Unstructured (Han et al. 2015) pruning of `WeightMask`-wrapped layers."""

import numpy as np

from tfcompress.graph.trace import layers_of
from tfcompress.importance import magnitude_mask, std_threshold_mask
from tfcompress.layers import WeightMask
from tfcompress.numbers import check_flag, check_ratio
from tfcompress.pruners.ranking import check_scope


def weight_masks(model):
    """The `WeightMask` layers of `model` (nested models included)."""
    return layers_of(model, WeightMask)


def check_quality_scope(quality, scope):
    """Raises naming both unless `scope` is "local" when Han's `quality` rule is given
    (it thresholds each layer by its own std; `scope="global"` is for a ratio)."""
    check_scope(scope)
    if quality is not None and scope != "local":
        raise ValueError(
            "quality thresholds each layer by its own weights' std; scope='global' "
            "applies to a ratio only. Received: "
            f"quality={quality!r}, scope={scope!r}"
        )


def prune_weights(masked, ratio=None, *, quality=None, keep_pruned=True, scope="local"):
    """Sets the element-wise masks of a model wrapped with method "magnitude".

    Give exactly one rule:
        ratio: mask this fraction in [0, 1) of the weights smallest in magnitude: of each
            layer's weights (`scope="local"`, as TFMOT's `prune_low_magnitude`), or of all
            masked weights at once under one magnitude threshold (`scope="global"`), which
            leaves each layer the sparsity its weights' magnitudes earn: small layers of
            large weights (a first conv with few inputs) keep most of theirs, wide layers
            of small weights give up more.
        quality: Han's rule, per layer mask `|w| <= quality * std(w)` (std over the
            still unmasked weights); not with `scope="global"`.

    With `keep_pruned` (default), weights already masked stay masked (iterative pruning)
    and count towards `ratio`. Masked weights are also set to zero, so they cannot come
    back: with `keep_pruned=False` a rule that would unmask one (a lower ratio than
    reached) is refused, naming the sparsity reached, rather than leaving masks that
    count fewer zeros than the weights hold. Returns `{layer: sparsity}` (of all the
    layer's masked weights: both kernels of a separable conv).
    """
    check_flag("keep_pruned", keep_pruned)
    check_quality_scope(quality, scope)
    if (ratio is None) == (quality is None):
        raise ValueError(
            "Give exactly one of ratio or quality. Received: "
            f"ratio={ratio!r}, quality={quality!r}"
        )
    if ratio is not None:
        check_ratio("ratio", ratio)
    layers = weight_masks(masked)
    if not layers:
        raise ValueError(
            f"Model '{masked.name}' has no WeightMask layers. Wrap it with "
            "`tfcompress.wrap(model, method='magnitude')` first."
        )
    entries = [(wm, var, wm.masks[var.name]) for wm in layers for var in wm.layer.weights
               if var.name in wm.masks]
    values = [np.asarray(var) for _, var, _ in entries]
    current = [wm.mask_values(var.name) for wm, var, _ in entries]
    old = current if keep_pruned else [np.ones(v.shape, np.float32) for v in values]
    if quality is not None:
        masks = [std_threshold_mask(v, quality, mask=o) for v, o in zip(values, old)]
    else:
        # already-masked weights rank lowest (-1 + 1 = 0), so they stay masked
        ranked = [np.where(o > 0.5, np.abs(v), -1.0) + 1.0 for v, o in zip(values, old)]
        if scope == "local":
            masks = [magnitude_mask(r, ratio) for r in ranked]
        else:
            flat = magnitude_mask(np.concatenate([r.reshape(-1) for r in ranked]), ratio)
            ends = np.cumsum([r.size for r in ranked])[:-1]
            masks = [m.reshape(r.shape) for m, r in zip(np.split(flat, ends), ranked)]
    if keep_pruned:  # a lower ratio than reached removes nothing more and brings none back
        masks = [np.minimum(m, (o > 0.5).astype(m.dtype)) for m, o in zip(masks, old)]
    else:
        _check_none_back(masked, masks, current, ratio, quality)
    masked_count, size = {}, {}  # per layer: a separable conv masks two kernels
    for (wm, var, mask_var), v, mask in zip(entries, values, masks):
        mask_var.assign(mask)
        var.assign(v * mask)
        name = wm.layer.name
        masked_count[name] = masked_count.get(name, 0) + int(np.sum(mask < 0.5))
        size[name] = size.get(name, 0) + mask.size
    return {name: masked_count[name] / size[name] for name in size}


def _check_none_back(masked, masks, current, ratio, quality):
    """Raises naming `keep_pruned=False` if `masks` would unmask a weight the `current`
    masks mask (and the last prune zeroed: it would stay zero behind an open mask)."""
    back = sum(int(np.sum((m > 0.5) & (c < 0.5))) for m, c in zip(masks, current))
    if not back:
        return
    reached = sum(int(np.sum(c < 0.5)) for c in current) / sum(c.size for c in current)
    rule = f"ratio={ratio!r}" if quality is None else f"quality={quality!r}"
    raise ValueError(
        f"Model '{masked.name}' has {reached:.4g} of its masked weights pruned already, "
        f"and pruning set them to zero: {rule} with keep_pruned=False would unmask {back} "
        "of them, which would stay zero while the masks and mask_stats counted them kept. "
        "Leave keep_pruned=True (pruned weights stay pruned and count toward the ratio), "
        "or wrap the unpruned model afresh. Received: keep_pruned=False"
    )
