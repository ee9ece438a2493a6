"""First-order Taylor importance (Molchanov et al. 2017), read from `TaylorMask` layers.

A `TaylorMask` accumulates, during ordinary training steps, products `x * dL/dx` per
channel, aggregated as its `aggregation` says (see `tfcompress.layers.TaylorMask`). The
criterion returns the raw accumulated importance: the paper's per-layer l2 normalisation
belongs to the ranking (`normalize="l2"`, `tfcompress.pruners.ranking.NORMALIZERS`), so
that a global ranking applies it once and only once. Without accumulated scores,
`prepare` measures them over `data` in a separate pass.
"""

import contextlib
import itertools

import numpy as np
import tensorflow as tf

from tfcompress.batches import BATCH_SIZE, batches, check_batched, describe, is_array
from tfcompress.graph.trace import layers_of
from tfcompress.importance.sites import group_sites
from tfcompress.layers import TaylorMask
from tfcompress.layers.taylor_mask import check_aggregation
from tfcompress.numbers import check_count

_DATA_FORMS = (
    "an iterable of (x, y) or (x, y, sample_weight) batches (e.g. a batched "
    "tf.data.Dataset, or [(x, y)] for one batch), or a tuple (x, y) of arrays as fit takes "
    f"them (cut into batches of {BATCH_SIZE})"
)


def measure(model, data, steps=None):
    """Resets the Taylor scores of `model` and accumulates them over `data`.

    Args:
        model: a model wrapped with method "taylor" and compiled with its loss.
        data: an iterable of `(x, y)` or `(x, y, sample_weight)` batches, or a tuple
            `(x, y)` / `(x, y, sample_weight)` of arrays, cut into batches of
            `BATCH_SIZE` (as `fit` takes them).
        steps: optional number of batches to use (default: all; give it for an
            endless dataset).
    """
    check_count("steps", steps, none=True)
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
    batches = _batches(data)
    masks = layers_of(model, TaylorMask)
    for m in masks:
        m.reset_scores()
    # in training mode, as the reference ranks (model.train(): BatchNorm on batch
    # statistics) and as the scores accumulate in fit; the state a training-mode call
    # moves (BatchNorm's moving statistics, dropout seeds) is put back afterwards
    scores = {id(v) for m in masks for v in m.non_trainable_variables}
    state = [(v, v.numpy()) for v in model.non_trainable_variables if id(v) not in scores]
    # its gradients are of the loss itself: no mixed-precision fit's loss scale to divide out
    with contextlib.ExitStack() as unscaled:
        for m in masks:
            unscaled.enter_context(m.loss_scale_off())
        try:
            for batch in itertools.islice(batches, steps):  # steps batches read, not one more
                x, y, sw = _split_batch(model, batch, data)
                with tf.GradientTape() as tape:
                    y_pred = model(x, training=True)
                    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw)
                tape.gradient(loss, model.trainable_variables)
                for m in masks:
                    m.fold()
        finally:
            for variable, value in state:
                variable.assign(value)


def _batches(data):
    """`data` as an iterable of batches (`tfcompress.batches.batches`); one array (inputs
    without labels) is refused: the loss needs labels."""
    if is_array(data):
        raise ValueError(
            "taylor measures gradients of the loss, which needs labels: data must be "
            f"{_DATA_FORMS}. Received: data={describe(data)} (inputs alone)"
        )
    return batches(data, "taylor's data", _DATA_FORMS)


def _split_batch(model, batch, data):
    """`(x, y, sample_weight)` of one batch of `data`, refused (naming the batch) unless
    it is `(x, y)` or `(x, y, sample_weight)` with a batch axis."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3) or batch[1] is None:
        raise ValueError(
            f"taylor's data must be {_DATA_FORMS}. Received: batch={describe(batch)} "
            f"from data={describe(data)}"
        )
    x, y, sw = (tuple(batch) + (None,))[:3]
    check_batched(model, x, "taylor's data", _DATA_FORMS, data)
    return x, y, sw


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


def _prepare(model, data=None, graph=None, steps=None, **unused):
    """Before ranking: measure fresh scores over `data` (`steps` batches) when it is
    given."""
    if data is not None:
        measure(model, data, steps=steps)


taylor.prepare = _prepare
