"""One dependency graph per wrapped model: `prune` and `strip` of a model `wrap` made (and
the pruning callbacks) share the graph the first of them traces, instead of each tracing
and grouping the model again (a wrapped DenseNet121's graph takes ~0.25 s).

`wrap` gives the model it makes an empty slot (`attach`), so no model a caller made is
ever written to. A functional model's layer graph cannot change once built, so its
`DependencyGraph` depends only on the `exclude` list and on the rule table
(`register_rule` may change it) and the activations declared element-wise
(`register_elementwise_activation`): the graph in the slot is reused while they are the same.
Any other model (a user's, or a wrapped model loaded from a file) is traced every time.
"""

from tfcompress.graph import rule_base
from tfcompress.graph import rules as rules_lib
from tfcompress.graph.dependency import DependencyGraph

_ATTR = "_tfcompress_dependency_graph"


class _Memo:
    """A model's graph, the rule table it was built with, and the `exclude` list the
    model was made with. A plain object: neither a Keras saveable, nor a container, nor
    trackable, so saving the model skips it."""

    def __init__(self, exclude=()):
        self.graph = None
        self.rules = None
        self.exclude = tuple(exclude)


def attach(model, exclude=()):
    """Gives `model` (a functional model just made by tfcompress from a graph that left
    the layers `exclude` names alone) a slot for its graph; returns `model`."""
    vars(model)[_ATTR] = _Memo(exclude)  # past Keras/TF attribute tracking: not model state
    return model


def exclude_of(model):
    """The `exclude` list `model` was made with (`attach`), or None for a model without
    a slot. The mask layers' configs say it too; this also answers for a wrapped model
    holding no mask (every group pinned), until the model is saved."""
    memo = vars(model).get(_ATTR)
    return None if memo is None else memo.exclude


def graph_for(model, exclude=()):
    """`DependencyGraph(model, exclude=exclude)`; for a model with a slot (`attach`), built
    once per exclude list and rule table (the same object again while neither changed)."""
    exclude = tuple(exclude)
    memo = vars(model).get(_ATTR)
    if memo is None:
        return DependencyGraph(model, exclude=exclude)
    graph = memo.graph
    if graph is None or graph.exclude != exclude or not _same_rules(memo.rules):
        graph = DependencyGraph(model, exclude=exclude)
        memo.graph, memo.rules = graph, (dict(rules_lib.RULES), rule_base.activation_state())
    return graph


def _same_rules(snapshot):
    rules, activations = snapshot
    table = rules_lib.RULES
    return (activations == rule_base.activation_state() and len(rules) == len(table)
            and all(table.get(k) is v for k, v in rules.items()))
