"""tfcompress: structured pruning, dependency graphs and compact export for Keras 3.

import tfcompress as tfc
graph = tfc.DependencyGraph(model)
masked = tfc.wrap(model, method="l1_filter")
tfc.prune(masked, ratio=0.5)
compact = tfc.strip(masked)
tfc.export.saved_model(compact, "out/sm")
tfc.report(model, compact)

`tfc.models`, `tfc.data`, `tfc.losses`, `tfc.metrics` and `tfc.importance` are imported on
first use (`tfc.models.build("lenet5", num_classes=10, input_shape=(28, 28, 1))`), so
`import tfcompress` does not pay for the model zoo and the data pipeline.
"""

from importlib import import_module as _import_module

from tfcompress import (
    callbacks,
    codec,
    export,
    latency,
    layers,
    methods,
    pruners,
    schedules,
    sharing,
)
from tfcompress.graph import DependencyGraph, register_rule
from tfcompress.methods import Method, register_method
from tfcompress.pruners import PruningPlan, apply_plan, plan_from_masks, prune
from tfcompress.report import report
from tfcompress.surgery import strip, wrap

__version__ = "0.1.0"

# Subpackages imported on first attribute access (the import system then sets them on this
# module, so __getattr__ runs once for each).
_LAZY_SUBMODULES = ("data", "importance", "losses", "metrics", "models")


def __getattr__(name):
    # tfcompress.METHODS: the registered method names, read from the registry each time.
    if name == "METHODS":
        return methods.names()
    if name in _LAZY_SUBMODULES:
        return _import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'tfcompress' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "METHODS",
    "DependencyGraph",
    "Method",
    "PruningPlan",
    "apply_plan",
    "callbacks",
    "codec",
    "data",
    "export",
    "importance",
    "latency",
    "layers",
    "losses",
    "methods",
    "metrics",
    "models",
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
