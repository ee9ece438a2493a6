"""`share_weights` wraps a model's kernels in `SharedWeights`; `strip_shared` undoes it."""

import keras
import numpy as np
from absl import logging

from tfcompress.graph.dependency import resolve_exclude
from tfcompress.graph.sublayers import sublayers
from tfcompress.graph.trace import layers_of, trace
from tfcompress.layers import ChannelMask, MaskedKernel, WeightMask
from tfcompress.sharing.kmeans import check_bits
from tfcompress.sharing.layer import SharedWeights
from tfcompress.surgery.rebuild import clone_layer, rebuild

# Layer class -> its kind, which picks the default bits (the paper: conv 8, dense 5).
SHAREABLE = (
    (keras.layers.Dense, "dense"),
    (keras.layers.EinsumDense, "dense"),
    (keras.layers.Conv1D, "conv"),
    (keras.layers.Conv2D, "conv"),
    (keras.layers.Conv3D, "conv"),
    (keras.layers.Conv1DTranspose, "conv"),
    (keras.layers.Conv2DTranspose, "conv"),
    (keras.layers.Conv3DTranspose, "conv"),
    (keras.layers.DepthwiseConv1D, "conv"),
    (keras.layers.DepthwiseConv2D, "conv"),
)
DEFAULT_BITS = {"conv": 8, "dense": 5}


def wrapper_name(name):
    """The name of the `SharedWeights` layer wrapping layer `name`."""
    return f"{name}_shared"


def kind_of(layer):
    """The kind, "conv" or "dense", of a layer `share_weights` can wrap, None for any other."""
    for cls, kind in SHAREABLE:
        if isinstance(layer, cls):
            return kind
    return None


def _plain_weights(layer):
    """`(inner layer, weight values, kernel mask or None)` of a plain or WeightMask layer,
    the element-wise masks applied."""
    if not isinstance(layer, WeightMask):
        return layer, [np.asarray(v) for v in layer.get_weights()], None
    inner = layer.layer
    values, kernel_mask = [], None
    for w, v in zip(inner.weights, inner.get_weights()):
        if w.name in layer.masks:
            mask = layer.mask_values(w.name)
            v = v * mask
            if w.name == "kernel":
                kernel_mask = mask
        values.append(np.asarray(v))
    return inner, values, kernel_mask


def layer_name(layer):
    """The name `bits` and `exclude` use for `layer`: a `WeightMask`'s is its wrapped
    layer's ("fc1", not the wrapper's "fc1_wm"), as in the model before `wrap`."""
    return layer.layer.name if isinstance(layer, WeightMask) else layer.name


def resolve_bits(model, bits, exclude):
    """`{layer name: bits}` of the layers `share_weights(model, bits, exclude=exclude)`
    shares; raises naming a bad name or value, or a `bits` entry for an excluded layer."""
    names = [layer_name(layer) for layer in model.layers]
    unknown = sorted(set(exclude) - set(names))
    if unknown:
        raise ValueError(
            f"exclude names no layer of model '{model.name}': {unknown}. Its layers are "
            f"{names}. Received: exclude={sorted(exclude)}"
        )
    excluded = sorted(n for n in bits if n in exclude) if isinstance(bits, dict) else []
    if excluded:
        raise ValueError(
            f"bits names layers that exclude leaves unshared: {excluded}. Received: "
            f"bits={bits}, exclude={list(exclude)}"
        )
    kinds = {
        layer_name(layer): kind_of(layer.layer if isinstance(layer, WeightMask) else layer)
        for layer in model.layers
    }
    by_name = {layer_name(layer): layer for layer in model.layers}
    per_layer = {}
    if isinstance(bits, dict):
        for name, value in bits.items():
            if name not in names:
                raise ValueError(
                    f"bits names no layer of model '{model.name}': {name!r}. Its layers "
                    f"are {names}. Received: bits={bits}"
                )
            if kinds[name] is None:
                raise ValueError(
                    f"bits names layer {name!r}, a {type(by_name[name]).__name__}: "
                    f"share_weights shares the kernels of "
                    f"{sorted({cls.__name__ for cls, _ in SHAREABLE})}. Received: bits={bits}"
                )
            per_layer[name] = check_bits(value, f"bits[{name!r}]")
        default = None
    else:
        default = None if bits is None else check_bits(bits)
    chosen = {}
    for name, kind in kinds.items():
        if kind is None or name in exclude:
            continue
        chosen[name] = per_layer.get(name, default or DEFAULT_BITS[kind])
    return chosen


