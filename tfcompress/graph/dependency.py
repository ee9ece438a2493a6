"""The channel dependency graph of a Keras 3 model.

Every channel of every tensor is a node; rules (`tfcompress.graph.rules`) add edges
between channels that must be removed together. Connected components are single
channels of the network ("the 5th channel of this residual stage"); components that touch
the same tensors form a `ChannelGroup`, the unit a pruner ranks and cuts.
"""

import dataclasses

import keras
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from tfcompress.graph import opaque as opaque_lib
from tfcompress.graph import rules as rules_lib
from tfcompress.graph.trace import describe_opaque, layers_of, trace


class UnknownLayerError(ValueError):
    """A layer class without a channel rule."""


def exclude_names(exclude):
    """`exclude` (layer names: a list, tuple or set of str, or one str) as a tuple of
    names; raises naming it otherwise (a str is one name, not its characters)."""
    if isinstance(exclude, str):
        return (exclude,)
    try:
        names = tuple(exclude)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise TypeError(
            "exclude must be layer names: a list of str (or one str). Received: "
            f"exclude={exclude!r}"
        )
    return names


def check_graph_of(graph, model, purpose):
    """Raises unless `graph` is None or the dependency graph of `model` (`purpose`: what
    `model` is given for, e.g. "to wrap", named in the message)."""
    if graph is not None and graph.model is not model:
        raise ValueError(
            f"graph is the dependency graph of model '{graph.model.name}', not of the model "
            f"{purpose}, '{model.name}': pass DependencyGraph(model) or no graph. Received: "
            f"graph={graph!r}"
        )


def resolve_exclude(model, exclude):
    """`exclude_names(exclude)` with the name of a model nested in `model` (a backbone, a
    Sequential block) replaced by the names of all the layers inside it: the graph sees
    through nested models, so leaving one alone means leaving each of its layers alone."""
    names = exclude_names(exclude)
    if not names or not isinstance(model, keras.Model):  # (trace refuses a non-model)
        return names
    nested = {m.name: m for m in layers_of(model, keras.Model)}

    def leaves(m):
        return [layer.name for layer in layers_of(m)
                if not isinstance(layer, (keras.Model, keras.layers.InputLayer))]

    out = []
    for name in names:
        out.extend(leaves(nested[name]) if name in nested else [name])
    return tuple(dict.fromkeys(out))


@dataclasses.dataclass(frozen=True)
class IndexMap:
    """Where a group's channels sit on one tensor: `positions[i]` holds group channel
    `channels[i]` (a channel may sit at several positions, e.g. after Flatten)."""

    positions: np.ndarray
    channels: np.ndarray

    def per_channel(self, size):
        """List of position arrays, one per group channel."""
        order = np.argsort(self.channels, kind="stable")
        bounds = np.searchsorted(self.channels[order], np.arange(size + 1))
        return [self.positions[order[bounds[j] : bounds[j + 1]]] for j in range(size)]


@dataclasses.dataclass
class Member:
    """A layer touching a group: `role` is "out" (it makes the channels: conv filters),
    "in" (it consumes them: a conv's input channels) or "channelwise" (BatchNorm & co).
    `internal` names the layer's internal axis the channels lie along (an attention
    layer's "heads", `Rule.internal_axes`), or is None for its output."""

    layer: object
    role: str
    index_map: IndexMap
    internal: str | None = None


@dataclasses.dataclass
class ChannelGroup:
    """Channels that are removed together. Channel `j` is component `components[j]`."""

    index: int
    components: np.ndarray
    prunable: bool
    tensors: list
    members: list
    pinned_by: str = ""

    @property
    def size(self):
        return int(len(self.components))

    def layers(self, role):
        return [m for m in self.members if m.role == role]

    def __repr__(self):
        names = sorted({m.layer.name for m in self.members})
        state = "prunable" if self.prunable else f"pinned ({self.pinned_by})"
        return f"ChannelGroup({self.index}, size={self.size}, {state}, layers={names})"


