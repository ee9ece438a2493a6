"""Magnitude criteria: L1 filter norms (Li et al. 2016) and weight magnitude (Han et al.)."""

import numpy as np

from tfcompress.graph.rules import find_rule
from tfcompress.numbers import check_ratio


def _out_kernels(member):
    """(values, out_axis) of the producer's kernel-like weights (along an internal axis,
    such as an attention layer's heads, for a member holding one)."""
    return find_rule(member.layer).scored_kernels(member.layer, member.internal)


def l1_filter(group, **unused):
    """One score per group channel: the L1 norms of its filters, summed over all the
    layers that produce the group's channels (every conv/dense feeding a residual sum);
    for an attention head, the L1 norm of its query, key, value and output projections."""
    scores = np.zeros(group.size, np.float64)
    for member in group.layers("out"):
        for kernel, out_axis in _out_kernels(member):
            moved = np.moveaxis(np.abs(kernel), out_axis, -1)
            per_out = moved.reshape(-1, moved.shape[-1]).sum(axis=0)
            imap = member.index_map
            scores += np.bincount(imap.channels, per_out[imap.positions], minlength=group.size)
    return scores


l1_filter.reads_data = False  # filter norms only: prune refuses data= and steps=


def magnitude_mask(values, sparsity):
    """Binary mask zeroing the `sparsity` fraction (in [0, 1)) of `values` smallest in
    magnitude."""
    check_ratio("sparsity", sparsity)
    flat = np.abs(np.asarray(values)).reshape(-1)
    n_prune = int(np.floor(sparsity * flat.size))
    mask = np.ones(flat.size, np.float32)
    if n_prune > 0:
        mask[np.argsort(flat, kind="stable")[:n_prune]] = 0.0
    return mask.reshape(np.shape(values))
