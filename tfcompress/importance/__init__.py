"""Importance criteria: a channel group in, one score per channel out."""

from tfcompress.importance.magnitude import l1_filter, magnitude_mask

# method name -> fn(group, **context) -> scores (higher = more important)
CRITERIA = {"l1_filter": l1_filter}


def register_criterion(name, fn):
    """Adds a channel criterion `fn(group, **context) -> np.ndarray[group.size]`."""
    CRITERIA[name] = fn


__all__ = ["CRITERIA", "l1_filter", "magnitude_mask", "register_criterion"]
