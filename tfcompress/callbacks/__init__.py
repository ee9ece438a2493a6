"""Keras callbacks that drive pruning schedules and masks inside an ordinary `fit`.

    StructuredPruning  channel pruning by the wrapped method's criterion on a schedule
    MagnitudePruning   Han et al.'s element-wise masks (a ratio or quality * std)
    SoftTopK           ACoSP's annealed soft top-k masks, hardened at ending_epoch
    PruningSummaries   kept channels and sparsity to TensorBoard and the fit logs
    StepLog            a log line (and TensorBoard scalars) every N steps of a fit

All state (masks, scores, temperatures) lives in model variables and the schedule step is
the optimizer's `iterations`, so `keras.callbacks.BackupAndRestore` and weight checkpoints
resume a run mid-schedule. A scheduled callback whose fit starts at step 0 on a model
whose masks already prune (a weights file loaded before the optimizer was built) warns,
`ScheduleRestartWarning`; one whose fit applies none of its schedule's events (all
before the fit's first step and never applied, or all after its last) warns at the end,
`ScheduleSkippedWarning`, as does a `SoftTopK` fit that ends before `ending_epoch` (the
masks still soft).
"""

from tfcompress.callbacks._warnings import ScheduleRestartWarning, ScheduleSkippedWarning
from tfcompress.callbacks.magnitude import MagnitudePruning
from tfcompress.callbacks.soft_topk import SoftTopK
from tfcompress.callbacks.step_log import StepLog
from tfcompress.callbacks.structured import StructuredPruning
from tfcompress.callbacks.summaries import PruningSummaries

__all__ = [
    "MagnitudePruning",
    "PruningSummaries",
    "ScheduleRestartWarning",
    "ScheduleSkippedWarning",
    "SoftTopK",
    "StepLog",
    "StructuredPruning",
]
