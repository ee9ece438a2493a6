"""Network slimming's criterion (Liu et al. 2017): |gamma| of the BatchNorm scales."""

import numpy as np
from keras import layers


def bn_scale(group, **unused):
    """One score per group channel: the sum of |gamma| over the group's BatchNorm layers.

    Channels of a group without a BatchNorm (with `scale=True`) score +inf: slimming
    never removes them (global ranking leaves such groups out of its pool).
    """
    scores = np.zeros(group.size, np.float64)
    found = False
    for member in group.layers("channelwise"):
        bn = member.layer
        if not isinstance(bn, layers.BatchNormalization) or not bn.scale:
            continue
        gamma = np.abs(np.asarray(bn.gamma, np.float64))
        imap = member.index_map
        scores += np.bincount(imap.channels, gamma[imap.positions], minlength=group.size)
        found = True
    return scores if found else np.full(group.size, np.inf)


def scaled_batchnorms(graph):
    """The names of the BatchNormalization layers (with `scale=True`) on the prunable
    channels of `graph`: the scales slimming ranks (and `wrap` puts its L1 penalty on).
    Raises when there are none: every channel would score +inf and none be removed."""
    names = {
        m.layer.name
        for g in graph.prunable_groups
        for m in g.members
        if m.role == "channelwise"
        and isinstance(m.layer, layers.BatchNormalization)
        and m.layer.scale
    }
    if not names:
        raise ValueError(
            f"slimming ranks channels by their BatchNorm scale, but model "
            f"'{graph.model.name}' has no BatchNormalization (with scale=True) on prunable "
            "channels. Use method='l1_filter' or 'taylor' for this model."
        )
    return names


def _prepare(model, graph=None, **unused):
    """Before ranking: refuse a model without scales to rank (`scaled_batchnorms`)."""
    scaled_batchnorms(graph)


bn_scale.prepare = _prepare
bn_scale.reads_data = False  # BatchNorm scales only: prune refuses data= and steps=
