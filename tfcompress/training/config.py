"""Run configurations: frozen dataclasses, validated at construction (no TensorFlow here).

The scripts in `tfcompress.scripts` build these from flags; the library functions
(`tfcompress.training.train`, `compress`, `evaluate`, `export`) take them and never read
flags. Every check names the bad value, e.g. `batch_size must be ... Received: batch_size=0`.
"""

import dataclasses
import math
import numbers

from tfcompress.methods import COMPRESSION_TARGETS, NORMALIZE, SCOPES
from tfcompress.names import check_name
from tfcompress.numbers import check_flag
from tfcompress.pruners.ranking import RULES as RANKING_RULES
from tfcompress.pruners.weights import check_quality_scope
from tfcompress.schedules import ACoSPTemperature
from tfcompress.training.lr import check_step_policy

STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("iterative", "polynomial")
# `--scope`, `--ranking_rule`, `--normalize` and `--compression_target` (the default is
# per method) take the vocabularies of tfcompress.pruners.ranking and tfcompress.methods.
# soft_topk: how the temperature follows the epochs (`ACoSPTemperature(update=)`).
TEMPERATURE_UPDATES = ACoSPTemperature.UPDATES
FORMATS = ("saved_model", "tflite", "keras", "report")
# `evaluate --prune_ratios`: the criteria a one-shot sweep can rank by without data.
SWEEP_CRITERIA = ("l1_filter", "slimming", "magnitude")
QUANTIZATIONS = ("none", "dynamic", "int8")
# SGD weight decay: "coupled" adds wd * w to the gradient before momentum (the seeds:
# PyTorch, Caffe, TF1), "decoupled" is Keras's w -= lr * wd * w. The one default.
WEIGHT_DECAY_MODES = ("coupled", "decoupled")
DEFAULT_WEIGHT_DECAY_MODE = "coupled"
NORMALIZATIONS = NORMALIZE  # score normalisation of a ranking
# The fields of `PruneConfig` read only with compression_target="latency", and defaults.
LATENCY_DEFAULTS = {
    "latency_batch_size": 1, "latency_runtime": "tf", "latency_fold_batchnorm": False,
    "latency_only": (),
}  # fmt: skip


def _int(name, value, minimum=0, optional=False):
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")


def _number(name, value, low=None, high=None, low_open=False, optional=False):
    if optional and value is None:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high
    if not ok:
        if low is not None and high is not None:
            bounds = f" in {'(' if low_open else '['}{low}, {high})"
        elif low is not None:
            bounds = f" > {low}" if low_open else f" >= {low}"
        else:
            bounds = "" if high is None else f" < {high}"
        raise ValueError(f"{name} must be a number{bounds}. Received: {name}={value!r}")


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}. Received: {name}={value!r}")


def _bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool. Received: {name}={value!r}")


def _text(name, value, optional=False):
    if optional and value is None:
        return
    check_name(name, value)


def check_run_fields(config):
    """The checks of the fields every training run's config shares (`TrainConfig` and
    `deep_compress_lib.DeepCompressionConfig`): model, devices, data and checkpoint paths,
    batch and steps, the SGD + poly schedule, seed and input options. `test_data` is the
    caller's to check (optional for training, required where every stage is measured)."""
    if not isinstance(config.model, ModelConfig):
        raise TypeError(f"model must be a ModelConfig. Received: model={config.model!r}")
    if not isinstance(config.devices, DeviceConfig):
        raise TypeError(f"devices must be a DeviceConfig. Received: devices={config.devices!r}")
    _text("train_data", config.train_data)
    _text("checkpoint", config.checkpoint)
    _text("initialize", config.initialize, optional=True)
    _int("batch_size", config.batch_size, minimum=1)
    _int("steps_per_epoch", config.steps_per_epoch, minimum=1, optional=True)
    _int("eval_batches", config.eval_batches, minimum=1, optional=True)
    _number("learning_rate", config.learning_rate, low=0, low_open=True)
    _number("power", config.power, low=0)
    _number("momentum", config.momentum, low=0, high=1)
    _number("weight_decay", config.weight_decay, low=0)
    _choice("weight_decay_mode", config.weight_decay_mode, WEIGHT_DECAY_MODES)
    _int("seed", config.seed)
    _bool("cache_data", config.cache_data)
    _bool("skip_corrupt", config.skip_corrupt)