class Coupler:
    """Collects channel edges while rules visit the ops (the verbs rules call)."""

    def __init__(self, shapes):
        self.size, self.offsets, total = {}, {}, 0
        for key, shape in shapes.items():
            c = shape[-1] if len(shape) >= 2 and shape[-1] is not None else 0
            self.size[key], self.offsets[key] = int(c), total
            total += int(c)
        self.total = total
        self._a, self._b = [], []
        self.pins = {}
        self.consumed = []

    def _edge(self, a, b):
        self._a.append(a)
        self._b.append(b)

    def pin(self, *keys, reason="pinned"):
        """No channel of these tensors may be removed."""
        for k in keys:
            self.pins.setdefault(k, reason)

    def identity(self, a, b):
        """Channel c of `a` is channel c of `b`."""
        if self.size[a] != self.size[b]:
            self.pin(a, b, reason="channel count changes")
            return
        n = np.arange(self.size[a])
        self._edge(self.offsets[a] + n, self.offsets[b] + n)

    def offset(self, src, dst, offset):
        """Channel c of `src` is channel offset + c of `dst` (Concatenate)."""
        n = np.arange(self.size[src])
        self._edge(self.offsets[src] + n, self.offsets[dst] + offset + n)

    def modulo(self, src, dst):
        """Feature f of `dst` is channel f % C of `src` (Flatten, SpaceToDepth)."""
        c, f = self.size[src], self.size[dst]
        if c == 0 or f % c:
            self.pin(src, dst, reason="feature count is not a multiple of channels")
            return
        n = np.arange(f)
        self._edge(self.offsets[src] + n % c, self.offsets[dst] + n)

    def expand(self, src, dst, multiplier):
        """Channel c*m + j of `dst` is channel c of `src` (depthwise multiplier m)."""
        c, f = self.size[src], self.size[dst]
        if f != c * multiplier:
            self.pin(src, dst, reason="unexpected depth multiplier")
            return
        n = np.arange(f)
        self._edge(self.offsets[src] + n // multiplier, self.offsets[dst] + n)

    def add(self, key, size):
        """A tensor-like set of `size` channels no model tensor holds (an internal axis)."""
        self.size[key], self.offsets[key] = int(size), self.total
        self.total += int(size)

    def consume(self, op, key):
        """`op` reads the channels of `key` through weights (a conv's input channels)."""
        self.consumed.append((op, key))

    def components(self):
        a = np.concatenate(self._a) if self._a else np.zeros(0, np.int64)
        b = np.concatenate(self._b) if self._b else np.zeros(0, np.int64)
        adj = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(self.total, self.total))
        return connected_components(adj, directed=False)


