"""Predicting a pruned model's latency from a cost table: each modelled layer's cost at
the channel counts it keeps, plus the table's constant rest.

`Predictor` binds a table to a dependency graph; a state is how many channels each
group keeps (its best `k`, in a given order), so the cost of a change to one group is
read from the few layers that touch it.
"""

import numpy as np

from tfcompress.latency.layers import layer_sites


def _model_name(graph):
    return graph.model.name


class Predictor:
    """The latency of `graph`'s model keeping, in each group `g`, its first `k[g]` channels
    of `orders[g]` (channel indices, most important first).

    Args:
        graph: the dependency graph of the (wrapped) model.
        table: a `tfcompress.latency.CostTable` naming the model's modelled layers (those
            whose channel counts pruning changes; a layer it leaves out counts as part of
            `base_ms`).
        orders: `{group index: channel order}` of the groups that may change.
    """

    def __init__(self, graph, table, orders):
        self.table = table
        self.sites = [s for s in layer_sites(graph) if s.axes]
        self.orders = {g: np.asarray(o) for g, o in orders.items()}
        self.sizes = {g: graph.groups[g].size for g in orders}
        self.counters = []  # per site: {axis: (fixed count, {group: cumulative counts})}
        self.layers_of_group = {g: [] for g in orders}
        for i, site in enumerate(self.sites):
            entry = table.layers.get(site.name)
            if entry is None:
                raise ValueError(
                    f"The cost table has no entry for layer '{site.name}' of model "
                    f"'{_model_name(graph)}', whose channel counts pruning changes. Its "
                    f"entries: {sorted(table.layers)}."
                )
            keys = {"in": site.in_key, "out": site.in_key if site.depthwise else site.out_key}
            counter = {}
            for axis in entry.axes:
                counter[axis] = _tensor_counter(graph, keys[axis], self.orders)
                full = counter[axis][0] + sum(c[-1] for c in counter[axis][1].values())
                if full != entry.full(axis):
                    raise ValueError(
                        f"The cost table's entry for layer '{site.name}' has {entry.full(axis)} "
                        f"{axis}put channels at full width; the layer has {full} in model "
                        f"'{_model_name(graph)}' (a table of another model?)."
                    )
                for g in counter[axis][1]:
                    if i not in self.layers_of_group[g]:
                        self.layers_of_group[g].append(i)
            self.counters.append(counter)

    def full_counts(self):
        """`{group: size}`: every channel kept."""
        return dict(self.sizes)

    def site_ms(self, i, k):
        """Milliseconds of site `i` when group `g` keeps `k[g]` channels."""
        counts = {}
        for axis, (fixed, per_group) in self.counters[i].items():
            counts[axis] = fixed + sum(int(c[k[g]]) for g, c in per_group.items())
        return self.table.layer_ms(self.sites[i].name, counts)

    def group_ms(self, g, k):
        """Milliseconds of the layers that group `g`'s count changes."""
        return sum(self.site_ms(i, k) for i in self.layers_of_group[g])

    def total_ms(self, k):
        """Predicted milliseconds of the whole model."""
        modelled = {s.name for s in self.sites}
        rest = sum(
            c.cost({a: c.full(a) for a in c.axes}, self.table.multiple)
            for name, c in self.table.layers.items() if name not in modelled
        )
        return self.table.base_ms + rest + sum(self.site_ms(i, k) for i in range(len(self.sites)))


def _tensor_counter(graph, key, orders):
    """How many positions of tensor `key` are kept: `(fixed, {g: cum})`, where `cum[k]` is
    the number of its positions holding one of the first `k` channels of `orders[g]`, and
    `fixed` counts the positions of groups that do not change."""
    groups, ranks = graph.group_channels(key)
    fixed, per_group = 0, {}
    for g in np.unique(groups).tolist():
        on = ranks[groups == g]
        if g not in orders:
            fixed += len(on)
            continue
        order = orders[g]
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))  # channel -> its place in the order
        per_channel = np.bincount(position[on], minlength=len(order))
        per_group[g] = np.concatenate([[0], np.cumsum(per_channel)])
    return fixed, per_group
