"""Mask, gate and helper layers (state only)."""

from tfcompress.layers.channel_gate import ChannelGate
from tfcompress.layers.channel_mask import ChannelMask
from tfcompress.layers.masked_attention import MaskedAttention
from tfcompress.layers.masked_kernel import MaskedKernel
from tfcompress.layers.masked_layer_norm import MaskedLayerNormalization
from tfcompress.layers.soft_topk_mask import SoftTopKMask
from tfcompress.layers.space_to_depth import SpaceToDepth
from tfcompress.layers.taylor_mask import TaylorMask
from tfcompress.layers.weight_mask import WeightMask

__all__ = [
    "ChannelGate",
    "ChannelMask",
    "MaskedAttention",
    "MaskedKernel",
    "MaskedLayerNormalization",
    "SoftTopKMask",
    "SpaceToDepth",
    "TaylorMask",
    "WeightMask",
]
