"""First-order Taylor importance (Molchanov et al. 2017), read from `TaylorMask` layers.

A `TaylorMask` accumulates, during ordinary training steps, products `x * dL/dx` per
channel, aggregated as its `aggregation` says (see `tfcompress.layers.TaylorMask`). The
criterion returns the raw accumulated importance: the paper's per-layer l2 normalisation
belongs to the ranking (`normalize="l2"`, `tfcompress.pruners.ranking.NORMALIZERS`), so
that a global ranking applies it once and only once. Without accumulated scores,
`prepare` measures them over `data` in a separate pass.
"""

import numpy as np
import tensorflow as tf

from tfcompress.graph.trace import layers_of
from tfcompress.importance.sites import group_sites
from tfcompress.layers import TaylorMask
from tfcompress.layers.taylor_mask import check_aggregation


def measure(model, data, steps=None):
    """Resets the Taylor scores of `model` and accumulates them over `data`.

    Args:
        model: a model wrapped with method "taylor" and compiled with its loss.
        data: an iterable of `(x, y)` or `(x, y, sample_weight)` batches.
        steps: optional number of batches to use.
    """
    if data is None:
        raise ValueError(
            "taylor needs data: pass batches of (x, y) as `data=`, or train with "
            "`tfcompress.callbacks.StructuredPruning(method='taylor', ...)` so the scores "
            "accumulate during fit."
        )
    if getattr(model, "_compile_loss", None) is None:
        raise ValueError(
            f"taylor measures gradients of the training loss: compile model '{model.name}' "
            "with its loss before pruning with data."
        )
    masks = layers_of(model, TaylorMask)
    for m in masks:
        m.reset_scores()
    for i, batch in enumerate(data):
        if steps is not None and i >= steps:
            break
        x, y, sw = (
            (tuple(batch) + (None,))[:3]
            if isinstance(batch, (tuple, list))
            else (batch, None, None)
        )
        with tf.GradientTape() as tape:
            y_pred = model(x, training=False)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw)
        tape.gradient(loss, model.trainable_variables)
        for m in masks:
            m.fold()


def taylor(group, graph=None, sites=None, **unused):
    """One score per group channel: its accumulated Taylor importance, not normalised."""
    sites = group_sites(graph, group, TaylorMask, sites)
    if not sites:
        raise ValueError(
            f"The taylor criterion reads TaylorMask scores, but group {group.index} has none. "
            "Wrap the model with `tfcompress.wrap(model, method='taylor')`."
        )
    scores = np.zeros(group.size, np.float64)
    for site in sites:
        site.layer.fold()  # the last batch's sums (training calls fold the earlier ones)
        scores[site.group_channel] += np.asarray(site.layer.importance(), np.float64)
    if not np.isfinite(scores).all() or not scores.any():
        raise ValueError(
            f"No Taylor importance has been accumulated for mask '{sites[0].layer.name}'. "
            "taylor needs data: pass `data=` batches to prune, or train with "
            "`tfcompress.callbacks.StructuredPruning(method='taylor', ...)` first."
        )
    return scores


def wrap_options(graph, **options):
    """The clone hook of method "taylor": checks `tfcompress.wrap`'s options (only
    `aggregation`, a key of `tfcompress.layers.taylor_mask.AGGREGATIONS`, which every
    `TaylorMask` reads from its wrapping); edits no layer, so returns None."""
    del graph
    unknown = sorted(set(options) - {"aggregation"})
    if unknown:
        raise ValueError(
            f"Method 'taylor' takes the wrap option aggregation only. Received: {unknown}"
        )
    if "aggregation" in options:
        check_aggregation(options["aggregation"])
    return None


def _prepare(model, data=None, graph=None, **unused):
    """Before ranking: measure fresh scores over `data` when it is given."""
    if data is not None:
        measure(model, data)


taylor.prepare = _prepare
