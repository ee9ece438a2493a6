"""Wall time of one pruning round -- wrap, prune (score + mask), strip -- per model.

    python benchmarks/prune_time.py                        # 14 keras.applications + ResNet-18
    python benchmarks/prune_time.py --models resnet18 MobileNetV2 --repeats 5
    python benchmarks/prune_time.py --fold                 # also fold_batchnorm, with parity
    python benchmarks/prune_time.py --models resnet18 --repeats 5 --split  # where CPU goes
    python benchmarks/prune_time.py --models resnet18 --repeats 5 --no-copy  # no layer copies
    python benchmarks/prune_time.py --models EfficientNetB0 --repeats 1 --export  # export CPU

Models have random weights, seeded (`weights=None`, no downloads): the 14 keras.applications
families at the small input sizes tests/test_applications.py uses, and the zoo's ResNet-18
at 224x224x3, 1000 classes (the size Torch-Pruning's ResNet-18 prune is timed at,
~0.12 s). Each repeat wraps the original model afresh (`tfc.wrap`, L1 filter, dependency
graph included), prunes 30 % (`tfc.prune`) and strips (`tfc.strip`); the table shows the
best of the repeats (as `timeit` does: other processes only ever add time) after one
untimed warm-up round (first-call tracing and imports); `cpu` is the process CPU time of
the whole round. TensorFlow runs on `--threads` threads (default 1, as Torch-Pruning's
time was measured).
`--fold` adds `tfc.export.fold_batchnorm` of the original model: its time, the
BatchNorm layers before and after, and the max relative error of its logits.
`--export` adds the CPU seconds (`time.process_time()`) of `tfc.export.saved_model` and
`tfc.export.tflite` (float32, run once in LiteRT) of the compact model, once each.
`--no-copy` wraps with `copy_layers=False`: the masked model calls the original's layers
instead of copies (strip still makes a new compact model).
`--keras-floor` also times Keras building the same compact model itself, with no tfcompress
code: `keras.Model.from_config` of its config (a deep copy each time: `from_config` empties
the dict it is given) and `keras.models.clone_model`, best of `repeats`. Any strip that returns
a Keras model pays at least this.
`--split` adds `repeats` rounds under timers (`Split`) and prints the CPU time of the
least costly one split into the dependency graphs, making the new layers, Keras layer
calls (of which creating variables), and the rest.

Writes `benchmarks/results/prune_time.json` (or `--out`). Goal (issue #19): ResNet-18
wrap + prune + strip <= 0.15 s.

Measured 2026-11-30 on the 2-core machine shared with other jobs (1 thread, best of 5,
`--models resnet18 --repeats 5`, three runs alternating with the session's starting code,
commit 5f9de82): ResNet-18 0.47-0.63 s (e.g. wrap 0.19 + prune 0.04 + strip 0.24 = 0.47 s),
5f9de82 0.56-0.58 s: within this machine's noise. Larger models gain more (same A/B, best
of 2): DenseNet121 5.38 -> 4.08 s, InceptionResNetV2 8.25-9.14 -> 6.73-6.96 s.
The goal is out of reach of a wrap / strip that builds Keras models: on the same machine
`keras.models.clone_model(resnet18)` alone took 0.38 s of CPU (0.46 s with `set_weights`),
and wrap and strip each build one model of ~70-80 layers and ~110 weights (Keras layer
construction and calls -- attribute tracking, variable creation -- are ~2/3 of the round;
the dependency graphs ~5 %, strip's numpy slicing ~10 %).

Later (same day, session of 19:00, 1 thread, load 4-5 on the 2 cores): prune and strip
share the wrapped model's graph (`tfcompress.graph.memo`), and strip folds no mask factor
that is 1 on the kept channels. A/B with snapshots of 9258f4a and of 9258f4a plus these
changes, both run by this script, alternating (`--models resnet18 --repeats 5 --split`,
3 runs each): cpu 0.50 / 0.50 / 0.59 s before, 0.44 / 0.49 / 0.51 s after; the graphs
0.022-0.024 -> 0.014-0.017 s. The split of a round (after): Keras 70-74 % (making layers
0.11, layer calls 0.21-0.24 of which variables 0.10-0.11), graphs 0.015, the rest
(scores, slicing, masks) 0.10-0.12 s.
"""

