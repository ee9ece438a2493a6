"""Reading and writing the mask layers of a wrapped model, in dependency-graph terms."""

import dataclasses

import numpy as np

from tfcompress.graph.rules import internal_key, unwrap
from tfcompress.layers import ChannelMask, MaskedAttention


@dataclasses.dataclass
class MaskSite:
    """One mask layer and the graph group it masks: mask channel j is group channel
    `group_channel[j]` (the same channels as component `components[j]`)."""

    layer: ChannelMask
    group: int
    components: np.ndarray
    group_channel: np.ndarray


def internal_keys(graph):
    """`{mask layer name: internal axis key}` for the masks of internal axes (an
    attention layer's heads): read from the layers that scale their weights with them."""
    found = {}
    for op in graph.traced.ops:
        if isinstance(op.layer, MaskedAttention):
            for mask, _ in op.layer.masks:
                found[mask.name] = internal_key(unwrap(op.layer), mask.internal_axis)
    return found


def mask_sites(graph):
    """The `MaskSite` of each mask layer in the graph's model, in topological order."""
    sites = {}  # mask layer name -> its site (a shared mask is called at many places)
    internal = internal_keys(graph)
    for op in graph.traced.ops:
        if not isinstance(op.layer, ChannelMask) or op.layer.name in sites:
            continue
        key = internal.get(op.layer.name, op.in_keys[0])
        if op.layer.internal_axis is not None and key not in graph.component_of:
            raise ValueError(
                f"Mask layer '{op.layer.name}' masks internal axis "
                f"{op.layer.internal_axis!r}, but no layer reading it scales its weights "
                "with it (a model whose masks were rewired by hand?)."
            )
        channel_map = _channel_map(op)
        comps = graph.component_of[key]
        if channel_map is None:
            picked = comps
        else:
            # the first tensor position of each mask channel (after Flatten a channel sits
            # at many positions); np.unique sorts, so mask channel j lands at index j
            channels, first = np.unique(np.asarray(channel_map), return_index=True)
            picked = comps[first[channels >= 0]]
        groups, ranks = graph.component_channels(picked)
        group = graph.groups[int(groups[0])]
        if not group.prunable:
            raise ValueError(
                f"Mask layer '{op.layer.name}' masks channels that the graph of model "
                f"'{graph.model.name}' pins ({group.pinned_by}): cutting them would leave "
                "the layers around it at their width. The model's graph differs from the "
                "one wrap saw (its layers changed after wrap?): wrap the unwrapped model "
                "again."
            )
        sites[op.layer.name] = MaskSite(op.layer, int(groups[0]), picked, ranks)
    return list(sites.values())


def kept_components(graph):
    """Bool array over the graph's components: False where a mask does not keep the
    channel (`ChannelMask.kept`).

    Raises:
        ValueError: naming the mask layers that keep no channel at all (a layer with no
            channels cannot be built; `rule="strict_quantile"` can empty a layer, as
            Network Slimming's vggprune.py does).
    """
    keep = np.ones(graph.num_components, dtype=bool)
    empty = []
    for site in mask_sites(graph):
        kept = site.layer.kept()
        if not kept.any():
            empty.append(site.layer.name)
        keep[site.components] = kept
    if empty:
        raise ValueError(
            f"Mask layers {empty} keep no channel: the compact model would have layers "
            "with no channels, which cannot be built. Prune with a lower ratio, or with "
            "rule='safe' (never empties a layer) instead of rule='strict_quantile'."
        )
    return keep


def consumer_scales(graph):
    """For each consumed tensor key: the per-channel factor its masks/gates apply (and for
    each masked internal axis key, its mask's factor)."""
    scales = {}
    internal = internal_keys(graph)
    for op in graph.traced.ops:
        if not isinstance(op.layer, ChannelMask):
            continue
        key_in, key_out = op.in_keys[0], op.out_keys[0]
        base = scales.get(key_in)
        if op.layer.name in internal:  # passes its input through; its layer folds it
            if base is not None:
                scales[key_out] = base
            scales[internal[op.layer.name]] = np.asarray(op.layer.scale_now(), np.float32)
            continue
        n = graph.traced.shapes[key_in][-1]
        vec = np.ones(n, np.float32) if base is None else base.copy()
        scale = np.asarray(op.layer.scale_now(), np.float32)
        channel_map = _channel_map(op)
        if channel_map is None:
            vec *= scale
        else:
            cmap = np.asarray(channel_map)
            vec *= np.where(cmap >= 0, scale[np.maximum(cmap, 0)], 1.0)
        scales[key_out] = vec
    return scales


def _channel_map(op):
    return op.layer.channel_map(op.node.arguments.kwargs.get("site"))
