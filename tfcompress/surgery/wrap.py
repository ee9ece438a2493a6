"""`wrap`: a copy of a model with mask (or gate) layers in front of every consumer of a
prunable channel group, or element-wise weight masks for unstructured pruning."""

import numpy as np

from tfcompress.graph import DependencyGraph
from tfcompress.graph.rules import unwrap
from tfcompress.layers import ChannelMask, MaskedKernel, SoftTopKMask, TaylorMask, WeightMask
from tfcompress.surgery.penalties import bn_gamma_l1
from tfcompress.surgery.rebuild import clone_layer, rebuild

STRUCTURED_METHODS = {
    "l1_filter": ChannelMask,
    "slimming": ChannelMask,
    "taylor": TaylorMask,
    "soft_topk": SoftTopKMask,
}
# method -> clone hook `fn(graph, **options) -> edit(layer, config) -> config` (see
# `tfcompress.surgery.penalties`); `wrap`'s keyword options go to the method's hook.
CLONE_HOOKS = {"slimming": bn_gamma_l1}
UNSTRUCTURED_METHODS = ("magnitude",)
METHODS = (*UNSTRUCTURED_METHODS, *STRUCTURED_METHODS)


def register_method(name, mask_class, clone_hook=None):
    """Lets a structured method choose its mask layer class (a ChannelMask subclass) and,
    optionally, a clone hook editing the configs of the layers `wrap` re-creates."""
    if not (isinstance(mask_class, type) and issubclass(mask_class, ChannelMask)):
        raise TypeError(f"mask_class must subclass ChannelMask. Received: {mask_class!r}")
    STRUCTURED_METHODS[name] = mask_class
    if clone_hook is not None:
        CLONE_HOOKS[name] = clone_hook


def _copy_weights(op, new_layer):
    """The original layer's weights into its copy (inside the copy's wrapper, if any)."""
    unwrap(new_layer).set_weights(op.layer.get_weights())


def wrap(model, method="l1_filter", exclude=(), graph=None, mask_kernels=True, **options):
    """Returns a new model computing what `model` computes, with masks ready to prune.

    Args:
        model: a built functional or Sequential Keras 3 model (left untouched).
        method: one of `tfcompress.METHODS`.
        exclude: names of layers to leave alone.
        graph: an already built `DependencyGraph(model, exclude)` (optional).
        mask_kernels: structured methods only. True (default): where every layer reading
            a masked tensor is a conv/dense layer called once, the masks scale those
            layers' kernels (`MaskedKernel`) instead of the activations -- the same
            outputs for a kernel-sized product. False: always mask activations.
        **options: options of the method's clone hook, e.g. `penalty=1e-4` (the L1
            penalty on BatchNorm scales) for "slimming".
    """
    if method not in METHODS and method not in STRUCTURED_METHODS:
        raise ValueError(
            f"Unknown pruning method. Received: method={method!r}. "
            f"Known methods: {sorted(set(METHODS) | set(STRUCTURED_METHODS))}."
        )
    if options and method not in CLONE_HOOKS:
        raise ValueError(f"Method {method!r} takes no wrap options. Received: {sorted(options)}")
    graph = graph or DependencyGraph(model, exclude=exclude)
    if method in UNSTRUCTURED_METHODS:
        return _wrap_weights(graph, exclude)
    hook = CLONE_HOOKS.get(method)
    edit = hook(graph, **options) if hook is not None else None
    return _wrap_channels(graph, STRUCTURED_METHODS[method], edit, mask_kernels)


def _wrap_weights(graph, exclude):
    def make_layer(op):
        new = clone_layer(op.layer)
        rule = graph.rule(op.layer)
        if rule.is_mixing and op.layer.name not in exclude and "kernel" in rule.weights:
            return WeightMask(new, name=f"{op.layer.name}_wm")
        return new

    return rebuild(graph.traced, make_layer, on_built=_copy_weights)


def _mask_calls(graph):
    """For each consumed tensor: [(group index, site or None)], and each group's maps."""
    prunable = {g.index for g in graph.prunable_groups}
    calls, maps = {}, {g: [] for g in prunable}
    for _, key in graph.consumers():
        if key in calls:
            continue
        groups, ranks = graph.group_channels(key)
        calls[key] = []
        for gi in dict.fromkeys(groups.tolist()):
            if gi not in prunable:
                continue
            sel = groups == gi
            if sel.all() and np.array_equal(ranks, np.arange(len(ranks))):
                calls[key].append((gi, None))
            else:
                maps[gi].append(np.where(sel, ranks, -1).tolist())
                calls[key].append((gi, len(maps[gi]) - 1))
    return calls, maps


def _kernel_consumers(graph, calls):
    """The consumers that can scale their own kernel, for the tensors all of whose
    consumers can (the masks there are folded).

    Returns:
        `({op index: (weight name, axis)}, {folded tensor key})`.
    """
    uses = {}
    for op in graph.traced.ops:
        uses[id(op.layer)] = uses.get(id(op.layer), 0) + 1
    by_key = {}
    for op, key in graph.consumers():
        by_key.setdefault(key, []).append(op)
    found, folded = {}, set()
    for key, ops in by_key.items():
        if not calls.get(key):
            continue
        weights = {}
        for op in ops:
            layer, rule = op.layer, graph.rule(op.layer)
            spec = rule.input_weight(layer) if rule.is_mixing else None
            var = None if spec is None else layer.weights[spec[0]]
            if (
                var is None
                or unwrap(layer) is not layer
                or uses[id(layer)] != 1
                or op.in_keys[0] != key
                or var.shape[spec[2]] != graph.traced.shapes[key][-1]
                or not var.trainable
            ):
                break
            weights[op.index] = spec[1:]
        else:
            found.update(weights)
            folded.add(key)
    return found, folded


def _wrap_channels(graph, mask_class, edit=None, mask_kernels=True):
    calls, maps = _mask_calls(graph)
    masks = {}
    for g in graph.prunable_groups:
        producer = next((m.layer.name for m in g.members if m.role == "out"), f"g{g.index}")
        name = f"{producer}_mask"
        if any(m.name == name for m in masks.values()):  # a split tensor: several groups
            name = f"{producer}_mask_g{g.index}"
        masks[g.index] = mask_class(g.size, channel_maps=maps[g.index], name=name)
    consumer_ops = {(op.index, k) for op, k in graph.consumers()}
    kernel_ops, folded_keys = _kernel_consumers(graph, calls) if mask_kernels else ({}, set())
    masked_cache = {}  # each consumed tensor is masked once; its consumers share the copy

    def transform_input(op, key, tensor):
        if (op.index, key) not in consumer_ops:
            return tensor
        if key not in masked_cache:
            out = tensor
            folded = {"folded": True} if key in folded_keys else {}
            for gi, site in calls[key]:
                at = {} if site is None else {"site": site}
                out = masks[gi](out, **at, **folded)
            masked_cache[key] = out
        return masked_cache[key]

    def make_layer(op):
        config = None if edit is None else edit(op.layer, op.layer.get_config())
        layer = clone_layer(op.layer, config)
        if op.index not in kernel_ops:
            return layer
        weight_name, axis = kernel_ops[op.index]
        return MaskedKernel(layer, weight_name=weight_name, axis=axis, name=layer.name)

    return rebuild(
        graph.traced,
        make_layer=make_layer,
        on_built=_copy_weights,
        transform_input=transform_input,
    )