import argparse
import copy
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfcompress as tfc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
A = keras.applications
# One member of every keras.applications family at the smallest input size each accepts
# (tests/test_applications.py runs the same list).
APPLICATIONS = {
    "VGG16": (A.VGG16, 32),
    "ResNet50": (A.ResNet50, 32),
    "ResNet50V2": (A.ResNet50V2, 32),
    "InceptionV3": (A.InceptionV3, 75),
    "InceptionResNetV2": (A.InceptionResNetV2, 75),
    "Xception": (A.Xception, 71),
    "MobileNet": (A.MobileNet, 32),
    "MobileNetV2": (A.MobileNetV2, 32),
    "MobileNetV3Small": (A.MobileNetV3Small, 32),
    "DenseNet121": (A.DenseNet121, 32),
    "NASNetMobile": (A.NASNetMobile, 32),
    "EfficientNetB0": (A.EfficientNetB0, 32),
    "EfficientNetV2B0": (A.EfficientNetV2B0, 32),
    "ConvNeXtTiny": (A.ConvNeXtTiny, 32),
}
ZOO = {"resnet18": ((224, 224, 3), 1000)}
MODELS = ("resnet18", *APPLICATIONS)
GOAL = {"resnet18": 0.15}
STAGES = ("wrap", "prune", "strip")


def build(name):
    """A model with random weights (BatchNorm statistics randomised too), the same ones on
    every run: `keras.utils.set_random_seed(0)` first (Keras' initialisers draw from the
    global RNG; unseeded, `--fold`'s relative error moved run to run, e.g. EfficientNetV2B0
    2.0-2.8e-6)."""
    keras.utils.set_random_seed(0)
    if name in ZOO:
        shape, classes = ZOO[name]
        model = tfc.models.build(name, classes, shape)
    else:
        builder, size = APPLICATIONS[name]
        model = builder(
            weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None
        )
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for var in layer.weights:
                low = 0.5 if var.name in ("gamma", "moving_variance") else -0.5
                var.assign(rng.uniform(low, low + 1.0, var.shape[0]))
    return model


def one_round(model, ratio, share=False):
    """`({stage: seconds}, compact model)` of one wrap / prune / strip round
    (`share`: `wrap(..., copy_layers=False)`)."""
    times = {}
    cpu = time.process_time()
    start = time.perf_counter()
    masked = tfc.wrap(model, copy_layers=not share)
    times["wrap"] = time.perf_counter() - start
    start = time.perf_counter()
    tfc.prune(masked, ratio=ratio)
    times["prune"] = time.perf_counter() - start
    start = time.perf_counter()
    compact = tfc.strip(masked)
    times["strip"] = time.perf_counter() - start
    times["cpu"] = time.process_time() - cpu
    return times, compact


class Split:
    """Process CPU time of one round split by what runs (`--split`): the dependency graphs
    (`DependencyGraph`: trace + groups), making the new layers (`rebuild`'s make_layer:
    get_config, from_config, wrappers), Keras layer calls on symbolic tensors (build and
    output specs; the variables they create are also shown alone), and the rest
    (tfcompress's own bookkeeping: weight slicing, masks, scoring). Timers patch the
    classes for the length of a `with` block; the outermost one counts."""

    PARTS = ("graph", "make_layer", "keras_call", "variables")

    def __init__(self):
        self.cpu = dict.fromkeys(self.PARTS, 0.0)
        self._depth = dict.fromkeys(self.PARTS, 0)
        self._undo = []

    def _timed(self, part, fn):
        def timed(*args, **kwargs):
            self._depth[part] += 1
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth[part] -= 1
                if not self._depth[part]:
                    self.cpu[part] += time.process_time() - start

        return timed

    def _patch(self, owner, name, part):
        fn = getattr(owner, name)
        self._undo.append((owner, name, fn))
        setattr(owner, name, self._timed(part, fn))

    def __enter__(self):
        import importlib

        rebuild_mod = importlib.import_module("tfcompress.surgery.rebuild")
        self._patch(tfc.graph.DependencyGraph, "__init__", "graph")
        self._patch(keras.layers.Layer, "__call__", "keras_call")
        self._patch(keras.Variable, "__init__", "variables")
        rebuild = rebuild_mod.rebuild

        def timed_rebuild(traced, make_layer, *args, **kwargs):
            return rebuild(traced, self._timed("make_layer", make_layer), *args, **kwargs)

        for name in ("wrap", "strip"):
            module = importlib.import_module(f"tfcompress.surgery.{name}")
            self._undo.append((module, "rebuild", module.rebuild))
            module.rebuild = timed_rebuild
        return self

    def __exit__(self, *exc):
        for owner, name, fn in reversed(self._undo):
            setattr(owner, name, fn)


def split_round(model, ratio, share=False):
    """`{part: cpu seconds}` of one round (`Split`), with `total` and `rest`."""
    with Split() as split:
        times, _ = one_round(model, ratio, share)
    cpu = dict(split.cpu)
    cpu["total"] = times["cpu"]
    cpu["rest"] = cpu["total"] - cpu["graph"] - cpu["make_layer"] - cpu["keras_call"]
    return cpu


def max_rel_error(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12))


