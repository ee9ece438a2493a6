"""Network slimming's criterion (Liu et al. 2017): |gamma| of the BatchNorm scales."""

import numpy as np
from keras import layers


def scaled_batchnorm(layer):
    """The BatchNormalization with `scale=True` that `layer` is, or wraps in a
    `TimeDistributed` (one gamma per channel, shared by every step), else None: the scales
    slimming ranks and puts its penalty on."""
    if isinstance(layer, layers.TimeDistributed):
        layer = layer.layer
    if isinstance(layer, layers.BatchNormalization) and layer.scale:
        return layer
    return None


def bn_scale(group, **unused):
    """One score per group channel: the sum of |gamma| over the group's BatchNorm layers
    (`scaled_batchnorm`: a TimeDistributed one included).

    Channels of a group without a BatchNorm (with `scale=True`) score +inf: slimming
    never removes them (global ranking leaves such groups out of its pool).
    """
    scores = np.zeros(group.size, np.float64)
    found = False
    for member in group.layers("channelwise"):
        bn = scaled_batchnorm(member.layer)
        if bn is None:
            continue
        gamma = np.abs(np.asarray(bn.gamma, np.float64))
        imap = member.index_map
        scores += np.bincount(imap.channels, gamma[imap.positions], minlength=group.size)
        found = True
    return scores if found else np.full(group.size, np.inf)


def scaled_batchnorms(graph):
    """The names of the layers on the prunable channels of `graph` that are (or wrap in a
    TimeDistributed) a BatchNormalization with `scale=True`: the scales slimming ranks
    (and `wrap` puts its L1 penalty on). Raises when there are none: every channel would
    score +inf and none be removed."""
    names = {
        m.layer.name
        for g in graph.prunable_groups
        for m in g.members
        if m.role == "channelwise" and scaled_batchnorm(m.layer) is not None
    }
    if not names:
        raise ValueError(
            f"slimming ranks channels by their BatchNorm scale, but model "
            f"'{graph.model.name}' has no BatchNormalization (with scale=True; on its own "
            "or in a TimeDistributed) on prunable channels. Use method='l1_filter' or "
            "'taylor' for this model."
        )
    return names


def _prepare(model, graph=None, **unused):
    """Before ranking: refuse a model without scales to rank (`scaled_batchnorms`)."""
    scaled_batchnorms(graph)


bn_scale.prepare = _prepare
bn_scale.reads_data = False  # BatchNorm scales only: prune refuses data= and steps=
