"""The mask layers of one channel group (criteria that read mask state use this)."""

from tfcompress.surgery.masks import mask_sites


def group_sites(graph, group, mask_class=None, sites=None):
    """The `MaskSite`s masking `group` (optionally only those of `mask_class`).

    `sites`: the graph's `mask_sites` when the caller has them (`score_groups` passes
    them to every criterion), else they are computed here.
    """
    sites = mask_sites(graph) if sites is None else sites
    return [
        s for s in sites
        if s.group == group.index and (mask_class is None or isinstance(s.layer, mask_class))
    ]
