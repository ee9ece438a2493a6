"""Training library behind the scripts: configs in, one call, results out.

    from tfcompress import training
    config = training.TrainConfig(
        model=training.ModelConfig("lenet5", num_classes=10),
        train_data="data/fmnist/train-*.tfrecord", checkpoint="runs/lenet5", epochs=2)
    training.train(config)

Modules: `config` (dataclasses), `devices` (GPU, logical CPUs, precision, strategy),
`inputs` (data checks and pipelines), `tasks` (losses and metrics per task), `lr` (poly
policy), `loop` (the distributed step loop), `methods` (per-method schedules and
callbacks), `runs` (run directory, checkpoints: damaged vs foreign), `paths` (every path
checked before a run starts), `weights` (build, initialize, load),
`evaluation`, and the entry points (`train_lib`, `compress_lib`, `deep_compress_lib`,
`evaluate_lib`, `export_lib`).
"""

from tfcompress.training.compress_lib import compress
from tfcompress.training.config import (
    CompressConfig,
    DeviceConfig,
    EvalConfig,
    ExportConfig,
    ModelConfig,
    PruneConfig,
    TrainConfig,
)
from tfcompress.training.deep_compress_lib import DeepCompressionConfig, deep_compress
from tfcompress.training.evaluate_lib import evaluate
from tfcompress.training.export_lib import export
from tfcompress.training.lr import PolyLR, StepLR
from tfcompress.training.train_lib import train

__all__ = [
    "CompressConfig",
    "DeepCompressionConfig",
    "DeviceConfig",
    "EvalConfig",
    "ExportConfig",
    "ModelConfig",
    "PolyLR",
    "PruneConfig",
    "StepLR",
    "TrainConfig",
    "compress",
    "deep_compress",
    "evaluate",
    "export",
    "train",
]
