"""Meeting a latency target as measured, not only as predicted: plan, strip, measure,
plan again.

A cost table predicts the whole model from its layers; a plan's uneven widths can run
slower (or faster) than predicted, more so at batch 1 (docs/latency.md). Here each round
plans for a working target, strips, and asks the caller's `measure` for the compact
model's latency as a fraction of the original's; the next round's working target is the
last one times target / measured. The channel scores are computed once, so each round
ranks the same channels. The plan that came closest to the target is left applied.

    from tfcompress.latency.measure import paired_ms

    def measure(compact):  # time both in turns, so that load hits them alike
        original_ms, compact_ms = paired_ms([model, compact], batch_size=1)
        return compact_ms / original_ms

    result = tfc.pruners.plan_to_measured_latency(masked, table, 0.5, measure)
    print(result.summary())
    compact = tfc.strip(masked)
"""

import dataclasses

import numpy as np

from tfcompress.numbers import check_count, is_number
from tfcompress.pruners.latency_budget import (
    LatencyBudget,
    UnreachableTarget,
    budget_from_scores,
    check_target,
    cut_groups,
    scored_groups,
)
from tfcompress.pruners.plan import apply_plan


@dataclasses.dataclass
class MeasuredBudget:
    """What `plan_to_measured_latency` chose.

    Attributes:
        budget: the `LatencyBudget` of the plan left applied (its `target_ms` is the
            working target it was planned for).
        target: the target, a fraction of the original's measured latency.
        measured: the applied plan's measured latency, a fraction of the original's.
        rounds: one `(working target, predicted, measured)` triple of fractions per round.
        floor: when a later round's working target was below what the table can reach,
            that floor (a fraction of the original's prediction); else None.
    """

    budget: LatencyBudget
    target: float
    measured: float
    rounds: list
    floor: float = None

    def summary(self):
        steps = "; ".join(f"planned for {w:.3f}, predicted {p:.3f}, measured {m:.3f}"
                          for w, p, m in self.rounds)
        text = (f"measured {self.measured:.3f} of the original for a target of "
                f"{self.target:.3f} ({self.measured / self.target:.2f} x) after "
                f"{len(self.rounds)} round(s): {steps}")
        if self.floor is not None:
            text += f"; then the working target fell below the predicted floor {self.floor:.3f}"
        return text


def plan_to_measured_latency(masked, cost_table, target_latency, measure, *, rounds=3,
                             tolerance=0.05, criterion=None, data=None, min_channels=None,
                             normalize=None, only=None):
    """Plans `masked`'s channels for `target_latency` and corrects the plan by measuring
    (applies the plan: the masks of `masked` change).

    Args:
        masked: a model from `tfcompress.wrap`.
        cost_table: its `tfcompress.latency.CostTable`.
        target_latency: the target, a fraction in (0, 1] of the original's latency.
        measure: `fn(compact) -> float`, the latency of a compact model
            (`tfcompress.strip(masked)`) as a fraction of the original model's.
        rounds: at most this many plans are measured (an integer >= 1).
        tolerance: stop once measured / target is within 1 +- tolerance (in (0, 1)).
        criterion, data, min_channels, normalize, only: as for `plan_for_latency`.

    Returns:
        A `MeasuredBudget`.

    Raises:
        ValueError: naming the bad argument; `UnreachableTarget` when even the first
            plan cannot be made.
    """
    from tfcompress.surgery import strip  # local: surgery imports the pruners

    check_target(target_latency, None)
    check_count("rounds", rounds)
    if not is_number(tolerance) or not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be a number in (0, 1). Received: tolerance={tolerance!r}")
    if not callable(measure):
        raise TypeError(
            "measure must be a function of the compact model returning its latency as a "
            f"fraction of the original's. Received: measure={measure!r}"
        )
    graph, sites, scores, min_channels, normalize = scored_groups(
        masked, cost_table, criterion, data, min_channels, normalize, "plan_to_measured_latency")
    cut = cut_groups(masked, sites, only)
    working, history, best, floor = float(target_latency), [], None, None
    for _ in range(rounds):
        try:
            budget = budget_from_scores(graph, sites, scores, cost_table,
                                        target_latency=working, min_channels=min_channels,
                                        normalize=normalize, cut=cut)
        except UnreachableTarget as e:
            if best is None:
                raise
            floor = e.floor_ms / best[1].original_ms  # asked for less than the table reaches
            break
        apply_plan(masked, budget.plan)
        measured = float(measure(strip(masked)))
        if not np.isfinite(measured) or measured <= 0:
            raise ValueError(
                f"measure returned {measured!r} for a compact model: a latency fraction > 0 "
                "was expected."
            )
        history.append((working, budget.predicted_ms / budget.original_ms, measured))
        miss = abs(measured / target_latency - 1)
        if best is None or miss < best[0]:
            best = (miss, budget, measured)
        if miss <= tolerance:
            break
        working = min(1.0, working * target_latency / measured)
    _, budget, measured = best
    apply_plan(masked, budget.plan)
    return MeasuredBudget(budget=budget, target=float(target_latency), measured=measured,
                          rounds=history, floor=floor)
