"""Metrics: model complexity (params, MACs) and task metrics."""

from tfcompress.metrics.complexity import count_macs, count_params, layer_stats
from tfcompress.metrics.mean_iou import MeanIoU
from tfcompress.metrics.voc_map import VOCMeanAP

__all__ = ["MeanIoU", "VOCMeanAP", "count_macs", "count_params", "layer_stats"]
