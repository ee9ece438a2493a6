"""What the masks of a wrapped model currently keep (for logs and reports)."""

import numpy as np

from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, WeightMask


def mask_stats(model):
    """`{"kept_channels/<mask>": n, "weight_sparsity/<layer>": s, "channel_sparsity": s,
    "weight_sparsity": s}` for the mask and weight-mask layers of `model` (kept channels
    as `ChannelMask.kept` defines them)."""
    stats, kept, total = {}, 0, 0
    for mask in layers_of(model, ChannelMask):
        n = int(mask.kept().sum())
        stats[f"kept_channels/{mask.name}"] = n
        kept, total = kept + n, total + mask.units
    if total:
        stats["channel_sparsity"] = 1.0 - kept / total
    zeros, size = 0, 0
    for wm in layers_of(model, WeightMask):
        z, s = 0, 0
        for m in wm.masks.values():
            values = np.asarray(m)
            z, s = z + int(np.sum(values < 0.5)), s + values.size
        stats[f"weight_sparsity/{wm.layer.name}"] = z / max(s, 1)
        zeros, size = zeros + z, size + s
    if size:
        stats["weight_sparsity"] = zeros / size
    return stats
