"""One dependency graph per functional model: `prune` and `strip` of a wrapped model (and
the pruning callbacks) share the graph the first of them traces, instead of each tracing
and grouping the model again (a wrapped DenseNet121's graph takes ~0.25 s).

A functional model's layer graph cannot change once built, so its `DependencyGraph` only
depends on the `exclude` list and on the rule table (`register_rule` may change it): the
graph is kept on the model and reused while both are the same. A Sequential model (or one
holding a Sequential, whose `add` rewires it) is traced every time.
"""

import keras

from tfcompress.graph import rules as rules_lib
from tfcompress.graph.dependency import DependencyGraph

_ATTR = "_tfcompress_dependency_graph"


class _Memo:
    """A model's graph and the rule table it was built with. A plain object: neither a
    Keras saveable, nor a container, nor trackable, so saving the model skips it."""

    def __init__(self, graph, rules):
        self.graph = graph
        self.rules = rules


def graph_for(model, exclude=()):
    """`DependencyGraph(model, exclude=exclude)`, built once per functional model, exclude
    list and rule table (the same object again while none of them changed)."""
    exclude = tuple(exclude)
    memo = vars(model).get(_ATTR)
    if memo is not None and memo.graph.exclude == exclude and _same_rules(memo.rules):
        return memo.graph
    graph = DependencyGraph(model, exclude=exclude)
    if _fixed(model):
        # past Keras/TF attribute tracking: the memo is no part of the model's state
        vars(model)[_ATTR] = _Memo(graph, dict(rules_lib.RULES))
    return graph


def _same_rules(snapshot):
    table = rules_lib.RULES
    return len(snapshot) == len(table) and all(table.get(k) is v for k, v in snapshot.items())


def _fixed(model):
    """True when `model`'s layer graph cannot change: no Sequential in it."""
    stack = [model]
    while stack:
        current = stack.pop()
        if isinstance(current, keras.Sequential):
            return False
        stack.extend(layer for layer in current.layers if isinstance(layer, keras.Model))
    return True
