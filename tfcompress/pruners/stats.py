"""What the masks of a wrapped model currently keep (for logs and reports)."""

import numpy as np

from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, WeightMask


def mask_stats(model):
    """What the masks of `model` keep now, read by every log and report (the training
    loop's `--skip_step` lines, `StepLog`, `PruningSummaries`, the schedule warnings):

    - `kept_channels/<mask>`: the channels each `ChannelMask` keeps (`ChannelMask.kept`,
      the one definition of a kept channel), `kept_channels` their sum and
      `channel_sparsity` the share of mask channels not kept;
    - `target_channels`, while soft top-k masks are not hard yet: the channels they
      anneal towards (their `keep`; every other mask counts what it keeps);
    - `weight_sparsity/<layer>` and `weight_sparsity`: the share of masked weights at 0.

    Keys are present only when the model has such masks."""
    stats, kept, total, target, soft = {}, 0, 0, 0, False
    for mask in layers_of(model, ChannelMask):
        n = int(mask.kept().sum())
        stats[f"kept_channels/{mask.name}"] = n
        kept, total = kept + n, total + mask.units
        keep, hard = getattr(mask, "keep", None), getattr(mask, "hard", None)
        if keep is not None and hard is not None and float(np.asarray(hard)) < 0.5:
            soft = True
            n = min(n, int(round(float(np.asarray(keep)))))
        target += n
    if total:
        stats["kept_channels"] = kept
        stats["channel_sparsity"] = 1.0 - kept / total
    if soft:
        stats["target_channels"] = target
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


def stats_words(stats):
    """The totals of `mask_stats` as a log line's words: "kept_channels 40 (sparsity
    0.375)", "target_channels 32", "weight_sparsity 0.500" (those present)."""
    words = []
    if "kept_channels" in stats:
        words.append(
            f"kept_channels {stats['kept_channels']} (sparsity {stats['channel_sparsity']:.3f})"
        )
    if "target_channels" in stats:
        words.append(f"target_channels {stats['target_channels']}")
    if "weight_sparsity" in stats:
        words.append(f"weight_sparsity {stats['weight_sparsity']:.3f}")
    return words
