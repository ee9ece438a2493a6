"""Which layers a latency model covers, and along which axes pruning changes them: the
conv / dense layers of a dependency graph, each with the kept channel counts it reads
("in") and makes ("out") when only some channels remain."""

import dataclasses
import re

import numpy as np
from keras import layers as klayers

from tfcompress.graph.rules import unwrap

# Layer classes whose cost a table models. Grouped convs (groups > 1) and transposed convs
# are left to the constant rest of the table.
MODELLED = (klayers.Dense, klayers.Conv1D, klayers.Conv2D, klayers.Conv3D,
            klayers.DepthwiseConv1D, klayers.DepthwiseConv2D, klayers.SeparableConv2D)
_TRANSPOSED = (klayers.Conv1DTranspose, klayers.Conv2DTranspose, klayers.Conv3DTranspose)


@dataclasses.dataclass(frozen=True)
class LayerSite:
    """One modelled layer call: `in_key` / `out_key` are its tensors in the graph; `axes`
    those of ("in", "out") a pruned group changes; `depthwise`: its output channels follow
    its input channels (then "out" is never an axis)."""

    layer: object
    in_key: object
    out_key: object
    in_shape: tuple
    out_shape: tuple
    axes: tuple
    depthwise: bool

    @property
    def name(self):
        return self.layer.name

    def spec(self, batch_size):
        """JSON-able description of what is measured (part of the model signature)."""
        config = self.layer.get_config()
        keep = ("filters", "units", "kernel_size", "strides", "padding", "dilation_rate",
                "depth_multiplier", "use_bias", "activation", "dtype")
        return {
            "name": self.name,
            "class": type(self.layer).__name__,
            "config": {k: _plain(config[k]) for k in keep if k in config},
            "in_shape": [batch_size, *self.in_shape[1:]],
            "out_shape": [batch_size, *self.out_shape[1:]],
            "axes": list(self.axes),
        }


def _plain(v):
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in sorted(v.items(), key=lambda kv: str(kv[0]))}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (int, float, str, bool, type(None))):
        return v
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(v))  # no addresses: stable across runs


# Config keys that do not change what a call computes or costs (auto-generated names
# differ between two builds of one model).
_UNTIMED = re.compile(r"^(name|trainable)$|_(initializer|regularizer|constraint)$")


def _timed_config(layer):
    """`layer`'s config without what does not change its cost (`_UNTIMED`), JSON-able."""
    try:
        config = layer.get_config()
    except (NotImplementedError, TypeError, AttributeError):  # a layer that cannot say
        config = {"weights": [list(w.shape) for w in getattr(layer, "weights", [])]}
    return _plain({k: v for k, v in config.items() if not _UNTIMED.search(str(k))})


def architecture(graph, batch_size):
    """JSON-able description of everything `graph`'s model computes that its latency
    depends on (part of the model signature): the inputs' shapes and dtypes, then each
    call in order with its layer's class and config (names left out), its input tensors
    (by position) and its shapes at `batch_size`."""
    traced = graph.traced
    position = {k: i for i, k in enumerate(traced.input_keys)}
    inputs = [[[batch_size, *t.shape[1:]], str(t.dtype)] for t in traced.input_tensors]
    calls = []
    for op in traced.ops:
        calls.append({
            "class": f"{type(op.layer).__module__}.{type(op.layer).__qualname__}",
            "config": _timed_config(op.layer),
            "inputs": [position.get(k) for k in op.in_keys],
            "in_shapes": [[batch_size, *s[1:]] for s in op.in_shapes],
            "out_shapes": [[batch_size, *s[1:]] for s in op.out_shapes],
        })
        for k in op.out_keys:
            position.setdefault(k, len(position))
    return {"inputs": _plain(inputs), "calls": _plain(calls)}


def _varies(graph, key):
    groups, _ = graph.group_channels(key)
    return any(graph.groups[g].prunable for g in np.unique(groups))


def layer_sites(graph):
    """The `LayerSite` of each modelled layer of `graph` (first call of a shared layer)."""
    sites, seen = [], set()
    for op in graph.traced.ops:
        layer = unwrap(op.layer)
        if (
            id(layer) in seen
            or not isinstance(layer, MODELLED)
            or isinstance(layer, _TRANSPOSED)
            or getattr(layer, "groups", 1) != 1
            or len(op.in_keys) != 1
            or any(d is None for d in (*op.in_shapes[0][1:], *op.out_shapes[0][1:]))
        ):
            continue
        seen.add(id(layer))
        depthwise = isinstance(layer, (klayers.DepthwiseConv1D, klayers.DepthwiseConv2D))
        axes = tuple(
            a for a, key in (("in", op.in_keys[0]), ("out", op.out_keys[0]))
            if _varies(graph, key) and not (depthwise and a == "out")
        )
        sites.append(LayerSite(layer, op.in_keys[0], op.out_keys[0], tuple(op.in_shapes[0]),
                               tuple(op.out_shapes[0]), axes, depthwise))
    return sites


def _shape_text(shape):
    return "x".join(str(d) for d in shape[1:])


def check_unique_names(graph):
    """Raises naming the layers unless each modelled layer's name is its own in `graph`:
    a cost table is keyed by layer name, and nested models may reuse a name (two blocks
    each with a layer "conv"), which `tfcompress.wrap` then renames."""
    layers_named = {}
    for layer in graph.traced.layers():
        layers_named.setdefault(unwrap(layer).name, []).append(layer)
    shared = {}
    for site in layer_sites(graph):
        if len(layers_named[site.name]) > 1:
            shared.setdefault(site.name, []).append(
                f"{_shape_text(site.in_shape)} -> {_shape_text(site.out_shape)}")
    if shared:
        described = "; ".join(f"'{name}' ({len(layers_named[name])} layers; modelled: "
                              f"{', '.join(calls)})" for name, calls in shared.items())
        raise ValueError(
            f"A cost table is keyed by layer name, and in model '{graph.model.name}' layers "
            f"share a name (nested models reusing layer names?): {described}. Give each "
            "layer its own name (e.g. prefix the layers of each nested block with the "
            "block's name) before measuring."
        )
