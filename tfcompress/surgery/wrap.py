"""`wrap`: a copy of a model with mask (or gate) layers in front of every consumer of a
prunable channel group, or element-wise weight masks for unstructured pruning."""

import collections
import inspect

import numpy as np

from tfcompress import methods
from tfcompress.graph import DependencyGraph, memo
from tfcompress.graph.dependency import check_graph_of, resolve_exclude
from tfcompress.graph.rules import unwrap
from tfcompress.graph.trace import check_model, layers_of
from tfcompress.layers import ChannelMask, MaskedAttention, MaskedKernel, WeightMask
from tfcompress.layers.weight_mask import masked_weight_names
from tfcompress.numbers import check_flag
from tfcompress.surgery.rebuild import clone_layer, rebuild


def _source_weights(op):
    """The original layer's weights, the values of its copy's (variable to variable: no
    round trip through numpy)."""
    return unwrap(op.layer).weights


def wrap(model, method="l1_filter", *, exclude=(), graph=None, mask_kernels=True,
         copy_layers=True, **options):
    """Returns a new model computing what `model` computes, with masks ready to prune.

    The new model's mask layers carry `method`, `exclude` and `options` in their configs
    (`tfcompress.methods.Wrapping`, saved with the model): `prune`, `strip` and the
    callbacks use them, so neither needs naming again.

    Args:
        model: a built functional or Sequential Keras 3 model (left untouched).
        method: one of `tfcompress.METHODS` (see `tfcompress.methods`).
        exclude: names of layers to leave alone (e.g. a layer class the dependency
            graph has no rule for).
        graph: an already built `DependencyGraph(model, exclude)` of this very `model`
            (optional; the graph of another model is refused).
        mask_kernels: structured methods only (magnitude refuses False). True
            (default): where every layer reading a masked tensor is a conv/dense layer
            called once, the masks scale those layers' kernels (`MaskedKernel`) instead
            of the activations -- the same outputs for a kernel-sized product. False:
            always mask activations.
        copy_layers: True (default): the new model holds copies of `model`'s layers,
            and `model` is left untouched. False: it calls `model`'s own layers (in
            wrappers where masks scale their kernels), as `keras.Model(model.input, ...)`
            sub-models do: no second copy of the weights in memory and no layers
            re-created (ResNet-18's wrap ~0.2 -> ~0.1 s, `benchmarks/prune_time.py
            --no-copy`), but the two models are one set of weights: training the masked
            model, `magnitude` pruning (which zeroes weights) and BatchNorm
            recalibration change `model` too, as Torch-Pruning's in-place edits do.
            `strip` still makes a new compact model. Methods whose wrap edits layer
            configs ("slimming": an L1 penalty on BatchNorm scales) need the copy.
        **options: options of the method's clone hook, e.g. `penalty=1e-4` (the L1
            penalty on BatchNorm scales) for "slimming".
    """
    check_model(model)  # a Keras model, built (a layer given raised an AttributeError)
    _refuse_wrapped(model)
    check_flag("copy_layers", copy_layers)
    check_flag("mask_kernels", mask_kernels)
    share = not copy_layers
    record = methods.get(method)
    if not record.structured and not mask_kernels:  # refused, not ignored
        raise ValueError(
            "mask_kernels chooses where channel masks scale (kernels or activations); "
            f"method {method!r} masks weights, element by element. Leave it out. "
            f"Received: mask_kernels={mask_kernels!r}"
        )
    if options and record.clone_hook is None:
        raise ValueError(f"Method {method!r} takes no wrap options. Received: {sorted(options)}")
    _check_options(method, record.clone_hook, options)
    exclude = resolve_exclude(model, exclude)
    check_graph_of(graph, model, "to wrap")
    if graph is not None and exclude and exclude != graph.exclude:
        raise ValueError(
            f"exclude={list(exclude)!r} differs from the given graph's exclude "
            f"{list(graph.exclude)!r}. Give one of them."
        )
    graph = graph or DependencyGraph(model, exclude=exclude)
    wrapping = methods.Wrapping(method, graph.exclude, options).get_config()
    if not record.structured:
        return memo.attach(_wrap_weights(graph, wrapping, share), graph.exclude)
    edit = record.clone_hook(graph, **options) if record.clone_hook is not None else None
    if edit is not None and share:
        raise ValueError(
            f"Method {method!r} edits the configs of the layers it wraps (e.g. a penalty), "
            "which needs copies of them: wrap with copy_layers=True. Received: "
            "copy_layers=False"
        )
    # a slot for the new model's graph: prune and strip trace it once between them
    return memo.attach(
        _wrap_channels(graph, record.mask_class, wrapping, edit, mask_kernels, share),
        graph.exclude)


def _check_options(method, hook, options):
    """Raises naming the options `hook` (a method's clone hook) does not take, and those
    it does, unless it takes any (`**options`: it checks them itself)."""
    if hook is None or not options:
        return
    params = list(inspect.signature(hook).parameters.values())[1:]  # after the graph
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    unknown = sorted(set(options) - {p.name for p in params})
    if unknown:
        raise ValueError(
            f"Method {method!r} takes the wrap options {[p.name for p in params]}, not "
            f"{unknown}. Received: {options!r}"
        )