def _check_steps_policy(boundaries, values):
    """Raises naming the fields unless `boundaries` (epochs) and `values` make a step
    learning-rate policy (`TrainConfig.lr_boundaries`), or are both empty."""
    if not isinstance(boundaries, tuple) or not isinstance(values, tuple):
        raise TypeError(
            "lr_boundaries and lr_values must be tuples. Received: "
            f"lr_boundaries={boundaries!r}, lr_values={values!r}"
        )
    if boundaries or values:
        check_step_policy(boundaries, values, "epochs", ("lr_boundaries", "lr_values"))


@dataclasses.dataclass(frozen=True)
class DeviceConfig:
    """Where and how the run computes.

    gpu_id: GPU(s) to use, e.g. "0" or "0,1" (sets CUDA_VISIBLE_DEVICES before TensorFlow
        starts); None leaves the environment alone.
    strategy: "default" (one device), "mirrored" (all local GPUs, or the logical CPUs of
        `num_cpu_devices`) or "multi_worker" (MultiWorkerMirroredStrategy from TF_CONFIG).
    num_cpu_devices: split the CPU into this many logical devices (0: leave as is).
    precision: "float32", "mixed_float16" or "mixed_bfloat16" (Keras dtype policy).
    jit_compile: XLA-compile the train and eval steps.
    """

    gpu_id: str | None = None
    strategy: str = "default"
    num_cpu_devices: int = 0
    precision: str = "float32"
    jit_compile: bool = False

    def __post_init__(self):
        _text("gpu_id", self.gpu_id, optional=True)
        _choice("strategy", self.strategy, STRATEGIES)
        _int("num_cpu_devices", self.num_cpu_devices)
        if self.num_cpu_devices > 1 and self.strategy == "default":
            raise ValueError(
                f"num_cpu_devices={self.num_cpu_devices} splits the CPU for strategy "
                "'mirrored' to train on; strategy 'default' would run on one of them. Give "
                "--strategy=mirrored, or leave num_cpu_devices out. Received: "
                f"strategy='default', num_cpu_devices={self.num_cpu_devices}")
        _choice("precision", self.precision, PRECISIONS)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network: `tfcompress.models.build(name, num_classes, (height, width, C))`.

    height, width: input size (None: the first record's size); C comes from the data.
    width_multiplier: the builders' channel multiplier (`width=` in `models.build`).
    options: model-specific builder options, as `((key, value), ...)`.
    """

    name: str
    num_classes: int
    height: int | None = None
    width: int | None = None
    width_multiplier: float = 1.0
    options: tuple = ()

    def __post_init__(self):
        _text("model", self.name)
        _int("num_classes", self.num_classes, minimum=1)
        _int("height", self.height, minimum=1, optional=True)
        _int("width", self.width, minimum=1, optional=True)
        _number("width_multiplier", self.width_multiplier, low=0, low_open=True)
        if not all(isinstance(kv, tuple) and len(kv) == 2 for kv in self.options):
            raise ValueError(
                f"options must be ((key, value), ...) pairs. Received: options={self.options!r}"
            )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run (also the training part of `CompressConfig`).

    checkpoint: the run directory: checkpoints, run.json, TensorBoard logs, final.keras.
        A run restarted with the same command resumes from its latest checkpoint.
    initialize: weights to start from (a run directory, `.keras` or `.weights.h5` file of
        the same architecture); ignored when `checkpoint` already holds a checkpoint.
    batch_size: the global batch (split evenly over the replicas).
    max_iteration / epochs: length of the run in steps, or in epochs (exactly one).
    steps_per_epoch: steps that make an epoch (None: examples in train_data // batch_size).
    learning_rate, power: the poly policy `learning_rate * (1 - step / max_iteration)^power`.
    lr_boundaries, lr_values: the step policy instead (`tfcompress.training.StepLR`):
        `lr_values[i]` from epoch `lr_boundaries[i - 1]` on, `lr_values[0]` before
        (network slimming's `main.py`: 0.1, x0.1 at 50 % and 75 % of the epochs); both
        empty (default) for the poly policy, which `learning_rate` and `power` set.
    weight_decay_mode: "coupled" (wd * w added to the gradient before momentum, as the
        seeds' PyTorch / Caffe / TF1 SGD) or "decoupled" (Keras: w -= lr * wd * w).
    skip_step: log (console and TensorBoard) every this many steps.
    save_step: checkpoint every this many steps (and at the end).
    eval_step: evaluate on test_data every this many steps (0: at the end only).
    eval_batches: evaluate on at most this many test batches (None: all).
    cache_data: keep the decoded training examples in memory after the first epoch
        (`build_dataset(cache=True)`; for data that fits in RAM).
    skip_corrupt: skip records that fail to read or validate (counted; the count and the
        first of them are logged at the end and kept in result.json) instead of stopping
        at the first one. A restart may turn it on to get past a bad record.
    """

    model: ModelConfig
    train_data: str
    checkpoint: str
    test_data: str | None = None
    initialize: str | None = None
    batch_size: int = 32
    max_iteration: int | None = None
    epochs: float | None = None
    steps_per_epoch: int | None = None
    learning_rate: float = 0.01
    power: float = 0.9
    lr_boundaries: tuple = ()
    lr_values: tuple = ()
    momentum: float = 0.9
    weight_decay: float = 1e-4
    weight_decay_mode: str = DEFAULT_WEIGHT_DECAY_MODE
    skip_step: int = 10
    save_step: int = 500
    eval_step: int = 0
    eval_batches: int | None = None
    keep_checkpoints: int = 3
    seed: int = 0
    progress: bool = True
    cache_data: bool = False
    skip_corrupt: bool = False
    devices: DeviceConfig = DeviceConfig()

    def __post_init__(self):
        check_run_fields(self)
        _text("test_data", self.test_data, optional=True)
        if (self.max_iteration is None) == (self.epochs is None):
            raise ValueError(
                "Give exactly one of max_iteration (steps) or epochs. Received: "
                f"max_iteration={self.max_iteration!r}, epochs={self.epochs!r}"
            )
        _int("max_iteration", self.max_iteration, minimum=1, optional=True)
        _number("epochs", self.epochs, low=0, low_open=True, optional=True)
        _int("skip_step", self.skip_step, minimum=1)
        _int("save_step", self.save_step, minimum=1)
        _int("eval_step", self.eval_step)
        _int("keep_checkpoints", self.keep_checkpoints, minimum=1)
        _check_steps_policy(self.lr_boundaries, self.lr_values)

    def total_steps(self, steps_per_epoch):
        """`max_iteration`, or `epochs` converted with `steps_per_epoch`."""
        if self.max_iteration is not None:
            return self.max_iteration
        return max(1, int(round(self.epochs * steps_per_epoch)))


@dataclasses.dataclass(frozen=True)
class PruneConfig:
    """How `compress` prunes. Times are in epochs (floats; an epoch is `steps_per_epoch`
    steps) and become steps of the single training run.

    method: one of `tfcompress.METHODS`.
    ratio: fraction of channels (of weights, for "magnitude") to remove; the seeds call it
        `percent` (slimming) and `final_sparsity` (soft top-k).
    compression: instead of `ratio`, a compression factor N (2, 4, 8, 16 ...), read as
        `compression_target` says.
    compression_target: "channels": ratio = 1 - 1/N of the channels (with a local scope
        every group keeps max(ceil(C/N), min_channels) of its C: ACoSP-N; magnitude: 1 - 1/N
        of the weights); "params": the channel ratio whose compact model has 1/N of the
        parameters, searched on the wrapped model when pruning starts. None: the method's
        default (`tfcompress.training.methods.METHODS[method].compression_target`:
        channels for soft_topk, params for the other structured methods); "latency":
        1/N of the latency predicted by a cost table of the model measured on this
        machine before pruning (`tfcompress.latency.measure_cost_table`, cached per
        machine and model; kept in run.json, so a resumed run prunes to the same table),
        each pruning step keeping what `tfcompress.pruners.plan_for_latency` would
        (methods pruned by `StructuredPruning`: l1_filter, taylor, slimming).
    latency_batch_size, latency_runtime, latency_fold_batchnorm: compression_target
        "latency" only: the serving batch, runtime ("tf": a SavedModel's function;
        "tflite": LiteRT with XNNPACK) and BatchNorm folding
        (`tfcompress.export.saved_model(..., fold_batchnorm=True)`) the latency is
        measured for; deploy the compact model the same way.
    latency_only: compression_target "latency" only: cut only the channel groups whose
        mask layer name contains one of these texts (e.g. ("_expand_",): MobileNetV2's
        expanded channels); empty: every group.
    starting_epoch, ending_epoch: pruning starts and ends (equal: one-shot). For slimming
        the epochs before `starting_epoch` are sparsity training (L1 penalty `s` on BN
        scales); for soft top-k the temperature anneals from one to the other.
    prune_every: epochs between two pruning steps of an iterative schedule.
    schedule: "iterative" (equal ratio steps) or "polynomial" (Zhu & Gupta).
    scope: "local" (ratio per group; per layer for magnitude) or "global" (one ranking);
        None: the method's default.
    normalize: how each group's scores are scaled before ranking ("none", "mean", "max",
        "l2": s / ||s||, the AdapNet++ Taylor recipe); None: the method's default.
    ranking_rule: how the ratio becomes a cut (`tfcompress.pruners.ranking.RankingOptions`):
        "safe" removes floor(ratio * N) channels and never empties a layer;
        "strict_quantile" is Network Slimming's vggprune.py (keep the scores strictly above
        the sorted score at index int(N * ratio); may empty a layer, which strip refuses).
    s: slimming's L1 penalty on BatchNorm scales.
    quality: magnitude only: Han's threshold `quality * std(w)` instead of `ratio`.
    taylor_aggregation: taylor only: how the products a * dL/da become a score (a key of
        `tfcompress.layers.taylor_mask.AGGREGATIONS`; `wrap(..., aggregation=)`); None:
        the TaylorMask default, "sum_then_abs" (jacobgil/pytorch-pruning).
    exclude: names of layers to leave unpruned.
    min_channels: channels every group keeps at least; None: the method's (8 for
        soft_topk, ACoSP's `min_remaining_elements`; 1 for the others).
    temperature_update: soft_topk: "continuous" (the temperature moves every step) or
        "epoch_end" (ACoSP: set once per epoch, after it; epoch e trains at T(e - 1);
        needs whole starting and ending epochs).
    """

    method: str
    ratio: float | None = None
    compression: float | None = None
    compression_target: str | None = None
    starting_epoch: float = 0.0
    ending_epoch: float | None = None
    prune_every: float = 1.0
    schedule: str = "iterative"
    scope: str | None = None
    normalize: str | None = None
    min_channels: int | None = None
    round_to: int = 1
    ranking_rule: str = "safe"
    s: float = 1e-4
    quality: float | None = None
    taylor_aggregation: str | None = None
    exclude: tuple = ()
    temperature_update: str = "continuous"
    latency_batch_size: int = LATENCY_DEFAULTS["latency_batch_size"]
    latency_runtime: str = LATENCY_DEFAULTS["latency_runtime"]
    latency_fold_batchnorm: bool = LATENCY_DEFAULTS["latency_fold_batchnorm"]
    latency_only: tuple = LATENCY_DEFAULTS["latency_only"]

    def __post_init__(self):
        from tfcompress.training import methods  # the table of known methods

        _choice("method", self.method, tuple(methods.METHODS))
        targets = [n for n in ("ratio", "compression", "quality") if getattr(self, n) is not None]
        if len(targets) != 1:
            raise ValueError(
                "Give exactly one pruning target: ratio (alias percent, final_sparsity), "
                f"compression or quality. Received: ratio={self.ratio!r}, "
                f"compression={self.compression!r}, quality={self.quality!r}"
            )
        _number("ratio", self.ratio, low=0, high=1, optional=True)
        _number("compression", self.compression, low=1, low_open=True, optional=True)
        if self.compression_target is not None:
            _choice("compression_target", self.compression_target, COMPRESSION_TARGETS)
        _number("quality", self.quality, low=0, optional=True)
        if self.quality is not None and self.method != "magnitude":
            raise ValueError(
                f"quality is Han's magnitude threshold; method {self.method!r} takes ratio or "
                f"compression. Received: quality={self.quality!r}"
            )
        if self.quality is not None and self.scope is not None:
            check_quality_scope(self.quality, self.scope)  # before any step, not at the callback
        _number("starting_epoch", self.starting_epoch, low=0)
        _number("ending_epoch", self.ending_epoch, low=0, optional=True)
        if self.ending_epoch is not None and self.ending_epoch < self.starting_epoch:
            raise ValueError(
                "ending_epoch must be at or after starting_epoch. Received: "
                f"starting_epoch={self.starting_epoch}, ending_epoch={self.ending_epoch}"
            )
        _number("prune_every", self.prune_every, low=0, low_open=True)
        _choice("schedule", self.schedule, SCHEDULES)
        if self.scope is not None:
            _choice("scope", self.scope, SCOPES)
        if self.normalize is not None:
            _choice("normalize", self.normalize, NORMALIZATIONS)
        if self.taylor_aggregation is not None:
            from tfcompress.layers.taylor_mask import AGGREGATIONS

            if self.method != "taylor":
                raise ValueError(
                    f"taylor_aggregation is an option of method 'taylor', not {self.method!r}. "
                    f"Received: taylor_aggregation={self.taylor_aggregation!r}"
                )
            _choice("taylor_aggregation", self.taylor_aggregation, tuple(sorted(AGGREGATIONS)))
        _int("min_channels", self.min_channels, minimum=1, optional=True)
        _int("round_to", self.round_to, minimum=1)
        _choice("ranking_rule", self.ranking_rule, RANKING_RULES)
        if self.ranking_rule != "safe" and self.method in ("magnitude", "soft_topk"):
            raise ValueError(
                f"ranking_rule={self.ranking_rule!r} cuts a channel ranking; method "
                f"{self.method!r} has none. Received: method={self.method!r}"
            )
        _number("s", self.s, low=0, low_open=True)
        # settings a method never reads: refused, not recorded and ignored (soft_topk's
        # --scope is left alone: flagfiles shared by every method, the demo's, set it)
        unread = {"magnitude": ("normalize", "min_channels", "round_to")}.get(self.method, ())
        unread += ("s",) if self.method != "slimming" else ()  # the slimming penalty
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        given = {k: getattr(self, k) for k in unread if getattr(self, k) != defaults[k]}
        if given:
            raise ValueError(
                f"method {self.method!r} does not read {sorted(given)}: leave them out. "
                "Received: " + ", ".join(f"{k}={v!r}" for k, v in sorted(given.items()))
            )
        _choice("temperature_update", self.temperature_update, TEMPERATURE_UPDATES)
        if self.temperature_update != "continuous" and self.method != "soft_topk":
            raise ValueError(
                f"temperature_update is soft_topk's; method {self.method!r} has no "
                f"temperature. Received: temperature_update={self.temperature_update!r}"
            )
        epochs = (self.starting_epoch, self.end_epoch)
        if self.temperature_update == "epoch_end" and any(e != int(e) for e in epochs):
            raise ValueError(
                "temperature_update='epoch_end' sets the temperature once per epoch: "
                "starting_epoch and ending_epoch must be whole epochs. Received: "
                f"starting_epoch={self.starting_epoch}, ending_epoch={self.ending_epoch}"
            )
        if not all(isinstance(n, str) for n in self.exclude):
            raise ValueError(f"exclude must hold layer names. Received: exclude={self.exclude!r}")
        self._check_latency()

    def _check_latency(self):
        """A latency target: with compression, a StructuredPruning method and no rounding
        of its own; the latency fields only with it."""
        from tfcompress.callbacks import StructuredPruning
        from tfcompress.latency.runtimes import RUNTIMES
        from tfcompress.training import methods

        _int("latency_batch_size", self.latency_batch_size, minimum=1)
        _choice("latency_runtime", self.latency_runtime, RUNTIMES)
        check_flag("latency_fold_batchnorm", self.latency_fold_batchnorm)
        if not isinstance(self.latency_only, tuple) or not all(
                isinstance(t, str) and t for t in self.latency_only):
            raise ValueError("latency_only must be a tuple of non-empty texts (parts of mask "
                             f"layer names). Received: latency_only={self.latency_only!r}")
        target = self.compression_target or methods.METHODS[self.method].compression_target
        if target != "latency":
            given = {n: getattr(self, n) for n, default in LATENCY_DEFAULTS.items()
                     if getattr(self, n) != default}
            if given:
                raise ValueError(
                    f"{', '.join(given)}: read only with compression_target='latency'. "
                    f"Received: compression_target={self.compression_target!r}, "
                    + ", ".join(f"{n}={v!r}" for n, v in given.items()))
            return
        if self.compression is None:
            raise ValueError(
                "compression_target='latency' reads compression=N (1/N of the predicted "
                f"latency). Received: compression=None, ratio={self.ratio!r}")
        if methods.METHODS[self.method].record.callback is not StructuredPruning:
            raise ValueError(
                "compression_target='latency' prunes channels with StructuredPruning "
                "(methods l1_filter, taylor, slimming); method "
                f"{self.method!r} cannot. Received: method={self.method!r}")
        if self.round_to != 1:
            raise ValueError(
                "compression_target='latency' keeps multiples of the cost table's multiple "
                f"(8); it cannot be combined with round_to={self.round_to!r}.")
        wrong = {"scope": self.scope} if self.scope == "local" else {}
        if self.ranking_rule != "safe":
            wrong["ranking_rule"] = self.ranking_rule
        if wrong:  # named alone: the one the command set
            raise ValueError(
                "compression_target='latency' ranks all groups together, cutting where the "
                "least importance is lost per millisecond; it cannot be combined with "
                + " or ".join(f"{k}={v!r}" for k, v in wrong.items()) + ".")

    @property
    def end_epoch(self):
        return self.starting_epoch if self.ending_epoch is None else self.ending_epoch


@dataclasses.dataclass(frozen=True)
class CompressConfig:
    """`compress`: wrap -> prune on a schedule while training -> strip (one run).

    The training part (`train`) usually starts from a trained model (`initialize`)."""

    train: TrainConfig
    prune: PruneConfig

    def __post_init__(self):
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig. Received: train={self.train!r}")
        if not isinstance(self.prune, PruneConfig):
            raise TypeError(f"prune must be a PruneConfig. Received: prune={self.prune!r}")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """`evaluate`: a run directory or `.keras` file on `test_data`.

    model, num_classes, height, width: optional expectations, checked against the
        checkpoint (a mismatch raises naming both values).

    prune_ratios: also prune the model one-shot at each ratio with `method`'s criterion
        (no fine-tuning) and evaluate every pruned model (a sensitivity sweep).
    recalibrate_data: TFRecords whose images (labels unused) re-estimate the BatchNorm
        statistics of each pruned model of the sweep, over `recalibrate_batches` batches.
    skip_corrupt: skip (and count, in the result) records that fail to read or validate
        instead of stopping at the first one.
    """

    checkpoint: str
    test_data: str
    batch_size: int = 100
    eval_batches: int | None = None
    model: str | None = None
    num_classes: int | None = None
    height: int | None = None
    width: int | None = None
    prune_ratios: tuple = ()
    method: str = "l1_filter"
    recalibrate_data: str | None = None
    recalibrate_batches: int = 20
    output: str | None = None
    skip_corrupt: bool = False
    devices: DeviceConfig = DeviceConfig()

    def __post_init__(self):
        _text("checkpoint", self.checkpoint)
        _text("test_data", self.test_data)
        _int("batch_size", self.batch_size, minimum=1)
        _int("eval_batches", self.eval_batches, minimum=1, optional=True)
        _text("model", self.model, optional=True)
        _int("num_classes", self.num_classes, minimum=1, optional=True)
        _int("height", self.height, minimum=1, optional=True)
        _int("width", self.width, minimum=1, optional=True)
        for r in self.prune_ratios:
            _number("prune_ratios", r, low=0, high=1)
        if self.method not in SWEEP_CRITERIA:  # before the baseline is evaluated
            raise ValueError(
                f"A pruning sweep ranks with a data-free criterion: method must be one of "
                f"{list(SWEEP_CRITERIA)}. Received: method={self.method!r}"
            )
        _text("recalibrate_data", self.recalibrate_data, optional=True)
        _int("recalibrate_batches", self.recalibrate_batches, minimum=1)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        given = {
            k: getattr(self, k)
            for k in ("method", "recalibrate_data", "recalibrate_batches")  # the sweep's
            if getattr(self, k) != defaults[k]
        }
        if given and not self.prune_ratios:
            raise ValueError(
                f"{sorted(given)} apply to the pruning sweep only, which prune_ratios asks "
                f"for; none was given. Received: "
                + ", ".join(f"{k}={v!r}" for k, v in sorted(given.items()))
            )
        _text("output", self.output, optional=True)
        _bool("skip_corrupt", self.skip_corrupt)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """`export`: a run directory or `.keras` file -> SavedModel, TFLite, `.keras`, report.

    calibration_data: TFRecords for int8 calibration and the TFLite check batch.
    fold_batchnorm: fold the BatchNorms that directly follow a Conv / Dense layer into it
        (`tfcompress.export.fold_batchnorm`) in the SavedModel, TFLite and `.keras`
        files; the report counts the model as trained.
    """

    checkpoint: str
    output_dir: str
    formats: tuple = FORMATS
    quantization: str = "none"
    calibration_data: str | None = None
    calibration_batches: int = 4
    signature_name: str = "serving_default"
    gpu_id: str | None = None
    fold_batchnorm: bool = False

    def __post_init__(self):
        _text("checkpoint", self.checkpoint)
        _text("output_dir", self.output_dir)
        if not self.formats:
            raise ValueError(f"formats must name at least one of {list(FORMATS)}. Received: ()")
        for f in self.formats:
            _choice("formats", f, FORMATS)
        _choice("quantization", self.quantization, QUANTIZATIONS)
        _text("calibration_data", self.calibration_data, optional=True)
        if "tflite" not in self.formats:  # both are read only for the TFLite file (checked
            # first: int8 without tflite wants tflite added, not calibration_data)
            for name, value, unset in (("quantization", self.quantization, "none"),
                                       ("calibration_data", self.calibration_data, None)):
                if value != unset:
                    raise ValueError(
                        f"{name} is for the TFLite file, which formats={self.formats!r} does "
                        f"not write: add tflite to formats, or leave {name} out. Received: "
                        f"{name}={value!r}")
        if self.quantization == "int8" and self.calibration_data is None:
            raise ValueError(
                "quantization='int8' calibrates activation ranges on real inputs: give "
                "calibration_data (TFRecords). Received: calibration_data=None"
            )
        _int("calibration_batches", self.calibration_batches, minimum=1)
        _text("signature_name", self.signature_name)
        _text("gpu_id", self.gpu_id, optional=True)
        check_flag("fold_batchnorm", self.fold_batchnorm)