class DependencyGraph:
    """Coupled channel groups of a built functional or Sequential Keras 3 model.

    Args:
        model: the model (nested models are descended into).
        exclude: names of layers to leave alone: every channel they touch is kept (one
            name or a list; a nested model's name stands for all the layers inside it).

    Attributes:
        groups: list of `ChannelGroup`.
        traced: the flat `TracedModel` (ops in topological order).
    """

    def __init__(self, model, exclude=()):
        self.model = model
        self.exclude = resolve_exclude(model, exclude)
        self.traced = trace(model, keep=self.exclude)
        self._build()

    # -- construction -------------------------------------------------------------------
    def _build(self):
        t = self.traced
        self._excluded = self._resolve_excluded()
        b = Coupler(t.shapes)
        for k in t.input_keys:
            b.pin(k, reason="model input")
        for k in t.output_keys:
            b.pin(k, reason="model output")
        self._rules = {}  # id(layer) -> Rule: the traced model holds every layer
        self.shapes = dict(t.shapes)  # tensor keys and internal axis keys -> shape
        self.internal = {}  # internal axis key -> (first op of its layer, axis name)
        calls = {}
        for op in t.ops:
            rule = self._rules.get(id(op.layer)) or self._find_rule(op)
            self._rules[id(op.layer)] = rule
            for name, axis in rule.internal_axes(op.layer).items():
                key = rules_lib.internal_key(rules_lib.unwrap(op.layer), name)
                if key not in self.internal:
                    self.internal[key] = (op, name)
                    self.shapes[key] = (None, axis.size)
                    b.add(key, axis.size)
            if self.is_excluded(op.layer):
                b.pin(*op.in_keys, *op.out_keys, reason=f"excluded layer {op.layer.name}")
                b.pin(*(k for k, (o, _) in self.internal.items() if o.layer is op.layer),
                      reason=f"excluded layer {op.layer.name}")
            else:
                rule.check_arity(op)
            rule.couple(op, b)
            calls.setdefault(id(op.layer), []).append(op)
        for ops in calls.values():  # a shared layer's calls share its weights
            if len(ops) > 1 and getattr(ops[0].layer, "weights", None):
                for op in ops[1:]:
                    self.rule(op.layer).couple_calls(ops[0], op, b)
        for k in t.shapes:
            if b.size[k] == 0:
                b.pin(k, reason="unknown channel count")
        self._check_opaque(b)
        n, labels = b.components()
        self._coupler = b
        self.component_of = {
            k: labels[b.offsets[k] : b.offsets[k] + b.size[k]] for k in self.shapes
        }
        self.num_components = n
        self._make_groups(b)

    def is_excluded(self, layer):
        """Whether `layer` (one of the traced model's) is left alone (`exclude`)."""
        return id(layer) in self._excluded

    def _resolve_excluded(self):
        """The ids of the traced layers `exclude` names (the traced model holds them).

        A name several parts of composite layers share (keras_hub's blocks each hold a
        `self_attention_layer`) is refused: it cannot say which one is meant, and left
        alone they would all be. The composite layers themselves can be named."""
        t = self.traced
        by_name = {}
        for layer in t.layers():
            by_name.setdefault(layer.name, []).append(layer)
        excluded, unknown = set(), []
        for name in self.exclude:
            found = by_name.get(name)
            if found is None:
                unknown.append(name)
                continue
            if len(found) > 1 and any(id(x) in t.composites for x in found):
                owners = sorted({t.composites[id(x)] for x in found if id(x) in t.composites})
                raise ValueError(
                    f"exclude name {name!r} is the name of {len(found)} layers of model "
                    f"'{self.model.name}', parts of the composite layers {owners}, so it "
                    "cannot say which one to leave alone. Exclude the composite layer(s) "
                    f"whole instead (exclude={owners[:1]!r} leaves the first alone)."
                )
            excluded.update(id(x) for x in found)
        if unknown:
            names = sorted({*by_name, *t.composites.values()})
            raise ValueError(
                f"exclude names layer(s) {unknown} that are not in model '{self.model.name}'. "
                f"Its layers are: {names}."
            )
        return excluded

    def _find_rule(self, op):
        layer = op.layer
        rule = rules_lib.find_rule(layer)
        if rule is None and self.is_excluded(layer):
            rule = rules_lib.Pin()
        return opaque_lib.Opaque() if rule is None else rule

    def _check_opaque(self, b):
        """Layers without a rule keep their channels when other layers keep them anyway
        (`tfcompress.graph.opaque`); otherwise the first of them is refused by name."""
        ops = [op for op in self.traced.ops if isinstance(self.rule(op.layer), opaque_lib.Opaque)]
        if not ops:
            return
        found = opaque_lib.blocking(ops, b)
        if found:
            op = found[0][0]
            layer, cls = op.layer, type(op.layer)
            raise UnknownLayerError(
                f"Layer '{layer.name}' of class {cls.__module__}.{cls.__qualname__} has "
                "no channel rule, so tfcompress cannot tell which of its channels are "
                f"coupled{describe_opaque(self.traced, layer)}. {rules_lib.suggest_rule(op)}"
            )
        for op in ops:
            b.pin(*op.in_keys, *op.out_keys, reason=f"layer {op.layer.name} (no rule)")

    def _make_groups(self, b):
        """Components touching the same tensors form a group. Groups are numbered in the
        order their first component is met (tensors in `self.shapes` order, components
        ascending within a tensor), and a group's channels in the order of their first
        position in its first tensor; the first pinned channel names its reason. Numpy
        over (tensor, component) pairs: a Python loop per channel cost most of a
        ResNet-18's graph build."""
        keys = list(self.shapes)
        n = self.num_components
        pair_comp, pair_key, pair_pos = [], [], []
        label = np.zeros(n, np.int64)  # equal labels <=> the same tensors (refined per key)
        next_label = 1
        for i, k in enumerate(keys):
            uniq, first = np.unique(self.component_of[k], return_index=True)
            pair_comp.append(uniq)
            pair_key.append(np.full(len(uniq), i, np.int64))
            pair_pos.append(first)
            old, inverse = np.unique(label[uniq], return_inverse=True)
            label[uniq] = next_label + inverse
            next_label += len(old)
        pair_comp = np.concatenate(pair_comp) if keys else np.zeros(0, np.int64)
        pair_key = np.concatenate(pair_key) if keys else np.zeros(0, np.int64)
        pair_pos = np.concatenate(pair_pos) if keys else np.zeros(0, np.int64)
        # every component lies in some tensor: its first pair is where it is first met
        _, first_pair = np.unique(pair_comp, return_index=True)
        first_pos = pair_pos[first_pair]
        # groups numbered by their first-met component
        by_visit = np.argsort(first_pair, kind="stable")
        labels, first_of_label = np.unique(label[by_visit], return_index=True)
        rank = np.empty(len(labels), np.int64)
        rank[np.argsort(first_of_label, kind="stable")] = np.arange(len(labels))
        group_of = rank[np.searchsorted(labels, label)]
        order = np.lexsort((first_pos, group_of))  # by group, then first position
        bounds = np.searchsorted(group_of[order], np.arange(len(labels) + 1))
        self._group_of_component = group_of
        self._rank_of_component = np.empty(n, np.int64)
        self._rank_of_component[order] = np.arange(n) - bounds[group_of[order]]
        # each component's tensors: its pairs, in key order
        by_comp = np.argsort(pair_comp, kind="stable")
        comp_bounds = np.searchsorted(pair_comp[by_comp], np.arange(n + 1))
        pin_of = np.full(n, -1, np.int64)  # index of the first pin reason per component
        reasons = list(b.pins.values())
        for j, k in enumerate(b.pins):
            comps = self.component_of[k]
            pin_of[comps[pin_of[comps] < 0]] = j
        self.groups = []
        for g in range(len(labels)):
            comps = order[bounds[g] : bounds[g + 1]]
            c = comps[0]
            sig = pair_key[by_comp[comp_bounds[c] : comp_bounds[c + 1]]]
            pins = pin_of[comps]
            pinned = pins[pins >= 0]
            self.groups.append(
                ChannelGroup(
                    index=g,
                    components=comps,
                    prunable=not len(pinned),
                    tensors=[keys[i] for i in sig.tolist()],
                    members=[],
                    pinned_by=reasons[pinned[0]] if len(pinned) else "",
                )
            )
        self._add_members(b)

    def _add_members(self, b):
        """Each group's members: per tensor, its producer (if it has weights) and the
        layers consuming it through weights, with the group's index map there."""
        producers = {}  # tensor key -> (unwrapped layer, role): producers with weights
        for op in self.traced.ops:
            if getattr(op.layer, "weights", None):
                role = "out" if self.rule(op.layer).is_mixing else "channelwise"
                for k in op.out_keys:
                    producers[k] = (rules_lib.unwrap(op.layer), role)
        consumers = {}
        for op, k in b.consumed:
            consumers.setdefault(k, []).append(rules_lib.unwrap(op.layer))
        maps = {}  # tensor key -> {group index: IndexMap}
        for group in self.groups:
            for k in group.tensors:
                if k not in maps:
                    maps[k] = self._index_maps(k)
                imap = maps[k][group.index]
                if k in self.internal:
                    op, name = self.internal[k]
                    layer = rules_lib.unwrap(op.layer)
                    group.members.append(Member(layer, "out", imap, internal=name))
                    continue
                if k in producers:
                    layer, role = producers[k]
                    group.members.append(Member(layer, role, imap))
                for layer in consumers.get(k, []):
                    group.members.append(Member(layer, "in", imap))

    def _index_maps(self, key):
        """`{group index: IndexMap}` of the groups with channels on tensor `key`."""
        groups, ranks = self.group_channels(key)
        order = np.argsort(groups, kind="stable")  # positions ascending within a group
        found, starts = np.unique(groups[order], return_index=True)
        ends = [*starts[1:].tolist(), len(order)]
        maps = {}
        for g, s, e in zip(found.tolist(), starts.tolist(), ends):
            pos = order[s:e]
            maps[g] = IndexMap(positions=pos, channels=ranks[pos])
        return maps

    # -- queries ------------------------------------------------------------------------
    @property
    def prunable_groups(self):
        return [g for g in self.groups if g.prunable]

    def group_channels(self, key):
        """For tensor `key`: (group index, channel in group) of each of its channels."""
        return self.component_channels(self.component_of[key])

    def component_channels(self, components):
        """(group index, channel in group) of each of `components` (component labels)."""
        return self._group_of_component[components], self._rank_of_component[components]

    def consumers(self):
        """(op, tensor key) pairs: each op consuming a tensor's channels (conv/dense input)."""
        return list(self._coupler.consumed)

    def rule(self, layer):
        return self._rules[id(layer)]

    def __repr__(self):
        p = len(self.prunable_groups)
        return f"DependencyGraph({self.model.name}: {len(self.groups)} groups, {p} prunable)"
