"""A pruning plan: which channels each mask keeps, as plain data (JSON round trip)."""

import dataclasses
import json

import numpy as np

from tfcompress.graph.trace import layers_of
from tfcompress.numbers import is_int


@dataclasses.dataclass
class PruningPlan:
    """`keep[mask_layer_name]` lists the kept channel indices of that mask layer;
    `weight_sparsity[layer_name]` records unstructured sparsity per layer."""

    keep: dict = dataclasses.field(default_factory=dict)
    weight_sparsity: dict = dataclasses.field(default_factory=dict)

    def to_json(self):
        return json.dumps(
            {"keep": self.keep, "weight_sparsity": self.weight_sparsity}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        return cls(keep=data.get("keep", {}), weight_sparsity=data.get("weight_sparsity", {}))


def apply_plan(masked, plan):
    """Sets the masks of `masked` to `plan`. Checked first, nothing set if any is wrong:
    every name must be a mask layer of `masked`, and its keep list distinct integer
    channel indices in [0, units) (not keep flags: `np.flatnonzero(flags).tolist()`).

    A plan with `weight_sparsity` (what `prune` returns for an unstructured method) is
    refused: it records how many weights each layer lost, not which, so there is nothing
    to set (it was applied silently as nothing)."""
    from tfcompress.layers import ChannelMask  # local: layers import keras

    if plan.weight_sparsity:
        raise ValueError(
            "apply_plan sets channel masks (the plan's `keep`); this plan holds "
            "weight_sparsity, the share of weights an unstructured method (magnitude) "
            "pruned per layer, which does not say which weights: prune the model itself "
            "with tfcompress.prune(masked, ratio=...). Received: weight_sparsity="
            f"{dict(list(plan.weight_sparsity.items())[:4])!r}"
        )

    by_name = {layer.name: layer for layer in layers_of(masked)}
    values = {}
    for name, kept in plan.keep.items():
        layer = by_name.get(name)
        if not isinstance(layer, ChannelMask):
            raise ValueError(
                f"The plan names mask layer '{name}', which is not a mask layer of model "
                f"'{masked.name}'."
            )
        values[layer] = np.zeros(layer.units, np.float32)
        values[layer][_indices(name, kept, layer.units)] = 1.0
    for layer, value in values.items():
        layer.mask.assign(value)


def _indices(name, kept, units):
    """`kept` (the keep list of mask layer `name`) as a list of ints; raises naming the
    first value that is not a distinct channel index in [0, units)."""
    problem = None
    if isinstance(kept, np.ndarray) and kept.ndim == 1:
        kept = kept.tolist()
    if not isinstance(kept, (list, tuple)):
        problem = "is not a list of channel indices"
    elif kept and all(isinstance(v, (bool, np.bool_)) for v in kept):
        problem = (
            "holds keep flags; it lists the kept channel indices "
            "(np.flatnonzero(flags).tolist())"
        )
    else:
        seen = set()
        for v in kept:
            if not is_int(v):
                problem = f"holds {v!r}, not an integer channel index"
            elif not 0 <= v < units:
                problem = f"holds {v!r}, outside the layer's channels [0, {units})"
            elif v in seen:
                problem = f"holds {v!r} twice"
            if problem:
                break
            seen.add(v)
    if problem:
        raise ValueError(
            f"The plan's keep list of mask layer '{name}' {problem}. "
            f"Received: keep[{name!r}]={kept!r}"
        )
    return [int(v) for v in kept]


def plan_from_masks(masked):
    """The plan a wrapped model's masks currently encode."""
    from tfcompress.layers import ChannelMask

    keep = {}
    for layer in layers_of(masked):
        if isinstance(layer, ChannelMask):
            keep[layer.name] = np.nonzero(layer.kept())[0].tolist()
    return PruningPlan(keep=keep)
