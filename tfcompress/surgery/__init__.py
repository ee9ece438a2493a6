"""Graph surgery: wrap models with masks, strip them into compact models."""

from tfcompress.surgery.masks import MaskSite, kept_components, mask_sites
from tfcompress.surgery.rebuild import clone_layer, rebuild
from tfcompress.surgery.strip import strip
from tfcompress.surgery.wrap import wrap

__all__ = [
    "MaskSite",
    "clone_layer",
    "kept_components",
    "mask_sites",
    "rebuild",
    "strip",
    "wrap",
]
