"""Which layers a latency model covers, and along which axes pruning changes them: the
conv / dense layers of a dependency graph, each with the kept channel counts it reads
("in") and makes ("out") when only some channels remain."""

import dataclasses

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
        return {k: _plain(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


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
