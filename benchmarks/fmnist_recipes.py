"""One recipe per method: baseline model in, fine-tuned compact Keras model out.

Every recipe prunes inside one ordinary `fit` through the tfcompress callbacks (slimming
adds the paper's fine-tune of the stripped model), strips the masks and re-estimates
BatchNorm statistics on 20 training batches (adaptive BN). The baseline and TFMOT's
model get the same BatchNorm re-estimation, so every row is measured alike.
"""

import time

import numpy as np
from fmnist_setup import build_net, compile_model

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.layers import SoftTopKMask
from tfcompress.pruners import RankingOptions, ratio_for_compression, recalibrate_bn

MIN_CHANNELS = 4  # slimming's global ranking never cuts a layer below this
# Taylor's global ranking keeps at least half of the narrowest layer (32 * width channels):
# at width 0.5 a floor of 4 starved conv1 of 16 channels (accuracy); at width 1.0 a floor
# of 8 left conv1, the costliest conv, 8 channels wide, where a conv runs at a third of
# its MAC rate (4x: 0.50 x the MAC reduction in latency, every other row >= 0.61).
TAYLOR_MIN_CHANNELS_PER_WIDTH = 16


def taylor_min_channels(cfg):
    return max(1, round(TAYLOR_MIN_CHANNELS_PER_WIDTH * cfg.width))


def _batches(x, y, batch_size, n, seed=0):
    idx = np.random.default_rng(seed).permutation(len(x))
    return [(x[idx[i:i + batch_size]], y[idx[i:i + batch_size]])
            for i in range(0, min(n * batch_size, len(x)), batch_size)]


def _fit(model, data, cfg, epochs, callbacks=()):
    x, y = data
    model.fit(x, y, batch_size=cfg.batch_size, epochs=epochs, verbose=0,
              callbacks=list(callbacks))


def recalibrate(model, data, cfg):
    recalibrate_bn(model, _batches(*data, cfg.batch_size, 20, seed=1))
    return model


def train_baseline(data, cfg):
    """The unpruned network trained for `cfg.baseline_epochs`, BatchNorm recalibrated."""
    x, y = data
    baseline = compile_model(build_net(cfg.width), cfg.lr)
    baseline.fit(x, y, batch_size=cfg.batch_size, epochs=cfg.baseline_epochs, verbose=0)
    return recalibrate(baseline, data, cfg)


def _finish(masked, data, cfg):
    return recalibrate(tfc.strip(masked), data, cfg)


def kernel_sparsity(model, compression):
    """The conv/dense kernel sparsity leaving `params / compression` non-zero weights."""
    kernels = sum(int(np.prod(v.shape)) for v in model.weights if v.name == "kernel")
    total = model.count_params()
    return float(1.0 - (total / compression - (total - kernels)) / kernels)


