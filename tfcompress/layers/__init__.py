"""Mask, gate and helper layers (state only)."""

from tfcompress.layers.space_to_depth import SpaceToDepth

__all__ = ["SpaceToDepth"]
