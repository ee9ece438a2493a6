"""A pruning plan: which channels each mask keeps, as plain data (JSON round trip)."""

import dataclasses
import json

import numpy as np

from tfcompress.graph.trace import layers_of


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
    """Sets the masks of `masked` to `plan` (unknown mask names raise)."""
    from tfcompress.layers import ChannelMask  # local: layers import keras

    by_name = {layer.name: layer for layer in layers_of(masked)}
    for name, kept in plan.keep.items():
        layer = by_name.get(name)
        if not isinstance(layer, ChannelMask):
            raise ValueError(
                f"The plan names mask layer '{name}', which is not a mask layer of model "
                f"'{masked.name}'."
            )
        values = np.zeros(layer.units, np.float32)
        values[np.asarray(kept, dtype=np.int64)] = 1.0
        layer.mask.assign(values)


def plan_from_masks(masked):
    """The plan a wrapped model's masks currently encode."""
    from tfcompress.layers import ChannelMask

    keep = {}
    for layer in layers_of(masked):
        if isinstance(layer, ChannelMask):
            keep[layer.name] = np.nonzero(layer.kept())[0].tolist()
    return PruningPlan(keep=keep)
