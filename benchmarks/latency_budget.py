"""Pruning to a latency budget vs plain L1 at the same MACs (issue #19).

    python benchmarks/latency_budget.py                      # everything (long)
    python benchmarks/latency_budget.py --models resnet18 --batches 1 32 --image-size 112
    python benchmarks/latency_budget.py --models mobilenet_v2 --batches 1 --refine 3
    python benchmarks/latency_budget.py --fold --batches 1 32 --image-size 224 112 \
        --refine 3 --repeats 5 --turns 20 [--runtime tflite]     # issue #19's grid

For each model (random weights, no downloads: ResNet-18 and VGG-16-BN from the project
zoo, MobileNetV2 from keras.applications with weights=None), batch and latency target
(a fraction of the original's predicted latency), the model is wrapped with l1_filter and
pruned with `plan_for_latency` on the machine's cost table (measured once, then read from
the cache: `tfcompress.latency.measure_cost_table`). The baseline is plain L1 (one ratio
for every group, no rounding) at the same MACs: the ratio is bisected until its compact
model has no more MACs than the latency-budget one. The original and the compact models
are then called as the runtime serves them (`--runtime tf`: `tf.function` concrete
functions, as a SavedModel serves them; `--runtime tflite`: converted and run in LiteRT
with XNNPACK), taking turns call by call in a new random order each turn; speedups are
medians of the per-turn ratios, so load from other processes mostly cancels out (the
numbers are still noisy on a shared machine). With `--refine N` (N > 1) the budget's plan is
measured against the original (paired, as above) and planned again with the working
target scaled by target / measured, up to N plans (`plan_to_measured_latency`); the closest
one is kept. `--only TEXT` lets the budget cut only the groups whose mask layer name
contains TEXT. With `--fold` every model is timed as `saved_model(..., fold_batchnorm=True)`
deploys it (BatchNorms folded into the conv before them), the table's fit included.

Columns: the original's measured ms, the target ms (the target fraction of it), the
prediction as a fraction of the table's original, measured ms, measured / target,
MACs after, MAC reduction, speedup, and speedup / MAC reduction (1.0: the MAC cut turned
fully into speed) for the latency budget and for L1 at the same MACs.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress.latency import measure_cost_table  # noqa: E402
from tfcompress.latency.measure import RESTS, served_form  # noqa: E402
from tfcompress.latency.runtimes import RUNTIMES, serving_call  # noqa: E402
from tfcompress.metrics.complexity import count_macs  # noqa: E402
from tfcompress.pruners.latency_budget import UnreachableTarget, plan_for_latency  # noqa: E402
from tfcompress.pruners.latency_refine import plan_to_measured_latency  # noqa: E402


def _resnet18(size):
    from tfcompress.models.resnet import resnet18

    return resnet18(1000, (size, size, 3))


def _vgg16_bn(size):
    from tfcompress.models.vgg import vgg16_bn

    return vgg16_bn(1000, (size, size, 3))


def _mobilenet_v2(size):
    return keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3))


MODELS = {"resnet18": _resnet18, "vgg16_bn": _vgg16_bn, "mobilenet_v2": _mobilenet_v2}


def paired_ms(models, batch, turns, runtime="tf", seed=0):
    """`{name: (median ms, median per-turn speedup over "original", fastest ms)}` on
    `runtime`."""
    calls = {n: serving_call(m, (batch, *m.inputs[0].shape[1:]), runtime)
             for n, m in models.items()}
    for fn, x in calls.values():
        fn(x)
        fn(x)
    names, times = list(calls), {name: [] for name in calls}
    rng = np.random.default_rng(seed)
    for _ in range(turns):
        for j in rng.permutation(len(names)):
            fn, x = calls[names[j]]
            t0 = time.perf_counter()
            np.asarray(fn(x))
            times[names[j]].append(1e3 * (time.perf_counter() - t0))
    ref = np.array(times["original"])
    return {n: (float(np.median(t)), float(np.median(ref / np.array(t))), float(np.min(t)))
            for n, t in times.items()}


def l1_at_macs(model, max_macs, steps=8):
    """Plain L1 (one local ratio) with the most MACs not above `max_macs`."""
    lo, hi, best = 0.0, 0.95, None
    for _ in range(steps):
        mid = (lo + hi) / 2
        masked = tfc.wrap(model, "l1_filter")
        tfc.prune(masked, ratio=mid, min_channels=1)
        compact = tfc.strip(masked)
        if count_macs(compact) <= max_macs:
            hi, best = mid, (mid, compact)
        else:
            lo = mid
    if best is None:
        masked = tfc.wrap(model, "l1_filter")
        tfc.prune(masked, ratio=hi, min_channels=1)
        best = (hi, tfc.strip(masked))
    return best


def run_one(name, batch, size, targets, args):
    model = MODELS[name](size)
    t0 = time.perf_counter()
    table = measure_cost_table(model, batch, fractions=tuple(args.fractions),
                               multiple=args.multiple, repeats=args.repeats, rest=args.rest,
                               statistic=args.statistic, runtime=args.runtime,
                               fold_batchnorm=args.fold)
    table_s = time.perf_counter() - t0
    served = served_form(args.fold)  # the models as deployed (BatchNorms folded or not)
    served_original = served(model)
    macs0 = count_macs(model)
    models, rows = {"original": model}, []

    def measure(compact):  # for --refine: the compact / original latency, paired
        return 1.0 / paired_ms({"original": served_original, "compact": served(compact)},
                               batch, args.turns, args.runtime)["compact"][1]

    only = None if args.only is None else (lambda mask_name: args.only in mask_name)
    for target in targets:
        masked = tfc.wrap(model, "l1_filter")
        refined = None
        try:
            if args.refine > 1:  # plan, strip, measure against the original, plan again
                refined = plan_to_measured_latency(masked, table, target, measure,
                                                   rounds=args.refine, tolerance=args.tolerance,
                                                   only=only)
                print(f"{name} b{batch} {fraction(target)}: {refined.summary()}", flush=True)
                budget = refined.budget  # applied to `masked`
            else:
                budget = plan_for_latency(masked, table, target_latency=target, only=only)
                tfc.apply_plan(masked, budget.plan)
        except UnreachableTarget as e:
            print(f"{name} b{batch} {fraction(target)}: {e}", flush=True)
            rows.append({"model": name, "batch": batch, "image_size": size, "target": target,
                         "unreachable_floor_ms": e.floor_ms})
            continue
        compact = tfc.strip(masked)
        macs = count_macs(compact)
        ratio, l1 = l1_at_macs(model, macs)
        models[f"budget_{target}"], models[f"l1_{target}"] = compact, l1
        rows.append({"model": name, "batch": batch, "image_size": size, "target": target,
                     "target_ms": budget.target_ms, "predicted_ms": budget.predicted_ms,
                     "original_predicted_ms": budget.original_ms, "macs": macs,
                     "l1_ratio": ratio, "l1_macs": count_macs(l1), "macs_original": macs0,
                     "runtime": args.runtime, "rest": args.rest, "fold": args.fold,
                     "only": args.only,
                     "layer_scale": table.layer_scale, "base_ms": table.base_ms,
                     "scaled_ms": table.scaled_ms,
                     "refine_rounds": None if refined is None else refined.rounds})
    served_models = {n: served_original if n == "original" else served(m)
                     for n, m in models.items()}
    lat = paired_ms(served_models, batch, args.turns, args.runtime)
    for row in rows:
        t = row["target"]
        row["original_ms"], row["original_min_ms"] = lat["original"][0], lat["original"][2]
        if "unreachable_floor_ms" in row:
            continue
        row["measured_ms"], row["speedup"], row["measured_min_ms"] = lat[f"budget_{t}"]
        row["l1_ms"], row["l1_speedup"], _ = lat[f"l1_{t}"]
        row["table_s"] = table_s
    return rows


def fraction(target):
    """0.5 -> "1/2", 0.6 -> "0.6"."""
    n = round(1 / target)
    return f"1/{n}" if abs(n * target - 1) < 1e-9 else f"{target:g}"


def render(rows):
    head = ("| model | batch | px | target | orig ms | target ms | predicted | measured ms | "
            "meas/target | MACs (G) | MAC red. | speedup | speedup ÷ MAC red. | "
            "L1 ms | L1 MAC red. | L1 speedup | L1 speedup ÷ MAC red. |")
    lines = [head, "|" + "---|" * 17]
    for r in rows:
        if "unreachable_floor_ms" in r:
            lines.append(f"| {r['model']} | {r['batch']} | {r['image_size']} | "
                         f"{fraction(r['target'])} | "
                         f"{r['original_ms']:.1f} | unreachable: predicted floor "
                         f"{r['unreachable_floor_ms']:.1f} ms |" + " |" * 11)
            continue
        red = r["macs_original"] / r["macs"]
        l1_red = r["macs_original"] / r["l1_macs"]
        target_ms = r["target"] * r["original_ms"]  # the target against the measured original
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['image_size']} | {fraction(r['target'])} | "
            f"{r['original_ms']:.1f} | {target_ms:.1f} | "
            f"{r['predicted_ms'] / r['original_predicted_ms']:.2f} | "
            f"{r['measured_ms']:.1f} | {r['measured_ms'] / target_ms:.2f} | "
            f"{r['macs'] / 1e9:.3f} | {red:.2f} | {r['speedup']:.2f} | {r['speedup'] / red:.2f} | "
            f"{r['l1_ms']:.1f} | {l1_red:.2f} | {r['l1_speedup']:.2f} | "
            f"{r['l1_speedup'] / l1_red:.2f} |")
    return "\n".join(lines)


def render_fastest(rows):
    """The same runs by each model's fastest call (what the cost table's points and fit
    use) instead of the per-turn medians."""
    lines = ["| model | batch | target | orig fastest ms | fastest ms | fastest / orig | "
             "fastest / target |", "|" + "---|" * 7]
    for r in rows:
        if "measured_min_ms" not in r:
            continue
        ratio = r["measured_min_ms"] / r["original_min_ms"]
        lines.append(f"| {r['model']} | {r['batch']} | {fraction(r['target'])} | "
                     f"{r['original_min_ms']:.1f} | {r['measured_min_ms']:.1f} | "
                     f"{ratio:.2f} | {ratio / r['target']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    p.add_argument("--targets", nargs="+", type=float, default=[0.5, 0.25])
    p.add_argument("--image-size", nargs="+", type=int, default=[224],
                   help="input size: one for every batch, or one per --batches entry")
    p.add_argument("--fractions", nargs="+", type=float, default=[0.125, 0.25, 0.5, 0.75, 1.0],
                   help="cost table grid, fractions of each layer's width")
    p.add_argument("--multiple", type=int, default=8)
    p.add_argument("--statistic", default="min", choices=["min", "median"],
                   help="cost table: the fastest or the median of each point's calls")
    p.add_argument("--rest", default=RESTS[0], choices=RESTS,
                   help="how the table relates the whole model to its layers' timings")
    p.add_argument("--runtime", default=RUNTIMES[0], choices=RUNTIMES,
                   help="what serves the models: a TF SavedModel's concrete function, or "
                        "TFLite (LiteRT with XNNPACK)")
    p.add_argument("--fold", action="store_true",
                   help="deploy every model with its BatchNorms folded (fold_batchnorm): the "
                        "table's whole-model fit and all paired timings; MACs are counted "
                        "on the unfolded models")
    p.add_argument("--only", metavar="TEXT",
                   help="the budget cuts only the groups whose mask layer name contains "
                        "TEXT (plan_for_latency's only=), e.g. _expand_ for MobileNetV2's "
                        "expanded channels; the L1 baseline still cuts every group")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per table point")
    p.add_argument("--turns", type=int, default=30, help="paired timing turns")
    p.add_argument("--refine", type=int, default=1,
                   help="plans measured per target: above 1, plan_to_measured_latency "
                        "re-plans with the target corrected by the measured latency")
    p.add_argument("--tolerance", type=float, default=0.05,
                   help="--refine stops once measured / target is within 1 +- this")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: TF's)")
    p.add_argument("--out", help="write the rows as JSON here")
    args = p.parse_args(argv)
    if len(args.image_size) not in (1, len(args.batches)):
        p.error(f"--image-size takes one size or one per batch ({len(args.batches)}). "
                f"Received: {args.image_size}")
    sizes = dict(zip(args.batches, args.image_size * len(args.batches)
                     if len(args.image_size) == 1 else args.image_size))
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    rows = []
    for name in args.models:
        for batch in args.batches:
            rows += run_one(name, batch, sizes[batch], args.targets, args)
            print(render(rows[-len(args.targets):]), flush=True)
    print(render(rows))
    print(render_fastest(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
