"""Channel dependency graph: which channels of a Keras model must be removed together."""

from tfcompress.graph.dependency import (
    ChannelGroup,
    DependencyGraph,
    IndexMap,
    Member,
    UnknownLayerError,
)
from tfcompress.graph.rule_base import register_elementwise_activation
from tfcompress.graph.rules import (
    Rule,
    RuleArityError,
    find_rule,
    register_rule,
    registered_rule,
)
from tfcompress.graph.trace import layers_of, trace

# The rules of keras.ops operations (and the named refusals) and GroupQueryAttention's
# join RULES on import.
from tfcompress.graph import gqa_rules, op_table  # noqa: E402, F401  isort: skip

__all__ = [
    "ChannelGroup",
    "DependencyGraph",
    "IndexMap",
    "Member",
    "Rule",
    "RuleArityError",
    "UnknownLayerError",
    "find_rule",
    "layers_of",
    "register_elementwise_activation",
    "register_rule",
    "registered_rule",
    "trace",
]
