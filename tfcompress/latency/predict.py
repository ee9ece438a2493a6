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
            fixed = [a for a in site.axes if a not in entry.axes]
            if fixed:
                raise ValueError(
                    f"The cost table's entry for layer '{site.name}' spans axes "
                    f"{list(entry.axes)}; pruning changes its "
                    f"{' and '.join(a + 'put' for a in fixed)} channels too in model "
                    f"'{_model_name(graph)}' (axes {list(site.axes)}): a table measured "
                    "with another exclude list? Measure it with the graph the model is "
                    "wrapped with: `measure_cost_table(model, graph=DependencyGraph(model, "
                    "exclude=...))` with wrap's exclude."
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
        # activation elements: fixed + sum over groups of act[g][k] (table.scaled_ms)
        self.act_fixed, self.act = 0, {g: np.zeros(self.sizes[g] + 1) for g in orders}
        for key, shape in graph.traced.shapes.items():
            if len(shape) < 2 or any(d is None for d in shape[1:]):
                continue
            spatial = int(np.prod(shape[1:-1], dtype=np.int64))
            fixed, per_group = _tensor_counter(graph, key, self.orders)
            self.act_fixed += spatial * fixed
            for g, cum in per_group.items():
                self.act[g] += spatial * cum
        self.act_full = self.act_fixed + sum(a[-1] for a in self.act.values())

    def full_counts(self):
        """`{group: size}`: every channel kept."""
        return dict(self.sizes)

    def site_ms(self, i, k):
        """Milliseconds of site `i` when group `g` keeps `k[g]` channels."""
        counts = {}
        for axis, (fixed, per_group) in self.counters[i].items():
            counts[axis] = fixed + sum(int(c[k[g]]) for g, c in per_group.items())
        return self.table.layer_ms(self.sites[i].name, counts)

    def activation_fraction(self, k):
        """The kept fraction of the activation elements of the model's tensors."""
        kept = self.act_fixed + sum(self.act[g][n] for g, n in k.items())
        return kept / self.act_full if self.act_full else 1.0

    def group_ms(self, g, k):
        """The milliseconds group `g`'s count changes: its layers' and its share of the
        table's `scaled_ms` (differences of it are differences of `total_ms`)."""
        share = self.table.scaled_ms * self.act[g][k[g]] / self.act_full if self.act_full else 0
        return share + sum(self.site_ms(i, k) for i in self.layers_of_group[g])

    def total_ms(self, k):
        """Predicted milliseconds of the whole model."""
        modelled = {s.name for s in self.sites}
        rest = sum(self.table.layer_ms(n, {}) for n in self.table.layers if n not in modelled)
        scaled = self.table.scaled_ms * self.activation_fraction(k)
        return self.table.base_ms + scaled + rest + sum(
            self.site_ms(i, k) for i in range(len(self.sites))
        )


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
