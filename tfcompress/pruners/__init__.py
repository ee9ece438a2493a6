"""Pruners: decide which channels to keep (a plan, plain data) and set the masks."""

from tfcompress.pruners.batchnorm import recalibrate_bn
from tfcompress.pruners.budget import compact_params, ratio_for_compression
from tfcompress.pruners.latency_budget import (
    LatencyBudget,
    UnreachableTarget,
    plan_for_latency,
    predict_masked,
)
from tfcompress.pruners.latency_refine import MeasuredBudget, plan_to_measured_latency
from tfcompress.pruners.plan import PruningPlan, apply_plan, plan_from_masks
from tfcompress.pruners.prune import prune
from tfcompress.pruners.ranking import RankingOptions, keep_count, select
from tfcompress.pruners.scores import score_groups
from tfcompress.pruners.stats import mask_stats
from tfcompress.pruners.weights import prune_weights

__all__ = [
    "LatencyBudget",
    "MeasuredBudget",
    "PruningPlan",
    "RankingOptions",
    "apply_plan",
    "compact_params",
    "keep_count",
    "mask_stats",
    "plan_for_latency",
    "plan_from_masks",
    "plan_to_measured_latency",
    "predict_masked",
    "prune",
    "prune_weights",
    "ratio_for_compression",
    "recalibrate_bn",
    "score_groups",
    "select",
    "UnreachableTarget",
]
