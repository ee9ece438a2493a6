"""A latency model of the deployment target: per-layer cost tables measured on this
machine as a function of kept channel counts, cached per machine and model, and the
predicted latency of a pruned model."""

from tfcompress.latency.cache import default_cache_dir, load_table, save_table
from tfcompress.latency.layers import LayerSite, layer_sites
from tfcompress.latency.machine import machine_key
from tfcompress.latency.measure import (
    grid_counts,
    measure_cost_table,
    model_ms,
    model_signature,
)
from tfcompress.latency.predict import Predictor
from tfcompress.latency.runtimes import RUNTIMES, serving_call
from tfcompress.latency.table import CostTable, LayerCost

__all__ = [
    "CostTable",
    "LayerCost",
    "LayerSite",
    "Predictor",
    "RUNTIMES",
    "default_cache_dir",
    "grid_counts",
    "layer_sites",
    "load_table",
    "machine_key",
    "measure_cost_table",
    "model_ms",
    "model_signature",
    "save_table",
    "serving_call",
]
