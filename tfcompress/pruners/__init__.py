"""Pruners: decide which channels to keep (a plan, plain data) and set the masks."""

from tfcompress.pruners.plan import PruningPlan, apply_plan, plan_from_masks
from tfcompress.pruners.prune import prune, select_channels

__all__ = ["PruningPlan", "apply_plan", "plan_from_masks", "prune", "select_channels"]
