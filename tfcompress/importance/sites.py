"""The mask layers of one channel group (criteria that read mask state use this)."""

from tfcompress.surgery.masks import mask_sites


def group_sites(graph, group, mask_class=None):
    """The `MaskSite`s masking `group` (optionally only those of `mask_class`)."""
    sites = getattr(graph, "_tfc_sites", None)
    if sites is None:
        sites = mask_sites(graph)
        graph._tfc_sites = sites  # a graph is immutable once built: cache its sites
    return [
        s
        for s in sites
        if s.group == group.index and (mask_class is None or isinstance(s.layer, mask_class))
    ]
