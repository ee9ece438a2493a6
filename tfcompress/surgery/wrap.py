"""`wrap`: a copy of a model with mask (or gate) layers in front of every consumer of a
prunable channel group, or element-wise weight masks for unstructured pruning."""

import numpy as np

from tfcompress.graph import DependencyGraph
from tfcompress.graph.rules import unwrap
from tfcompress.layers import ChannelGate, ChannelMask, WeightMask
from tfcompress.surgery.rebuild import clone_layer, rebuild

STRUCTURED_METHODS = {
    "l1_filter": ChannelMask,
    "slimming": ChannelMask,
    "taylor": ChannelMask,
    "soft_topk": ChannelGate,
}
UNSTRUCTURED_METHODS = ("magnitude",)
METHODS = (*UNSTRUCTURED_METHODS, *STRUCTURED_METHODS)


def register_method(name, mask_class):
    """Lets a structured method choose its mask layer class (a ChannelMask subclass)."""
    if not (isinstance(mask_class, type) and issubclass(mask_class, ChannelMask)):
        raise TypeError(f"mask_class must subclass ChannelMask. Received: {mask_class!r}")
    STRUCTURED_METHODS[name] = mask_class


def _copy_weights(op, new_layer):
    new_layer.set_weights(op.layer.get_weights())


def wrap(model, method="l1_filter", exclude=(), graph=None):
    """Returns a new model computing what `model` computes, with masks ready to prune.

    Args:
        model: a built functional or Sequential Keras 3 model (left untouched).
        method: one of `tfcompress.METHODS`.
        exclude: names of layers to leave alone.
        graph: an already built `DependencyGraph(model, exclude)` (optional).
    """
    if method not in METHODS and method not in STRUCTURED_METHODS:
        raise ValueError(
            f"Unknown pruning method. Received: method={method!r}. "
            f"Known methods: {sorted(set(METHODS) | set(STRUCTURED_METHODS))}."
        )
    graph = graph or DependencyGraph(model, exclude=exclude)
    if method in UNSTRUCTURED_METHODS:
        return _wrap_weights(graph, exclude)
    return _wrap_channels(graph, STRUCTURED_METHODS[method])


def _wrap_weights(graph, exclude):
    def make_layer(op):
        new = clone_layer(op.layer)
        rule = graph.rule(op.layer)
        if rule.is_mixing and op.layer.name not in exclude and "kernel" in rule.weights:
            return WeightMask(new, name=f"{op.layer.name}_wm")
        return new

    def on_built(op, new_layer):
        unwrap(new_layer).set_weights(op.layer.get_weights())

    return rebuild(graph.traced, make_layer, on_built=on_built)


def _wrap_channels(graph, mask_class):
    masks = {}
    for g in graph.prunable_groups:
        producer = next((m.layer.name for m in g.members if m.role == "out"), f"g{g.index}")
        masks[g.index] = mask_class(g.size, name=f"{producer}_mask")
    # Each consumed tensor is masked once; every consumer reads the masked copy.
    consumed = {k for op, k in graph.consumers()}
    consumer_ops = {(op.index, k) for op, k in graph.consumers()}
    masked_cache = {}

    def transform_input(op, key, tensor):
        if (op.index, key) not in consumer_ops or key not in consumed:
            return tensor
        if key in masked_cache:
            return masked_cache[key]
        groups, ranks = graph.group_channels(key)
        out = tensor
        for gi in dict.fromkeys(groups.tolist()):
            if gi not in masks:
                continue
            sel = groups == gi
            if sel.all() and np.array_equal(ranks, np.arange(len(ranks))):
                out = masks[gi](out)
            else:
                out = masks[gi](out, channel_map=np.where(sel, ranks, -1).tolist())
        masked_cache[key] = out
        return out

    return rebuild(
        graph.traced,
        make_layer=lambda op: clone_layer(op.layer),
        on_built=_copy_weights,
        transform_input=transform_input,
    )
