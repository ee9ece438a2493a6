"""A latency budget: which channels to keep so that a model's predicted latency (from a
`tfcompress.latency.CostTable`) meets a target, losing the least importance per
millisecond saved.

Every channel group keeps its best channels; its kept count moves in steps of the
table's `multiple` (the widths the kernels run well; the full width is always allowed).
From the full model, each step takes, among all groups and the next few allowed counts
down, the cut that loses the least importance (the sum of the normalised scores of the
channels it removes) per millisecond it saves, until the prediction meets the target.
Then channels are given back while the budget allows: first every count the table says
costs no more (a wider layer that runs as fast or faster: rounding up, to the cheaper
side), then the most importance per millisecond added.

    from tfcompress.latency import measure_cost_table
    from tfcompress.pruners.latency_budget import plan_for_latency

    table = measure_cost_table(model, batch_size=1)  # cached per machine and model
    masked = tfc.wrap(model)
    budget = plan_for_latency(masked, table, target_latency=0.5)
    tfc.apply_plan(masked, budget.plan)
    compact = tfc.strip(masked)
    print(budget.with_measured(compact, batch_size=1).summary())
"""

import collections.abc
import dataclasses

import numpy as np

from tfcompress import methods
from tfcompress.latency import CostTable, Predictor, model_ms
from tfcompress.numbers import check_count, is_number
from tfcompress.pruners.ranking import NORMALIZERS, normalized
from tfcompress.pruners.scores import alive_channels, plan_for, score_groups
from tfcompress.surgery.masks import mask_sites

# How many allowed counts below (above) a group's count one step looks at: a cut past a
# bump in the table (a count slower than the next one down) is seen.
LOOKAHEAD = 4


class UnreachableTarget(ValueError):
    """A latency target below the fastest prediction the cut can reach (`floor_ms`)."""

    def __init__(self, message, floor_ms):
        super().__init__(message)
        self.floor_ms = floor_ms


@dataclasses.dataclass
class LatencyBudget:
    """What `plan_for_latency` chose and what it predicts.

    Attributes:
        plan: the `PruningPlan` (apply it with `tfcompress.pruners.apply_plan`).
        kept: `{mask layer name: kept channels}`.
        target_ms, predicted_ms, original_ms: the target, the prediction for the plan and
            for the unpruned model (milliseconds per batch).
        measured_ms: the compact model's measured latency, if `with_measured` was called.
    """

    plan: object
    kept: dict
    target_ms: float
    predicted_ms: float
    original_ms: float
    measured_ms: float = None

    def with_measured(self, compact, batch_size, repeats=10, runtime="tf"):
        """This budget with `measured_ms` of `compact` (e.g. `tfcompress.strip(masked)`)
        on `runtime` (that of the table: "tf" or "tflite")."""
        return dataclasses.replace(
            self, measured_ms=model_ms(compact, batch_size, repeats, runtime=runtime))

    def summary(self):
        text = (
            f"predicted {self.predicted_ms:.3f} ms for a target of {self.target_ms:.3f} ms "
            f"({self.target_ms / self.original_ms:.3f} of the original {self.original_ms:.3f} ms)"
        )
        if self.measured_ms is not None:
            text += f"; measured {self.measured_ms:.3f} ms"
        return text


def check_target(target_latency, target_ms):
    """Raises naming the argument unless exactly one valid target is given."""
    if (target_latency is None) == (target_ms is None):
        raise ValueError(
            "Give exactly one of target_latency (a fraction of the original latency) or "
            f"target_ms (milliseconds). Received: target_latency={target_latency!r}, "
            f"target_ms={target_ms!r}"
        )
    if target_latency is not None and (
        not is_number(target_latency) or not 0 < target_latency <= 1
    ):
        raise ValueError(
            "target_latency must be a number in (0, 1], a fraction of the original "
            f"latency. Received: target_latency={target_latency!r}"
        )
    if target_ms is not None and (not is_number(target_ms) or target_ms <= 0):
        raise ValueError(f"target_ms must be a number > 0. Received: target_ms={target_ms!r}")


