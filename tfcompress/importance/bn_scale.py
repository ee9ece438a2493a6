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


bn_scale.reads_data = False  # BatchNorm scales only: prune refuses data= and steps=
