"""Importance criteria: a channel group in, one score per channel out."""

from tfcompress.importance.bn_scale import bn_scale
from tfcompress.importance.magnitude import l1_filter, magnitude_mask
from tfcompress.importance.soft_topk import soft_topk
from tfcompress.importance.taylor import taylor
from tfcompress.importance.weight_threshold import std_threshold_mask
from tfcompress.names import check_name

# method name -> fn(group, **context) -> scores (higher = more important); the context
# is data=, model=, graph= and sites= (the graph's mask sites). A criterion may carry
# `prepare(model, data=, graph=, steps=)`, run once before the groups are scored (steps:
# how many batches of data to read, None for all). A criterion that reads no data says so
# with `reads_data = False` (`reads_data`): `prune(data=, steps=)` is then refused. A
# method's record (`tfcompress.methods.Method.criterion`) names the criterion it ranks with.
CRITERIA = {
    "l1_filter": l1_filter,
    "taylor": taylor,
    "slimming": bn_scale,
    "soft_topk": soft_topk,
}


def reads_data(name):
    """Whether criterion `name` reads the `data=` it is given (a registered criterion does,
    unless it sets `reads_data = False`: l1_filter, slimming and soft_topk)."""
    return getattr(CRITERIA[name], "reads_data", True)


def register_criterion(name, fn):
    """Adds a channel criterion `fn(group, **context) -> np.ndarray[group.size]` under a
    new `name` (a registered name, built-in or not, is refused: re-scoring with another
    criterion is `criterion=`, not a replacement behind every method using the name)."""
    check_name("name", name)
    if name in CRITERIA:
        raise ValueError(
            f"A criterion named {name!r} is already registered; register yours under "
            f"another name. Received: name={name!r}, fn={fn!r}"
        )
    if not callable(fn):
        raise TypeError(
            "fn must be callable: fn(group, **context) -> one score per channel. "
            f"Received: fn={fn!r}"
        )
    CRITERIA[name] = fn


__all__ = [
    "CRITERIA",
    "bn_scale",
    "l1_filter",
    "magnitude_mask",
    "reads_data",
    "register_criterion",
    "soft_topk",
    "std_threshold_mask",
    "taylor",
]
