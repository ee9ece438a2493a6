"""tfcompress: structured pruning, dependency graphs and compact export for Keras 3.

import tfcompress as tfc
graph = tfc.DependencyGraph(model)
masked = tfc.wrap(model, method="l1_filter")
tfc.prune(masked, ratio=0.5)
compact = tfc.strip(masked)
tfc.export.saved_model(compact, "out/sm")
tfc.report(model, compact)
"""

from tfcompress import callbacks, export, layers, pruners, schedules
from tfcompress.graph import DependencyGraph, register_rule
from tfcompress.pruners import PruningPlan, apply_plan, plan_from_masks, prune
from tfcompress.report import report
from tfcompress.surgery import METHODS, strip, wrap

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "DependencyGraph",
    "PruningPlan",
    "apply_plan",
    "callbacks",
    "export",
    "layers",
    "plan_from_masks",
    "prune",
    "pruners",
    "register_rule",
    "report",
    "schedules",
    "strip",
    "wrap",
]