def magnitude(baseline, data, cfg, compression=None, sparsity=None, scope=None):
    """Han et al.: element-wise masks, polynomial sparsity ramp over 60 % of the
    fine-tune, then retraining at the final sparsity; `scope` (default
    `cfg.magnitude_scope`): the sparsity per layer ("local", as TFMOT) or over all
    kernels under one threshold ("global")."""
    scope = cfg.magnitude_scope if scope is None else scope
    if sparsity is None:
        sparsity = kernel_sparsity(baseline, compression)
    masked = compile_model(tfc.wrap(baseline, "magnitude"), cfg.finetune_lr)
    steps = cfg.finetune_epochs * cfg.steps_per_epoch()
    end = max(2, int(0.6 * steps))
    schedule = schedules.Polynomial(0.0, sparsity, 0, end, frequency=max(1, end // 10))
    _fit(masked, data, cfg, cfg.finetune_epochs, [cb.MagnitudePruning(schedule, scope=scope)])
    info = {"sparsity": sparsity, "scope": scope, "schedule": schedules.serialize(schedule),
            "epochs": cfg.finetune_epochs}
    return _finish(masked, data, cfg), info


def l1_filter(baseline, data, cfg, compression):
    """Li et al.: one-shot, per-layer (local) L1 filter ranking, then fine-tuning."""
    masked = compile_model(tfc.wrap(baseline, "l1_filter"), cfg.finetune_lr)
    ratio, _ = ratio_for_compression(masked, compression, criterion="l1_filter",
                                     options=RankingOptions(round_to=cfg.round_to))
    schedule = schedules.OneShot(ratio, step=0)
    callback = cb.StructuredPruning(schedule, method="l1_filter", round_to=cfg.round_to)
    _fit(masked, data, cfg, cfg.finetune_epochs, [callback])
    return _finish(masked, data, cfg), {"ratio": ratio, "round_to": cfg.round_to,
                                        "epochs": cfg.finetune_epochs}


def taylor(baseline, data, cfg, compression):
    """Molchanov et al.: global ranking of the Taylor scores gathered during fit, each
    batch's |mean(a·g)| summed (`aggregation="batch_abs"`) and each layer's scores
    compared with their layer mean (`normalize="mean"`) -- explicit options, not the
    library defaults (sum_then_abs, l2: the AdapNet++ recipe), because l2 alone empties
    this network's widest layers first (docs/methods.md); 5 pruning steps over the
    first 60 % of the fine-tune with fine-tuning in between, each removing the lowest
    channels until the fraction of parameters removed reaches its step of the equal
    ramp to `1 - 1/compression` (`budget="params"`); no layer below
    `taylor_min_channels(cfg)`."""
    min_channels = taylor_min_channels(cfg)
    masked = compile_model(tfc.wrap(baseline, "taylor", aggregation="batch_abs"),
                           cfg.finetune_lr)
    steps = cfg.taylor_epochs * cfg.steps_per_epoch()
    freq = max(1, int(0.6 * steps) // 5)
    schedule = schedules.Iterative(1.0 - 1.0 / compression, begin_step=freq,
                                   end_step=5 * freq, frequency=freq)
    callback = cb.StructuredPruning(schedule, method="taylor", scope="global",
                                    normalize="mean", min_channels=min_channels,
                                    round_to=cfg.round_to, budget="params")
    _fit(masked, data, cfg, cfg.taylor_epochs, [callback])
    return _finish(masked, data, cfg), {"params_ratio": 1.0 - 1.0 / compression,
                                        "min_channels": min_channels,
                                        "round_to": cfg.round_to,
                                        "aggregation": "batch_abs",
                                        "normalize": "mean",
                                        "epochs": cfg.taylor_epochs,
                                        "schedule": schedules.serialize(schedule)}


_SPARSE = {}  # (id(baseline), cfg) -> weights after slimming's sparsity phase


def _sparsity_trained(baseline, data, cfg):
    """The baseline wrapped for slimming and trained with the L1 penalty on BN scales.
    The phase does not depend on the target compression, so the 2x and 4x runs share
    it (trained once per baseline and config; `(model, seconds)`)."""
    masked = compile_model(tfc.wrap(baseline, "slimming", penalty=cfg.slimming_penalty),
                           cfg.sparsity_lr)
    key = (id(baseline), cfg)
    if key not in _SPARSE:
        t0 = time.perf_counter()
        _fit(masked, data, cfg, cfg.sparsity_epochs)
        _SPARSE.clear()
        _SPARSE[key] = (masked.get_weights(), time.perf_counter() - t0)
    weights, seconds = _SPARSE[key]
    masked.set_weights(weights)
    return masked, seconds


def slimming(baseline, data, cfg, compression):
    """Liu et al.: training with an L1 penalty on BN scales (shared by the 2x and 4x
    runs), a global |gamma| threshold (never emptying a layer), strip, adaptive BN,
    fine-tune of the compact model."""
    masked, sparsity_seconds = _sparsity_trained(baseline, data, cfg)
    options = dict(scope="global", min_channels=MIN_CHANNELS, round_to=cfg.round_to)
    ratio, _ = ratio_for_compression(masked, compression, criterion="slimming",
                                     options=RankingOptions(**options))
    tfc.prune(masked, ratio, method="slimming", **options)
    compact = compile_model(_finish(masked, data, cfg), cfg.finetune_lr)
    _fit(compact, data, cfg, cfg.finetune_epochs)
    return recalibrate(compact, data, cfg), {
        "percent": ratio, "round_to": cfg.round_to, "penalty": cfg.slimming_penalty,
        "sparsity_lr": cfg.sparsity_lr,
        "sparsity_epochs": cfg.sparsity_epochs, "sparsity_seconds": sparsity_seconds,
        "epochs": cfg.sparsity_epochs + cfg.finetune_epochs}


def soft_topk(baseline, data, cfg, compression):
    """ACoSP: per-layer soft top-k masks annealed over 60 % of the fine-tune (in ten
    schedule "epochs"), hardened to exactly k channels, fine-tuned hard."""
    ratio, _ = ratio_for_compression(tfc.wrap(baseline, "l1_filter"), compression,
                                     criterion="l1_filter",
                                     options=RankingOptions(round_to=cfg.round_to))
    masked = tfc.wrap(baseline, "soft_topk")
    rng = np.random.default_rng(cfg.seed)
    for mask in masked.layers:  # small logits: the short fine-tune can still reorder them
        if isinstance(mask, SoftTopKMask):
            mask.logits.assign(rng.normal(0.0, 0.01, mask.units).astype("float32"))
    compile_model(masked, cfg.finetune_lr)
    steps = cfg.finetune_epochs * cfg.steps_per_epoch()
    schedule = schedules.ACoSPTemperature(ratio, ending_epoch=6)
    # min_channels=1: the ratio above is the parameter budget's, searched with 1 (the table
    # compares methods at equal parameter budgets, not ACoSP-N)
    callback = cb.SoftTopK(schedule, min_channels=1, round_to=cfg.round_to,
                           steps_per_epoch=max(1, steps // 10))
    _fit(masked, data, cfg, cfg.finetune_epochs, [callback])
    return _finish(masked, data, cfg), {"final_sparsity": ratio, "round_to": cfg.round_to,
                                        "epochs": cfg.finetune_epochs,
                                        "schedule": schedules.serialize(schedule)}


RECIPES = {
    "magnitude": magnitude,
    "l1_filter": l1_filter,
    "taylor": taylor,
    "slimming": slimming,
    "soft_topk": soft_topk,
}
