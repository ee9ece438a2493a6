"""Metrics: model complexity (params, MACs) and task metrics."""

from tfcompress.metrics.complexity import count_macs, count_params, layer_stats

__all__ = ["count_macs", "count_params", "layer_stats"]
