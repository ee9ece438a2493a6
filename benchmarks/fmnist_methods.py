"""Every pruning method on Fashion-MNIST, next to TFMOT, in one run.

    python benchmarks/fmnist_methods.py            # full 60k/10k, ~60 min on 2 cores
    python benchmarks/fmnist_methods.py --quick    # 12k/2k, 4.5 min at load ~4 (`make demo`)

Trains the small conv-BN network (`fmnist_setup.build_net`) to a baseline, then runs each
method (`fmnist_recipes.RECIPES`) at 2x and 4x fewer parameters with fine-tuning, strips
and exports each model (SavedModel), adds `magnitude` and TFMOT's `prune_low_magnitude`
(its own process, `tfmot_baseline.py`) at 80 % kernel sparsity with the same schedule and
epochs, measures the SavedModels' CPU latency at batch 64 against the unpruned model's
turn by turn (`latency.py`), and writes `benchmarks/results/fmnist_methods[_quick].{json,md,png}`.
The issue's targets apply to the full run; `--quick` is checked against what its budget
is expected to meet (`fmnist_report.check_targets`) and lists the full-run targets apart.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import fmnist_report  # noqa: E402
import fmnist_setup as setup  # noqa: E402
import latency  # noqa: E402
import numpy as np  # noqa: E402
from fmnist_recipes import RECIPES, kernel_sparsity, train_baseline  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = (2.0, 4.0)
MAGNITUDE_SPARSITY = 0.8


def run_tfmot(baseline, data, cfg, workdir, sparsity, seed=None, export=True):
    """TFMOT at `sparsity` with magnitude's schedule, in a tf-keras subprocess (fine-tune
    seed `seed`, default `cfg.seed`; without `export`, accuracy and sparsity only)."""
    steps = cfg.finetune_epochs * cfg.steps_per_epoch()
    end = max(2, int(0.6 * steps))
    settings = {
        "seed": cfg.seed if seed is None else seed, "export": export,
        "sparsity": sparsity, "end_step": end,
        "frequency": max(1, end // 10), "lr": cfg.finetune_lr, "epochs": cfg.finetune_epochs,
        "batch_size": cfg.batch_size, "latency_rounds": cfg.latency_rounds,
        "widths": [int(baseline.get_layer(f"conv{i}").filters) for i in range(5)],
    }
    arrays = {f"w/{layer.name}/{i}": np.asarray(w)
              for layer in baseline.layers for i, w in enumerate(layer.get_weights())}
    x_train, y_train, x_test, y_test = data
    inputs = os.path.join(workdir, "tfmot_inputs.npz")
    np.savez(inputs, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             settings=json.dumps(settings), **arrays)
    out = os.path.join(workdir, "tfmot.json")
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "tfmot_baseline.py"), "--inputs", inputs,
         "--out", out, "--workdir", workdir],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"TFMOT subprocess failed:\n{proc.stderr[-3000:]}")
    with open(out) as f:
        return json.load(f)


def run(cfg, methods, with_tfmot=True, log=print):
    workdir = tempfile.mkdtemp(prefix="tfc-bench-")
    x_train, y_train, x_test, y_test = setup.load_data(cfg)
    train = (x_train, y_train)
    rows = []
    t0 = time.perf_counter()
    baseline = train_baseline(train, cfg)
    row = {"method": "baseline", "target": "-", "epochs": cfg.baseline_epochs,
           "train_seconds": time.perf_counter() - t0,
           **setup.measure(baseline, x_test, y_test, workdir, "baseline")}
    rows.append(row)
    log(f"baseline: accuracy {row['accuracy']:.4f}, {row['params']:,} params "
        f"({row['train_seconds']:.0f} s)")
    jobs = [(m, {"compression": c}) for m in methods for c in TARGETS]
    if "magnitude" in methods:
        jobs.append(("magnitude", {"sparsity": MAGNITUDE_SPARSITY}))
    for method, target in jobs:
        t0 = time.perf_counter()
        compact, info = RECIPES[method](baseline, train, cfg, **target)
        label = (f"{target['compression']:g}x" if "compression" in target
                 else f"{target['sparsity']:.0%} sparsity")
        name = f"{method}@{label}".replace(" ", "_").replace("%", "pct")
        if "scope" in info:  # magnitude: per-layer or one-threshold sparsity
            label = f"{label}, {info['scope']}"
        row = {"method": method, "target": label, **info,
               "train_seconds": time.perf_counter() - t0,
               **setup.measure(compact, x_test, y_test, workdir, name)}
        rows.append(row)
        row["model"] = name
        log(f"{method} {label}: accuracy {row['accuracy']:.4f}, "
            f"{row['nonzero_params']:,} nonzero params ({row['train_seconds']:.0f} s)")
    if with_tfmot:
        t0 = time.perf_counter()
        tf_row = run_tfmot(baseline, (x_train, y_train, x_test, y_test), cfg, workdir,
                           MAGNITUDE_SPARSITY)
        tf_row.pop("latency_s", None)  # measured below with the others, not in tf-keras
        rows.append({"method": "tfmot_prune_low_magnitude",
                     "target": f"{MAGNITUDE_SPARSITY:.0%} sparsity",
                     "epochs": cfg.finetune_epochs, "macs": rows[0]["macs"], **tf_row,
                     "model": "tfmot_saved_model", "wall_seconds": time.perf_counter() - t0})
        log(f"tfmot: accuracy {tf_row['accuracy']:.4f}")
    rows[0]["model"] = "baseline"
    lat = latency.measure({r["model"]: os.path.join(workdir, r["model"]) for r in rows},
                          turns=cfg.latency_turns)
    for row in rows:
        row["latency_s"], row["speedup"] = lat[row["model"]]
    fmnist_report.derive(rows)
    return {"config": vars(cfg) if hasattr(cfg, "__dict__") else cfg.__dict__,
            "workdir": workdir,
            "kernel_sparsity_2x": kernel_sparsity(baseline, 2.0), "rows": rows,
            "targets": fmnist_report.check_targets(rows, cfg.budget)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run for `make demo`")
    parser.add_argument("--methods", default=",".join(RECIPES),
                        help=f"comma-separated subset of {','.join(RECIPES)}")
    parser.add_argument("--no-tfmot", action="store_true", help="skip the TFMOT subprocess")
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the exported SavedModels (for benchmarks/latency.py)")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(RECIPES))
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {sorted(RECIPES)}")
    cfg = setup.Config.quick() if args.quick else setup.Config.full()
    t0 = time.perf_counter()
    result = run(cfg, methods, with_tfmot=not args.no_tfmot)
    result["wall_seconds"] = time.perf_counter() - t0
    result["command"] = "python benchmarks/fmnist_methods.py" + (" --quick" if args.quick else "")
    stem = os.path.join(args.out_dir, "fmnist_methods" + ("_quick" if args.quick else ""))
    paths = fmnist_report.write(result, stem)
    print(fmnist_report.markdown(result))
    print("wrote " + ", ".join(paths))
    if args.keep_workdir:
        print(f"SavedModels kept in {result['workdir']}")
    else:
        shutil.rmtree(result["workdir"], ignore_errors=True)


if __name__ == "__main__":
    main()
