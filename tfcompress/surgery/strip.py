"""`strip`: the compact model: mask layers removed, pruned channels cut out of weights."""

import numpy as np

from tfcompress import methods
from tfcompress.graph.rules import unwrap
from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, WeightMask
from tfcompress.names import check_name
from tfcompress.pruners.restored import warn_if_restored
from tfcompress.surgery.masks import consumer_scales, kept_components
from tfcompress.surgery.penalties import config_without_penalty
from tfcompress.surgery.rebuild import clone_layer, rebuild


def strip(masked, *, name=None):
    """Returns a new model of plain Keras layers computing what `masked` computes.

    Channels whose mask is zero are removed from every layer that holds them (kernels,
    biases, BatchNorm statistics, depthwise and separable kernels, Dense after Flatten);
    gate values are folded into the consuming layers' kernels; element-wise weight masks
    are applied and their wrappers removed. The layers `masked` was wrapped to leave
    alone (`wrap(..., exclude=)`) are left alone again. `masked` is left untouched.
    Masks that keep more than the pruning callbacks left them (weights restored from
    before an event) are named in a warning (`tfcompress.pruners.restored`).

    Args:
        name: the compact model's name; None (default): `masked`'s. An empty string is
            refused (Keras would make a model named ""), and so is a name with "/"
            (before any surgery, which Keras would refuse at its end).

    Raises:
        ValueError: `masked` holds no mask layers (never wrapped, or nothing to prune).
    """
    check_name("name", name, none="keep the masked model's name", keras=True)
    if not layers_of(masked, (ChannelMask, WeightMask)):  # (they carry the wrapping record)
        raise ValueError(
            f"Model '{masked.name}' holds no mask layers (it was not wrapped with "
            "`tfcompress.wrap`, or wrap found no prunable channel group in it), so there is "
            "nothing to strip: strip removes the masks wrap inserts, with the channels and "
            "weights they prune. Wrap it, prune, then strip."
        )
    warn_if_restored(masked)
    graph = methods.graph_of(masked)
    keep = kept_components(graph)
    scales = consumer_scales(graph)
    plans = {}

    def keep_of(key):
        """Kept channel positions of a tensor; None when it keeps all of them."""
        flags = keep[graph.component_of[key]]
        return None if flags.all() else np.nonzero(flags)[0]

    def make_layer(op):
        if isinstance(op.layer, ChannelMask):
            return None
        inner = unwrap(op.layer)
        rule = graph.rule(op.layer)
        # ops whose arguments name channels (x[..., a:b]) or whose internal axes shrink
        call = rule.compact(op, keep_of, scales.get)
        if call is not None:
            return call
        in_keep = keep_of(op.in_keys[0]) if op.in_keys else None
        out_keep = keep_of(op.out_keys[0])
        plans[op.layer] = (in_keep, out_keep)
        config = config_without_penalty(inner, inner.get_config())  # the user's own
        if out_keep is not None:
            config = rule.edit_config(config, op, in_keep, out_keep)
        return clone_layer(inner, config)

    def weights_of(op):
        """The sliced (and scale-folded) weights of `op`'s compact layer."""
        inner = unwrap(op.layer)
        rule = graph.rule(op.layer)
        values = [np.asarray(v) for v in inner.get_weights()]
        if isinstance(op.layer, WeightMask):
            values = [
                v * op.layer.mask_values(w.name) if w.name in op.layer.masks else v
                for w, v in zip(inner.weights, values)
            ]
        in_keep, out_keep = plans[op.layer]
        scale = scales.get(op.in_keys[0]) if rule.is_mixing else None
        if scale is not None and not _ones_where_kept(scale, in_keep):
            values = _fold_input_scale(inner, rule, values, scale)
        return rule.slice_weights(inner, values, in_keep, out_keep)

    return rebuild(graph.traced, make_layer, weights_of=weights_of, name=name)


def _ones_where_kept(scale, in_keep):
    """True when folding `scale` (one factor per input channel) into a layer changes no
    weight its compact copy keeps: the factor is 1 on every kept input channel, and the
    weight rows of the others are cut out. So binary masks fold nothing (a kernel-sized
    product per conv saved)."""
    kept = scale if in_keep is None else scale[in_keep]
    return bool(np.all(kept == 1))


def _fold_input_scale(layer, rule, values, scale):
    """conv(x * s, K) == conv(x, K * s): the rule's input weights take the scale."""
    out = list(values)
    for i, _, in_axis in rule.input_weights(layer):
        shape = [1] * out[i].ndim
        shape[in_axis] = -1
        out[i] = out[i] * scale.reshape(shape).astype(out[i].dtype)
    return out