def _refuse_wrapped(model):
    """Raises if `model` already holds mask layers: masks are not wrapped twice."""
    found = [layer.name for layer in layers_of(model, (ChannelMask, WeightMask))]
    if not found:
        return
    wrapping = methods.wrapping_of(model)
    by = f"with method {wrapping.method!r}" if wrapping else "with masks placed by hand"
    raise ValueError(
        f"Model '{model.name}' is already wrapped ({by}; {len(found)} mask layers, e.g. "
        f"{found[:3]}). Prune it (`tfcompress.prune`), or strip it first "
        f"(`tfcompress.strip`) and wrap the compact model. Received: model={model.name!r}"
    )


def _wrap_weights(graph, wrapping, share=False):
    def make_layer(op):
        new = op.layer if share else clone_layer(op.layer)
        if graph.is_excluded(op.layer):
            return new
        rule = graph.rule(op.layer)
        names = masked_weight_names(op.layer)
        if not names and rule.is_mixing and "kernel" in rule.weights:
            names = ("kernel",)  # a layer of the user's with a registered Mixing rule
        if names:
            return WeightMask(new, names, name=f"{op.layer.name}_wm", wrapping=wrapping)
        return new

    return rebuild(graph.traced, make_layer, weights_of=None if share else _source_weights)


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
    uses = collections.Counter(op.layer for op in graph.traced.ops)
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
            folds = rule.is_mixing and rule.kernel_takes_masks
            spec = rule.input_weight(layer) if folds else None
            var = None if spec is None else layer.weights[spec[0]]
            if (
                var is None
                or unwrap(layer) is not layer
                or uses[layer] != 1
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


def _policy_of(producer):
    """The dtype policy of a mask after `producer`'s channels: the producer's own (a mask
    after a float32 layer of a mixed-precision model computes in float32), or the
    global policy (None) for a keras.ops operation or no producer."""
    return getattr(producer, "dtype_policy", None)


def _wrap_channels(graph, mask_class, wrapping, edit=None, mask_kernels=True, share=False):
    calls, maps = _mask_calls(graph)
    masks = {}
    internal = {}  # id(layer) -> its internal axes' masks (called folded on its query)
    for g in graph.prunable_groups:
        axis = next((graph.internal[k] for k in g.tensors if k in graph.internal), None)
        if axis is not None:
            op, axis_name = axis
            name = f"{unwrap(op.layer).name}_{axis_name}_mask"
            if any(m.name == name for m in masks.values()):  # parts of two composite calls
                name = f"{name}_g{g.index}"
            masks[g.index] = mask_class(
                g.size, wrapping=wrapping, internal_axis=axis_name, name=name,
                dtype=_policy_of(op.layer),
            )
            internal.setdefault(id(op.layer), []).append(masks[g.index])
            continue
        producer = next((m.layer for m in g.members if m.role == "out"), None)
        stem = producer.name if producer is not None else f"g{g.index}"
        name = f"{stem}_mask"
        if any(m.name == name for m in masks.values()):  # a split tensor: several groups
            name = f"{stem}_mask_g{g.index}"
        masks[g.index] = mask_class(
            g.size, channel_maps=maps[g.index], wrapping=wrapping, name=name,
            dtype=_policy_of(producer),
        )
    consumer_ops = {(op.index, k) for op, k in graph.consumers()}
    reads_masks = {i for i, k in consumer_ops if calls.get(k)}  # ops with a mask in front
    kernel_ops, folded_keys = _kernel_consumers(graph, calls) if mask_kernels else ({}, set())
    masked_cache = {}  # each consumed tensor is masked once; its consumers share the copy

    def transform_input(op, key, tensor):
        out = tensor
        if (op.index, key) in consumer_ops:
            if key not in masked_cache:
                folded = {"folded": True} if key in folded_keys else {}
                for gi, site in calls[key]:
                    at = {} if site is None else {"site": site}
                    out = masks[gi](out, **at, **folded)
                masked_cache[key] = out
            out = masked_cache[key]
        if id(op.layer) in internal and key == graph.rule(op.layer).internal_input(op):
            for mask in internal[id(op.layer)]:
                out = mask(out, folded=True)
        return out

    def make_layer(op):
        if share:
            layer = op.layer
        else:
            config = None if edit is None else edit(op.layer, op.layer.get_config())
            layer = clone_layer(op.layer, config)
        if id(op.layer) in internal:
            axes = graph.rule(op.layer).internal_axes(op.layer)
            scaled = {m.internal_axis: axes[m.internal_axis].scaled for m in internal[id(op.layer)]}
            return MaskedAttention(layer, axes=scaled, name=layer.name)
        if op.index not in kernel_ops:  # e.g. a LayerNormalization (Rule.masked_layer)
            return graph.rule(op.layer).masked_layer(layer) if op.index in reads_masks else layer
        weight_name, axis = kernel_ops[op.index]
        return MaskedKernel(layer, weight_name=weight_name, axis=axis, name=layer.name)

    return rebuild(
        graph.traced,
        make_layer=make_layer,
        weights_of=None if share else _source_weights,
        transform_input=transform_input,
    )