def fold_check(model):
    x = np.random.default_rng(0).uniform(size=(2, *model.inputs[0].shape[1:])).astype("float32")
    start = time.perf_counter()
    folded = tfc.export.fold_batchnorm(model)
    seconds = time.perf_counter() - start

    def bns(m):
        return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in m.layers)

    return {
        "fold_s": seconds,
        "bn_before": bns(model),
        "bn_after": bns(folded),
        "fold_rel_err": max_rel_error(model(x, training=False), folded(x)),
    }


def export_cpu(compact):
    """CPU seconds of `tfc.export.saved_model` and `tfc.export.tflite` of `compact`."""
    row = {}
    with tempfile.TemporaryDirectory() as folder:
        for key, export, name in (("saved_model_cpu", tfc.export.saved_model, "sm"),
                                  ("tflite_cpu", tfc.export.tflite, "m.tflite")):
            start = time.process_time()
            export(compact, os.path.join(folder, name))
            row[key] = time.process_time() - start
    return row


def best_of(fn, repeats):
    """The least wall time of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def keras_floor(compact, repeats):
    """Seconds Keras itself takes to build `compact` again (`--keras-floor`)."""
    config = compact.get_config()
    return {
        "from_config": best_of(lambda: keras.Model.from_config(copy.deepcopy(config)), repeats),
        "clone_model": best_of(lambda: keras.models.clone_model(compact), repeats),
    }


def measure(name, repeats, ratio, fold, split=False, share=False, floor=False, export=False):
    model = build(name)
    _, compact = one_round(model, ratio, share)  # warm-up: first-call tracing
    rounds = [one_round(model, ratio, share)[0] for _ in range(repeats)]
    if split:  # the round of least CPU among `repeats` more, split
        parts = min((split_round(model, ratio, share) for _ in range(repeats)),
                    key=lambda p: p["total"])
    row = {"model": name, "params": model.count_params(), "compact": compact.count_params()}
    for stage in STAGES:
        row[stage] = min(r[stage] for r in rounds)
    row["total"] = min(sum(r[s] for s in STAGES) for r in rounds)
    row["cpu"] = min(r["cpu"] for r in rounds)
    if split:
        row["split"] = parts
    if fold:
        row.update(fold_check(model))
    if floor:
        row["keras_floor"] = keras_floor(compact, repeats)
    if export:
        row.update(export_cpu(compact))
    keras.backend.clear_session()
    return row


def table(rows):
    cols = ["model", "params", "compact", *STAGES, "total", "cpu"]
    fold = "fold_s" in rows[0]
    if fold:
        cols += ["fold_s", "bn_before", "bn_after", "fold_rel_err"]
    if "tflite_cpu" in rows[0]:
        cols += ["saved_model_cpu", "tflite_cpu"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = []
        for c in cols:
            v = row[c]
            if c == "fold_rel_err":
                cells.append(f"{v:.1e}")
            elif isinstance(v, float):
                cells.append(f"{v:.3f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per model")
    parser.add_argument("--ratio", type=float, default=0.3, help="fraction pruned per group")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow op threads")
    parser.add_argument("--fold", action="store_true", help="also fold_batchnorm, with parity")
    parser.add_argument(
        "--split", action="store_true", help="also split a round's CPU time (class Split)"
    )
    parser.add_argument(
        "--no-copy", action="store_true",
        dest="share",
        help="wrap with copy_layers=False (the masked model calls the original's layers)")
    parser.add_argument(
        "--keras-floor", action="store_true", dest="floor",
        help="also time keras.Model.from_config and clone_model of the compact model")
    parser.add_argument(
        "--export", action="store_true",
        help="also the CPU time of tfc.export.saved_model and tflite of the compact model")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "prune_time.json"))
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1. Received: {args.repeats}")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    rows = []
    for name in args.models:
        rows.append(
            measure(name, args.repeats, args.ratio, args.fold, args.split, args.share, args.floor,
                    args.export)
        )
        r = rows[-1]
        print(
            f"{name}: wrap {r['wrap']:.3f}  prune {r['prune']:.3f}  strip {r['strip']:.3f}  "
            f"total {r['total']:.3f} s (cpu {r['cpu']:.3f} s)",
            flush=True,
        )
        if args.floor:
            f = r["keras_floor"]
            print(
                f"{name}: Keras alone builds the compact model in {f['from_config']:.3f} s "
                f"(Model.from_config), {f['clone_model']:.3f} s (clone_model); strip "
                f"{r['strip']:.3f} s",
                flush=True,
            )
        if args.split:
            p = r["split"]
            print(
                f"{name} cpu split: "
                + "  ".join(f"{k} {p[k]:.3f}" for k in p)
                + f"  (keras share {(p['make_layer'] + p['keras_call']) / p['total']:.0%})",
                flush=True,
            )
    print(table(rows))
    for name, goal in GOAL.items():
        for row in rows:
            if row["model"] == name:
                verdict = "meets" if row["total"] <= goal else "misses"
                print(f"{name}: total {row['total']:.3f} s {verdict} the goal <= {goal} s")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
