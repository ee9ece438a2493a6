"""Soft top-k (ACoSP) criterion: the learned, standardised mask logits."""

import numpy as np

from tfcompress.importance.sites import group_sites
from tfcompress.layers import SoftTopKMask


def soft_topk(group, graph=None, sites=None, **unused):
    """One score per group channel: the standardised logits of its `SoftTopKMask`
    (the order of the soft mask, without the ties a saturated sigmoid makes)."""
    sites = group_sites(graph, group, SoftTopKMask, sites)
    if not sites:
        raise ValueError(
            f"The soft_topk criterion reads SoftTopKMask logits, but group {group.index} has "
            "none. Wrap the model with `tfcompress.wrap(model, method='soft_topk')`."
        )
    scores = np.zeros(group.size, np.float64)
    for site in sites:
        scores[site.group_channel] += np.asarray(site.layer.standardized_logits(), np.float64)
    return scores


soft_topk.reads_data = False  # learned logits only: prune refuses data= and steps=
