"""Which channels a MAC cut takes decides how much of it turns into speed (issue #19).

    python benchmarks/inner_channels.py --runtime tflite --batch 32 --image-size 112
    python benchmarks/inner_channels.py --runtime tf --batch 1 --image-size 224

MobileNetV2 (keras.applications, random weights, no downloads), pruned two ways with
plain L1 and served folded (`tfc.export.fold_batchnorm`): every prunable group cut by the
same ratio ("uniform"), or only the expanded channels inside the inverted-residual blocks
(the `block_*_expand` groups: each of their 1x1 convs loses channels on one side only, so
MACs fall in proportion to the channels), every other group kept whole ("expanded
only"). All models are timed in turns against the original (`latency_budget.paired_ms`,
per-turn medians). Columns: MAC reduction, speedup, speedup / MAC reduction.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress.metrics.complexity import count_macs  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latency_budget import paired_ms  # noqa: E402


def pruned(model, ratio, expanded_only):
    """The compact model of `model` pruned by L1 at `ratio`, in every group or only in the
    expanded ones (the others keep every channel)."""
    masked = tfc.wrap(model)
    plan = tfc.prune(masked, ratio=ratio)
    if expanded_only:
        for name in plan.keep:
            if "_expand_" not in name:
                plan.keep[name] = list(range(masked.get_layer(name).units))
        tfc.apply_plan(masked, plan)
    return tfc.strip(masked)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", default="tf", choices=["tf", "tflite"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--uniform", nargs="+", type=float, default=[0.3, 0.45])
    p.add_argument("--expanded", nargs="+", type=float, default=[0.5, 0.7, 0.8])
    p.add_argument("--turns", type=int, default=20)
    args = p.parse_args(argv)
    size = args.image_size
    model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3))
    fold = tfc.export.fold_batchnorm
    models, reduction = {"original": fold(model)}, {}
    cases = [("uniform", r) for r in args.uniform] + [("expanded only", r) for r in args.expanded]
    for kind, ratio in cases:
        compact = pruned(model, ratio, kind == "expanded only")
        name = f"{kind} {ratio:g}"
        reduction[name] = count_macs(model) / count_macs(compact)
        models[name] = fold(compact)
    lat = paired_ms(models, args.batch, args.turns, args.runtime)
    print(f"MobileNetV2, {args.runtime}, b{args.batch}, {size} px")
    print("| L1 cut | MAC red. | speedup | speedup ÷ MAC red. |\n|---|---|---|---|")
    for name, red in reduction.items():
        speedup = lat[name][1]
        print(f"| {name} | {red:.2f} | {speedup:.2f} | {speedup / red:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
