"""Which channels to keep, given one score array per group: local or global ranking,
a ratio / threshold / count of channels to remove, minimum channels, rounding.

Pure NumPy: scores in, `{group: bool keep array}` out.
"""

import math

import numpy as np

SCOPES = ("local", "global")


def check_scope(scope):
    """Raises naming `scope` unless it is one of `SCOPES`."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}. Received: scope={scope!r}")

# How scores of different groups are made comparable before a global ranking.
NORMALIZERS = {
    "none": lambda s: s,
    "mean": lambda s: s / max(float(np.mean(np.abs(s))), 1e-12),
    "max": lambda s: s / max(float(np.max(np.abs(s))), 1e-12),
    "l2": lambda s: s / max(float(np.linalg.norm(s)), 1e-12),
}


def check_options(
    ratio=None,
    scope="local",
    min_channels=1,
    round_to=1,
    threshold=None,
    num_remove=None,
    normalize="none",
):
    """Validates the ranking options; raises ValueError naming the bad value."""
    given = [
        n
        for n, v in (("ratio", ratio), ("threshold", threshold), ("num_remove", num_remove))
        if v is not None
    ]
    if len(given) != 1:
        raise ValueError(
            "Give exactly one of ratio, threshold or num_remove. Received: "
            f"ratio={ratio!r}, threshold={threshold!r}, num_remove={num_remove!r}"
        )
    if ratio is not None and (
        isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1
    ):
        raise ValueError(f"ratio must be a number in [0, 1). Received: ratio={ratio!r}")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float))
    ):
        raise ValueError(f"threshold must be a number. Received: threshold={threshold!r}")
    if num_remove is not None and (
        isinstance(num_remove, bool) or not isinstance(num_remove, int) or num_remove < 0
    ):
        raise ValueError(f"num_remove must be an integer >= 0. Received: num_remove={num_remove!r}")
    check_scope(scope)
    if isinstance(min_channels, bool) or not isinstance(min_channels, int) or min_channels < 1:
        raise ValueError(
            f"min_channels must be an integer >= 1. Received: min_channels={min_channels!r}"
        )
    if isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be an integer >= 1. Received: round_to={round_to!r}")
    if normalize not in NORMALIZERS:
        raise ValueError(
            f"normalize must be one of {sorted(NORMALIZERS)}. Received: normalize={normalize!r}"
        )


def round_up(n_keep, n, round_to):
    """`n_keep` rounded up to a multiple of `round_to`, at most `n`."""
    return min(n, round_to * math.ceil(n_keep / round_to)) if n_keep else 0


def keep_count(n, ratio, min_channels=1, round_to=1):
    """How many of `n` channels to keep when removing `ratio` of them."""
    n_keep = max(min(min_channels, n), n - int(math.floor(ratio * n + 1e-9)))
    return round_up(n_keep, n, round_to)


def _order(scores, alive):
    """Channel indices, most important first: alive channels before pruned ones."""
    return np.lexsort((-np.asarray(scores, np.float64), ~alive))


def select(
    scores,
    ratio=None,
    scope="local",
    min_channels=1,
    round_to=1,
    threshold=None,
    num_remove=None,
    alive=None,
    normalize="none",
):
    """Keep flags per group.

    Args:
        scores: `{group: np.ndarray}`, higher = more important; a group whose scores are
            all non-finite (e.g. slimming on a group without BatchNorm) is kept whole
            and left out of a global ranking.
        ratio: fraction of channels to remove (per group, or of the global pool).
        threshold: remove channels scoring below it (after `normalize`).
        num_remove: remove this many more channels (per group, or from the pool).
        scope: "local" (each group on its own) or "global" (one ranking of all groups).
        min_channels: never keep fewer channels in a group (or all, if it has fewer).
        round_to: round each group's kept count up to a multiple of this.
        alive: optional `{group: bool}` of channels not pruned yet; pruned channels are
            removed first and counted in `ratio`.
        normalize: a key of `NORMALIZERS`, applied to each group's scores.

    Returns:
        `{group: bool np.ndarray}` (True = keep).
    """
    check_options(ratio, scope, min_channels, round_to, threshold, num_remove, normalize)
    alive = {
        g: (
            np.ones(len(s), bool) if alive is None or g not in alive else np.asarray(alive[g], bool)
        )
        for g, s in scores.items()
    }
    keep, pool = {}, {}
    for g, s in scores.items():
        s = np.asarray(s, np.float64)
        if not np.isfinite(s).any():
            keep[g] = np.ones(len(s), bool)
        else:
            pool[g] = NORMALIZERS[normalize](s)
    if scope == "local":
        for g, s in pool.items():
            keep[g] = _select_local(s, alive[g], ratio, threshold, num_remove, min_channels)
    else:
        keep.update(_select_global(pool, alive, ratio, threshold, num_remove, min_channels))
    for g in pool:  # rounding: add back the best removed channels
        n = len(keep[g])
        target = round_up(int(keep[g].sum()), n, round_to)
        if target > keep[g].sum():
            order = _order(pool[g], alive[g])
            keep[g] = np.zeros(n, bool)
            keep[g][order[:target]] = True
    return keep


def _select_local(s, alive, ratio, threshold, num_remove, min_channels):
    n = len(s)
    floor = min(min_channels, n)
    if ratio is not None:
        n_keep = max(floor, n - int(math.floor(ratio * n + 1e-9)))
    elif threshold is not None:
        n_keep = max(floor, int(np.sum(alive & (s >= threshold))))
    else:
        n_keep = max(floor, int(alive.sum()) - num_remove)
    flags = np.zeros(n, bool)
    flags[_order(s, alive)[:n_keep]] = True
    return flags


def _select_global(pool, alive, ratio, threshold, num_remove, min_channels):
    groups = list(pool)
    if not groups:
        return {}
    g_idx = np.concatenate([np.full(len(pool[g]), i) for i, g in enumerate(groups)])
    c_idx = np.concatenate([np.arange(len(pool[g])) for g in groups])
    s_all = np.concatenate([pool[g] for g in groups])
    a_all = np.concatenate([alive[g] for g in groups])
    order = np.lexsort((s_all, a_all))  # least important first: pruned, then low scores
    total = len(s_all)
    if ratio is not None:
        n_remove = int(math.floor(ratio * total + 1e-9))
    elif threshold is not None:
        n_remove = int(np.sum(~a_all | (s_all < threshold)))
    else:
        n_remove = int(np.sum(~a_all)) + num_remove
    left = np.array([len(pool[g]) for g in groups])
    floors = np.minimum(min_channels, left)
    keep = [np.ones(len(pool[g]), bool) for g in groups]
    removed = 0
    for i in order:
        if removed >= n_remove:
            break
        gi = g_idx[i]
        if left[gi] > floors[gi]:
            keep[gi][c_idx[i]] = False
            left[gi] -= 1
            removed += 1
    return dict(zip(groups, keep))