def allowed_counts(size, multiple, min_channels):
    """The kept counts a group of `size` channels may take: multiples of `multiple` from
    `min_channels` up, and `size`."""
    floor = min(min_channels, size)
    first = multiple * -(-floor // multiple)
    return sorted({*range(first, size, multiple), size})


def plan_for_latency(
    masked,
    cost_table,
    *,
    target_latency=None,
    target_ms=None,
    criterion=None,
    data=None,
    min_channels=None,
    normalize=None,
    only=None,
):
    """The channels to keep so that `masked`'s predicted latency meets the target
    (nothing is applied).

    Args:
        masked: a model from `tfcompress.wrap`.
        cost_table: a `tfcompress.latency.CostTable` of the model (measured at the batch
            the target is for, or written by hand).
        target_latency: the target as a fraction in (0, 1] of the original predicted
            latency (0.5 = twice as fast); or
        target_ms: the target in milliseconds per batch.
        criterion: the channel criterion (default: the wrapped method's
            `budget_criterion`, as for `ratio_for_compression`).
        data: batches for data-driven criteria (refused, naming it, for a criterion
            that reads none: `tfcompress.importance.reads_data`).
        min_channels: channels every group keeps at least (default: the method's); kept
            counts are then rounded up to the table's multiple.
        normalize: score normalisation making groups comparable (a key of
            `tfcompress.pruners.ranking.NORMALIZERS`; default: the method's for a global
            ranking).
        only: cut only the groups of these mask layers (names, the keys of a plan's
            `keep`, or a function `name -> bool`); every other group keeps its
            channels. Default: every group. E.g. `only=lambda n: "_expand_" in n`
            cuts only MobileNetV2's expanded channels, whose MACs fall in proportion to
            the channels (`benchmarks/inner_channels.py`).

    Returns:
        A `LatencyBudget`.

    Raises:
        ValueError: naming the bad argument; or when the target is below the latency of
            the narrowest allowed model (the floor is in the message).
    """
    check_target(target_latency, target_ms)
    graph, sites, scores, min_channels, normalize = scored_groups(
        masked, cost_table, criterion, data, min_channels, normalize, "plan_for_latency")
    return budget_from_scores(graph, sites, scores, cost_table, target_latency=target_latency,
                              target_ms=target_ms, min_channels=min_channels,
                              normalize=normalize, cut=cut_groups(masked, sites, only))


def predict_masked(masked, cost_table):
    """`(predicted ms, predicted ms unpruned)` of `masked` (a model from
    `tfcompress.wrap`) as its masks are now, from `cost_table`."""
    if not isinstance(cost_table, CostTable):
        raise TypeError(
            "cost_table must be a tfcompress.latency.CostTable. "
            f"Received: cost_table={cost_table!r}"
        )
    graph = methods.graph_of(masked)
    alive = alive_channels(graph, mask_sites(graph))
    orders = {g: np.argsort(~flags, kind="stable") for g, flags in alive.items()}  # kept first
    predictor = Predictor(graph, cost_table, orders)
    kept = {g: int(flags.sum()) for g, flags in alive.items()}
    return predictor.total_ms(kept), predictor.total_ms(predictor.full_counts())


def cut_groups(masked, sites, only):
    """The group indices `only` (see `plan_for_latency`) lets a budget cut: those with a
    mask layer it names (or accepts); None (every group) when `only` is None."""
    if only is None:
        return None
    names = [site.layer.name for site in sites]
    if callable(only):
        chosen = {name for name in names if only(name)}
    else:
        if isinstance(only, str) or not isinstance(only, collections.abc.Iterable):
            raise TypeError(
                "only must be mask layer names (a list, set, ...) or a function of a name. "
                f"Received: only={only!r}")
        chosen = set(only)
        unknown = sorted(chosen - set(names))
        if unknown:
            raise ValueError(
                f"only names layers that are not mask layers of model '{masked.name}': "
                f"{unknown}. Its mask layers are e.g. {names[:4]}.")
    groups = {site.group for site in sites if site.layer.name in chosen}
    if not groups:
        raise ValueError(
            f"only selects none of the {len(names)} mask layers of model '{masked.name}' "
            f"(e.g. {names[:4]}): nothing could be cut.")
    return groups


def scored_groups(masked, cost_table, criterion, data, min_channels, normalize, caller):
    """Checks `plan_for_latency`'s other arguments and scores `masked`'s channel groups:
    `(graph, sites, scores, min_channels, normalize)` with the method's defaults filled."""
    if not isinstance(cost_table, CostTable):
        raise TypeError(
            "cost_table must be a tfcompress.latency.CostTable. "
            f"Received: cost_table={cost_table!r}"
        )
    given = criterion
    record, criterion = methods.resolve(masked, None, criterion, caller=caller)
    if not record.structured:
        raise ValueError(
            f"A latency budget prunes channels; model '{masked.name}' was wrapped with "
            f"method={record.name!r}."
        )
    criterion = given or record.budget_criterion
    if min_channels is None:
        min_channels = record.min_channels
    check_count("min_channels", min_channels)
    if normalize is None:
        normalize = methods.default_normalize(criterion, "global")
    if normalize not in NORMALIZERS:
        raise ValueError(
            f"normalize must be one of {sorted(NORMALIZERS)}. Received: normalize={normalize!r}"
        )
    graph, sites, scores = score_groups(masked, method=criterion, data=data)
    return graph, sites, scores, min_channels, normalize


def budget_from_scores(graph, sites, scores, cost_table, *, target_latency=None, target_ms=None,
                       min_channels=1, normalize="none", alive=None, cut=None):
    """The `LatencyBudget` of scored groups (`tfcompress.pruners.scores.score_groups`):
    what `plan_for_latency` returns once the scores are known (arguments as there,
    checked there).

    `alive` (`{group: bool flags}`, `tfcompress.pruners.scores.alive_channels`): channels
    already pruned stay pruned; each group starts from (and never gives back past) the
    count it keeps. The target fraction is of the unpruned model's prediction. `cut`
    (group indices, `cut_groups`): only these groups change; None: every group.
    """
    orders, gain, start = {}, {}, {}
    for g, s in scores.items():
        if np.isfinite(s).any():
            flags = np.ones(len(s), bool) if alive is None or g not in alive else alive[g]
            s = normalized(s, normalize, flags)
            # the alive channels best first, then the pruned ones
            orders[g] = np.lexsort((-s, ~flags))
            gain[g] = np.concatenate([[0.0], np.cumsum(s[orders[g]])])  # gain[g][k]: top k
            start[g] = int(flags.sum())
    predictor = Predictor(graph, cost_table, orders)
    full = predictor.full_counts()
    original = predictor.total_ms(full)
    target = target_ms if target_ms is not None else target_latency * original
    allowed = {}
    for g, n in full.items():
        counts = [c for c in allowed_counts(n, cost_table.multiple, min_channels) if c < start[g]]
        allowed[g] = [*counts, start[g]] if cut is None or g in cut else [start[g]]
    k = _cut(predictor, start, allowed, gain, target)
    k = _give_back(predictor, k, allowed, gain, target)
    keep = {g: np.ones(graph.groups[g].size, bool) for g in scores}
    for g, n in k.items():
        keep[g] = np.zeros(graph.groups[g].size, bool)
        keep[g][orders[g][:n]] = True
    plan = plan_for(sites, keep)
    return LatencyBudget(
        plan=plan,
        kept={name: len(kept) for name, kept in plan.keep.items()},
        target_ms=float(target),
        predicted_ms=predictor.total_ms(k),
        original_ms=original,
    )


def _moves(predictor, k, allowed, gain, g, down):
    """`(importance change, latency change, count)` of moving group `g` to each of the
    next `LOOKAHEAD` allowed counts down (or up)."""
    counts = allowed[g]
    i = counts.index(k[g])
    targets = counts[max(0, i - LOOKAHEAD):i][::-1] if down else counts[i + 1:i + 1 + LOOKAHEAD]
    now = predictor.group_ms(g, k)
    return [
        (gain[g][c] - gain[g][k[g]], predictor.group_ms(g, {**k, g: c}) - now, c)
        for c in targets
    ]


def _cut(predictor, k, allowed, gain, target):
    """Cut the channels losing the least importance per millisecond saved until the
    prediction meets `target`."""
    k, total, moves = dict(k), predictor.total_ms(k), {}
    while total > target + 1e-9:
        for g in k:
            if g not in moves:
                moves[g] = _moves(predictor, k, allowed, gain, g, down=True)
        best = None
        for g, options in moves.items():
            for d_gain, d_ms, c in options:
                if d_ms < -1e-12:
                    key = (-d_gain / -d_ms, d_ms)  # importance lost per ms; then more saved
                    if best is None or key < best[0]:
                        best = (key, g, c)
        if best is None:
            raise UnreachableTarget(
                f"The latency target {target:.4g} ms is below what this model can reach: "
                f"no cut saves predicted time below {total:.4g} ms (the table's base "
                f"{predictor.table.base_ms:.4g} ms does not shrink, nor does a layer below "
                "its narrowest grid point).",
                floor_ms=total,
            )
        _, g, c = best
        k[g] = c
        total = predictor.total_ms(k)
        moves.pop(g)
        for i in predictor.layers_of_group[g]:  # groups sharing a layer with g
            for other in list(moves):
                if i in predictor.layers_of_group[other]:
                    moves.pop(other)
    return k


def _give_back(predictor, k, allowed, gain, target):
    """Add channels back while the prediction stays within `target`: first moves that
    cost nothing (or save time), the most importance first; then the most importance
    per millisecond."""
    k, total = dict(k), predictor.total_ms(k)
    while True:
        best = None
        for g in k:
            for d_gain, d_ms, c in _moves(predictor, k, allowed, gain, g, down=False):
                if total + d_ms > target + 1e-9:
                    continue
                key = (0, -d_gain, d_ms) if d_ms <= 1e-12 else (1, -d_gain / d_ms, d_ms)
                if best is None or key < best[0]:
                    best = (key, g, c)
        if best is None:
            return k
        _, g, c = best
        k[g] = c
        total = predictor.total_ms(k)
