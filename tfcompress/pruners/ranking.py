"""Which channels to keep, given one score array per group: local or global ranking,
a ratio / threshold / count of channels to remove, minimum channels, rounding.

`RankingOptions` holds every choice, validated once at construction; `select` applies
them. Pure NumPy: scores in, `{group: bool keep array}` out.
"""

import dataclasses
import math

import numpy as np

from tfcompress.numbers import check_count, check_ratio, is_int, is_number, plain

SCOPES = ("local", "global")
# The scope of a ranking given none (`RankingOptions(scope=None)`): each group on its own.
DEFAULT_SCOPE = "local"

# How the kept set is cut from the ranking (see `RankingOptions.rule`).
RULES = ("safe", "strict_quantile")


def check_scope(scope):
    """Raises naming `scope` unless it is one of `SCOPES`."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}. Received: scope={scope!r}")


# How scores of different groups are made comparable before a global ranking: each
# group's scores are divided by this statistic of them (`normalized`).
NORMALIZERS = {
    "none": None,
    "mean": lambda s: np.mean(np.abs(s)),
    "max": lambda s: np.max(np.abs(s)),
    "l2": np.linalg.norm,
}


def normalized(scores, normalize, alive=None):
    """`scores` (one group's) divided by their `normalize` statistic (`NORMALIZERS`; None:
    "none") over the channels still `alive` (bool flags; default all): channels pruned
    already are out of the layer, as in the references, which remove them (jacobgil's
    Taylor ranking normalises the filters a layer still has), so their scores do not
    count. With none alive, over all of them."""
    scores = np.asarray(scores, np.float64)
    statistic = NORMALIZERS[normalize or "none"]
    if statistic is None:
        return scores
    live = scores if alive is None or not np.any(alive) else scores[np.asarray(alive, bool)]
    return scores / max(float(statistic(live)), 1e-12)


@dataclasses.dataclass(frozen=True)
class RankingOptions:
    """How `select` turns scores into keep flags; validated once, here.

    At most one of `ratio`, `threshold`, `num_remove` is given; all three may be None
    at construction (a callback whose ratio comes from a schedule), and `select` then
    needs exactly one (`options.with_ratio(r)` fills the ratio in).

    Args:
        ratio: fraction in [0, 1) of channels to remove (per group, or of the pool).
        scope: "local" (each group on its own) or "global" (one ranking of all groups).
            None (default): none given, ranked as "local" (`DEFAULT_SCOPE`, filled in by
            `with_defaults`); kept apart from a "local" given, which a latency budget
            (`tfcompress.pruners.budgets`, always global) refuses.
        min_channels: never keep fewer channels in a group (or all, if it has fewer).
            `rule="safe"` only. None (default): the method's
            (`tfcompress.methods.Method.min_channels`), filled in by whoever knows the
            method with `tfcompress.methods.with_method_defaults` (`select` reads a
            leftover None as 1).
        round_to: round each group's kept count up to a multiple of this.
        threshold: remove channels scoring below it (after `normalize`).
        num_remove: remove this many more channels (per group, or from the pool).
        normalize: a key of `NORMALIZERS` applied to each group's scores, or None for
            "the method's default": whoever knows the method resolves it with
            `options.with_defaults(normalize=...)` (`select` reads None as "none").
        rule: how the cut is made.
            "safe" (default): remove exactly floor(ratio * N + 1e-9) channels, lowest
            first, never leaving a group below `min_channels`.
            "strict_quantile": Network Slimming's `vggprune.py`: sort the N scores of
            the pool (each group for "local"), take `thre = sorted[int(N * ratio)]` and
            keep the channels scoring strictly above `thre`. With distinct scores that
            removes floor(N * ratio) + 1 channels, and it may empty a group (which
            `strip` then refuses, naming the mask layer). Takes `ratio` only.
    """

    ratio: float = None
    _: dataclasses.KW_ONLY
    scope: str = None
    min_channels: int = None
    round_to: int = 1
    threshold: float = None
    num_remove: int = None
    normalize: str = None
    rule: str = "safe"

    def __post_init__(self):
        self._check()
        for name in ("ratio", "threshold", "num_remove", "min_channels", "round_to"):
            object.__setattr__(self, name, plain(getattr(self, name)))  # np.float32 -> float

    def _check(self):
        ratio, threshold, num_remove = self.ratio, self.threshold, self.num_remove
        given = [
            n
            for n, v in (("ratio", ratio), ("threshold", threshold), ("num_remove", num_remove))
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(
                "Give exactly one of ratio, threshold or num_remove. Received: "
                f"ratio={ratio!r}, threshold={threshold!r}, num_remove={num_remove!r}"
            )
        if ratio is not None:
            check_ratio("ratio", ratio)
        if threshold is not None and not is_number(threshold):
            raise ValueError(f"threshold must be a number. Received: threshold={threshold!r}")
        if num_remove is not None and (not is_int(num_remove) or num_remove < 0):
            raise ValueError(
                f"num_remove must be an integer >= 0. Received: num_remove={num_remove!r}"
            )
        if self.scope is not None:  # None: none given, DEFAULT_SCOPE
            check_scope(self.scope)
        if self.min_channels is not None:  # None: the method's
            check_count("min_channels", self.min_channels)
        check_count("round_to", self.round_to)
        if self.normalize is not None and self.normalize not in NORMALIZERS:
            raise ValueError(
                f"normalize must be one of {sorted(NORMALIZERS)}. "
                f"Received: normalize={self.normalize!r}"
            )
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}. Received: rule={self.rule!r}")
        if self.rule == "strict_quantile" and (threshold is not None or num_remove is not None):
            raise ValueError(
                "rule='strict_quantile' cuts at a ratio; it takes no threshold or num_remove. "
                f"Received: threshold={threshold!r}, num_remove={num_remove!r}"
            )
        if self.rule == "strict_quantile" and self.min_channels not in (None, 1):
            raise ValueError(
                "rule='strict_quantile' applies no channel floor (it may empty a group, as "
                "vggprune.py does); use rule='safe' for min_channels. Received: "
                f"min_channels={self.min_channels!r}"
            )

    def with_defaults(self, *, normalize=None, min_channels=None):
        """These options, with `scope` (`DEFAULT_SCOPE`), `normalize` and `min_channels`
        filled in where they were left None (`rule="strict_quantile"` applies no floor:
        its min_channels is 1)."""
        if self.rule == "strict_quantile":
            min_channels = 1
        return dataclasses.replace(
            self,
            scope=DEFAULT_SCOPE if self.scope is None else self.scope,
            normalize=normalize if self.normalize is None else self.normalize,
            min_channels=min_channels if self.min_channels is None else self.min_channels,
        )

    def with_ratio(self, ratio):
        """These options removing `ratio` (threshold / num_remove, if set, win: a
        schedule's ratio does not override an explicit count or threshold)."""
        if self.threshold is not None or self.num_remove is not None:
            return self
        return dataclasses.replace(self, ratio=ratio)

    def check_amount(self):
        """Raises unless exactly one of ratio, threshold, num_remove is set."""
        if self.ratio is None and self.threshold is None and self.num_remove is None:
            raise ValueError(
                "Give exactly one of ratio, threshold or num_remove. Received: "
                "ratio=None, threshold=None, num_remove=None"
            )


def round_up(n_keep, n, round_to):
    """`n_keep` rounded up to a multiple of `round_to`, at most `n`."""
    return min(n, round_to * math.ceil(n_keep / round_to)) if n_keep else 0


def keep_count(n, ratio, min_channels=1, round_to=1):
    """How many of `n` channels to keep when removing `ratio` of them (rule "safe")."""
    check_count("n", n)
    check_ratio("ratio", ratio)
    n_keep = max(min(min_channels, n), n - int(math.floor(ratio * n + 1e-9)))
    return round_up(n_keep, n, round_to)


def _order(scores, alive):
    """Channel indices, most important first: alive channels before pruned ones."""
    return np.lexsort((-np.asarray(scores, np.float64), ~alive))


def select(scores, options, *, alive=None):
    """Keep flags per group.

    Args:
        scores: `{group: np.ndarray}`, higher = more important; a group whose scores are
            all non-finite (e.g. slimming on a group without BatchNorm) is kept whole
            and left out of a global ranking.
        options: a `RankingOptions` with exactly one of ratio, threshold, num_remove.
        alive: optional `{group: bool}` of channels not pruned yet; pruned channels are
            removed first and counted in `ratio`, and stay removed: a ratio below the
            one reached removes nothing more and brings nothing back.

    Returns:
        `{group: bool np.ndarray}` (True = keep).
    """
    if not isinstance(options, RankingOptions):
        raise TypeError(
            f"options must be a tfcompress.pruners.ranking.RankingOptions. "
            f"Received: options={options!r}"
        )
    options.check_amount()
    options = options.with_defaults(min_channels=1)  # None scope: local; normalize: none
    iterative = alive is not None
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
            pool[g] = normalized(s, options.normalize, alive[g])
    if options.rule == "strict_quantile":
        keep.update(_select_strict_quantile(pool, alive, options.ratio, options.scope))
    elif options.scope == "local":
        for g, s in pool.items():
            keep[g] = _select_local(s, alive[g], options)
    else:
        keep.update(_select_global(pool, alive, options))
    for g in pool:  # rounding: add back the best removed channels
        n = len(keep[g])
        target = round_up(int(keep[g].sum()), n, options.round_to)
        if target > keep[g].sum():
            order = _order(pool[g], alive[g])
            keep[g] = np.zeros(n, bool)
            keep[g][order[:target]] = True
    if iterative:  # pruned channels stay pruned (rounding up may not bring them back)
        keep = {g: k & alive[g] for g, k in keep.items()}
    return keep


def _select_strict_quantile(pool, alive, ratio, scope):
    """vggprune.py's cut: keep `s > sorted(s)[int(N * ratio)]` (pruned channels first)."""

    def cut(parts):
        s_all = np.concatenate([np.where(alive[g], pool[g], -np.inf) for g in parts])
        if not len(s_all):
            return {}
        thre = np.sort(s_all)[int(len(s_all) * ratio)]
        return {g: alive[g] & (pool[g] > thre) for g in parts}

    if scope == "global":
        return cut(list(pool))
    keep = {}
    for g in pool:
        keep.update(cut([g]))
    return keep


def _select_local(s, alive, options):
    n = len(s)
    floor = min(options.min_channels, n)
    if options.ratio is not None:
        n_keep = max(floor, n - int(math.floor(options.ratio * n + 1e-9)))
    elif options.threshold is not None:
        n_keep = max(floor, int(np.sum(alive & (s >= options.threshold))))
    else:
        n_keep = max(floor, int(alive.sum()) - options.num_remove)
    flags = np.zeros(n, bool)
    flags[_order(s, alive)[:n_keep]] = True
    return flags


def _select_global(pool, alive, options):
    groups = list(pool)
    if not groups:
        return {}
    g_idx = np.concatenate([np.full(len(pool[g]), i) for i, g in enumerate(groups)])
    c_idx = np.concatenate([np.arange(len(pool[g])) for g in groups])
    s_all = np.concatenate([pool[g] for g in groups])
    a_all = np.concatenate([alive[g] for g in groups])
    order = np.lexsort((s_all, a_all))  # least important first: pruned, then low scores
    total = len(s_all)
    if options.ratio is not None:
        n_remove = int(math.floor(options.ratio * total + 1e-9))
    elif options.threshold is not None:
        n_remove = int(np.sum(~a_all | (s_all < options.threshold)))
    else:
        n_remove = int(np.sum(~a_all)) + options.num_remove
    left = np.array([len(pool[g]) for g in groups])
    floors = np.minimum(options.min_channels, left)
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
