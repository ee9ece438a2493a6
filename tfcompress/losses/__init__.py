"""Losses: segmentation and classification cross-entropy, the YOLOv2 region loss."""

from tfcompress.losses.classification import ClassificationCrossEntropy
from tfcompress.losses.deep_supervision import deep_supervision
from tfcompress.losses.detection_targets import PAD_CLASS, pad_detection_targets
from tfcompress.losses.segmentation import SegmentationCrossEntropy
from tfcompress.losses.yolov2_region import YOLOv2RegionLoss

__all__ = [
    "PAD_CLASS",
    "ClassificationCrossEntropy",
    "SegmentationCrossEntropy",
    "YOLOv2RegionLoss",
    "deep_supervision",
    "pad_detection_targets",
]