def share_weights(model, bits=None, *, exclude=(), iterations=100):
    """Returns a copy of `model` whose conv and dense kernels share `2**bits` values each.

    Each kernel's surviving weights (those a `WeightMask` keeps, or the non-zero ones of
    a plain layer) are clustered by k-means from a linear initialisation; the copy's
    `SharedWeights` layers train the centroids in an ordinary `model.fit`.

    Args:
        model: a built functional or Sequential model of plain layers, possibly pruned
            (`tfcompress.wrap(..., method="magnitude")` + `prune`, or stripped). Left
            untouched. Models nested in it are inlined (`inline_nested`): the copy
            calls their layers in place, and shares their kernels too.
        bits: None (conv 8 bits, dense 5 bits, as the paper), an int for every layer, or a
            dict {layer name: bits} overriding the defaults for the layers it names (a
            wrapped model's layers by the names they had before `wrap`: "fc1").
        exclude: names of layers to leave unshared (their kernels stay float), as `bits`;
            a nested model's name stands for every layer inside it. A `bits` entry for
            an excluded layer is refused.
        iterations: the most Lloyd iterations per layer.
    """
    exclude = resolve_exclude(model, exclude)
    refused = (ChannelMask, MaskedKernel, SharedWeights)
    wrappers = [layer.name for layer in layers_of(model, refused)]
    if wrappers:
        raise ValueError(
            f"Model '{model.name}' holds channel masks or shared weights ({wrappers[:3]}): "
            "strip it first (`tfcompress.strip` or `strip_shared`)."
        )
    model = inline_nested(model)
    chosen = resolve_bits(model, bits, exclude)
    _warn_unshared_kernels(model, exclude)
    plans = {}

    def clone(layer):
        inner, values, kernel_mask = _plain_weights(layer)
        new = clone_layer(inner)
        name = layer_name(layer)
        if name in chosen:
            plans[name] = (new, values, kernel_mask)
            return SharedWeights(new, bits=chosen[name], name=wrapper_name(inner.name))
        plans[name] = (new, values, None)
        return new

    shared = copy_graph(model, clone)
    for name, (new, values, kernel_mask) in plans.items():
        new.set_weights(values)
        if name in chosen:
            wrapper = _wrapper_of(shared, new)
            kernel = values[[w.name for w in new.weights].index(wrapper.weight_name)]
            wrapper.cluster(kernel, kernel != 0 if kernel_mask is None else kernel_mask, iterations)
    return shared


def inline_nested(model):
    """`model` itself, or, when it holds nested models, a copy (same weights, same
    outputs) with their layers called in place, as `tfcompress.wrap` inlines them: the
    layers `share_weights` wraps are then the model's own, as `strip_shared` and the
    codec read them. A nested layer whose name repeats one already taken is renamed
    `<model's name>_<name>`."""
    if not layers_of(model, keras.Model):
        return model
    return copy_graph(model, clone_layer, weights_of=lambda layer: layer.weights)


def copy_graph(model, clone, weights_of=None, inline_models=True):
    """A functional copy of `model` made by `rebuild` (the mechanism of `wrap` and
    `strip`), no layer seen through; its nested models inlined, or (`inline_models`
    False) each given to `clone` as a layer.

    `clone(layer) -> new layer` is called once per layer (a shared layer stays shared);
    a `keras.ops` operation called between layers (`keras.ops.relu(h * 2.0)`) is no
    layer: it holds nothing to copy, and the copy calls it again with the arguments it
    recorded. `weights_of(layer)`, if given, gives the values the new layer's weights
    are created holding (see `rebuild`); else the caller sets them.
    """
    keep = [layer.name for layer in layers_of(model)]

    def make_layer(op):
        if not isinstance(op.layer, keras.layers.Layer):
            return clone_layer(op.layer)  # the operation itself
        return clone(op.layer)

    given = None if weights_of is None else (lambda op: weights_of(op.layer))
    traced = trace(model, keep=keep, inline_models=inline_models)
    return rebuild(traced, make_layer, weights_of=given)


def _warn_unshared_kernels(model, exclude):
    """Logs a warning naming the layers of `model` (not excluded) that hold conv or dense
    layers inside a class of their own (a composite layer): `share_weights` wraps the
    model's layers, so those kernels stay float, stored raw by the codec."""
    held = {}
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, WeightMask) else layer
        if kind_of(inner) is not None or layer_name(layer) in exclude:
            continue
        count = sum(int(np.prod(w.shape)) for sub in sublayers(inner)
                    if kind_of(sub) is not None for w in sub.weights)  # fmt: skip
        if count:
            held[inner.name] = count
    if held:
        logging.warning(
            "share_weights shares the kernels of the model's own conv and dense layers; "
            "%s hold conv or dense layers inside a layer class of their own, so their "
            "weights (%s parameters) stay float. Build the model of those parts (or "
            "exclude the layers to silence this). Received: %s",
            sorted(held), ", ".join(f"{n}: {c:,}" for n, c in sorted(held.items())),
            f"model={model.name!r}",
        )


def _wrapper_of(model, inner):
    for layer in model.layers:
        if isinstance(layer, SharedWeights) and layer.layer is inner:
            return layer
    raise RuntimeError(f"No SharedWeights wraps layer '{inner.name}'.")


def strip_shared(model):
    """Returns a copy of `model` of plain layers: each `SharedWeights` becomes its wrapped
    layer holding `shared_values()` (bit for bit), every other layer a copy of itself (a
    nested model: its `strip_shared`, still nested)."""
    plans = {}

    def clone(layer):
        if isinstance(layer, keras.Model):
            return strip_shared(layer)
        new = clone_layer(layer.layer if isinstance(layer, SharedWeights) else layer)
        plans[layer.name] = (layer, new)
        return new

    plain = copy_graph(model, clone, inline_models=False)
    for layer, new in plans.values():
        new.set_weights(stripped_values(layer))
    return plain


def stripped_values(layer):
    """The weights a plain copy of `layer` holds (a SharedWeights: its kernel shared)."""
    if not isinstance(layer, SharedWeights):
        return layer.get_weights()
    return [
        layer.shared_values() if w is layer.kernel else np.asarray(w) for w in layer.layer.weights
    ]
