"""tfcompress: structured pruning, dependency graphs and compact export for Keras 3.

import tfcompress as tfc
graph = tfc.DependencyGraph(model)
masked = tfc.wrap(model, method="l1_filter")
tfc.prune(masked, ratio=0.5)
compact = tfc.strip(masked)
tfc.export.saved_model(compact, "out/sm")
tfc.report(model, compact)
"""

from tfcompress import callbacks, codec, export, layers, methods, pruners, schedules, sharing
from tfcompress.graph import DependencyGraph, register_rule
from tfcompress.methods import Method, register_method
from tfcompress.pruners import PruningPlan, apply_plan, plan_from_masks, prune
from tfcompress.report import report
from tfcompress.surgery import strip, wrap

__version__ = "0.1.0"


def __getattr__(name):
    # tfcompress.METHODS: the registered method names, read from the registry each time.
    if name == "METHODS":
        return methods.names()
    raise AttributeError(f"module 'tfcompress' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "DependencyGraph",
    "Method",
    "PruningPlan",
    "apply_plan",
    "callbacks",
    "codec",
    "export",
    "layers",
    "methods",
    "plan_from_masks",
    "prune",
    "pruners",
    "register_method",
    "register_rule",
    "report",
    "schedules",
    "sharing",
    "strip",
    "wrap",
]
