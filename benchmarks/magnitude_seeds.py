"""`magnitude` against TFMOT's `prune_low_magnitude` at 80 % kernel sparsity, over seeds.

    python benchmarks/magnitude_seeds.py                 # 3 seeds, ~35 min on 2 cores
    python benchmarks/magnitude_seeds.py --seeds 0,1,2,3,4
    python benchmarks/magnitude_seeds.py --quick         # 12k/2k, 2 seeds, ~3 min

One seed per method is a coin toss: the two differ by a few test images either way
(`fmnist_methods.py`: -0.08 points at width 1.0, +0.16 at width 0.5). This trains the
`fmnist_setup` baseline once, then for each fine-tune seed (data order, the only random
thing in the fine-tune) prunes it three ways with the same polynomial schedule and epochs
(`fmnist_recipes.magnitude`): tfcompress per layer (`scope="local"`, TFMOT's rule),
tfcompress under one threshold over all kernels (`scope="global"`), and TFMOT (tf-keras,
its own process, `tfmot_baseline.py`). Every model is stripped and its BatchNorm
re-estimated alike. Writes `benchmarks/results/magnitude_seeds[_quick].{json,md}`: test
accuracy per seed, the mean and sample standard deviation per method, and each
tfcompress row's mean difference to TFMOT with its standard error.
"""

import argparse
import json
import os
import shutil
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import fmnist_setup as setup  # noqa: E402
import keras  # noqa: E402
from fmnist_methods import HERE, MAGNITUDE_SPARSITY, run_tfmot  # noqa: E402
from fmnist_recipes import magnitude, train_baseline  # noqa: E402

METHODS = ("magnitude_local", "magnitude_global", "tfmot_prune_low_magnitude")


def run(cfg, seeds, log=print):
    workdir = setup.scratch_dir()
    try:
        x_train, y_train, x_test, y_test = setup.load_data(cfg)
        train = (x_train, y_train)
        t0 = time.perf_counter()
        baseline = train_baseline(train, cfg)
        base_acc = setup.accuracy(baseline, x_test, y_test)
        log(f"baseline: accuracy {base_acc:.4f} ({time.perf_counter() - t0:.0f} s)")
        runs = []
        for seed in seeds:
            for scope in ("local", "global"):
                t0 = time.perf_counter()
                keras.utils.set_random_seed(seed)
                compact, info = magnitude(baseline, train, cfg, sparsity=MAGNITUDE_SPARSITY,
                                          scope=scope)
                runs.append({"method": f"magnitude_{scope}", "seed": seed,
                             "accuracy": setup.accuracy(compact, x_test, y_test),
                             "seconds": time.perf_counter() - t0})
                log(f"seed {seed} magnitude {scope}: accuracy {runs[-1]['accuracy']:.4f} "
                    f"({runs[-1]['seconds']:.0f} s)")
            t0 = time.perf_counter()
            tf_row = run_tfmot(baseline, (x_train, y_train, x_test, y_test), cfg, workdir,
                               MAGNITUDE_SPARSITY, seed=seed, export=False)
            runs.append({"method": "tfmot_prune_low_magnitude", "seed": seed,
                         "accuracy": tf_row["accuracy"],
                         "seconds": time.perf_counter() - t0})
            log(f"seed {seed} tfmot: accuracy {tf_row['accuracy']:.4f} "
                f"({runs[-1]['seconds']:.0f} s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"config": dict(vars(cfg)), "seeds": list(seeds), "sparsity": MAGNITUDE_SPARSITY,
            "baseline_accuracy": base_acc, "runs": runs, "summary": summarize(runs)}


def summarize(runs):
    """Per method: mean and sample std of the accuracy; per tfcompress method: the mean
    of its per-seed difference to TFMOT and that mean's standard error."""
    by = {m: {r["seed"]: r["accuracy"] for r in runs if r["method"] == m} for m in METHODS}
    tfmot = by["tfmot_prune_low_magnitude"]
    summary = {}
    for method, accs in by.items():
        values = list(accs.values())
        row = {"mean": statistics.fmean(values),
               "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        if method != "tfmot_prune_low_magnitude":
            diffs = [accs[s] - tfmot[s] for s in accs]
            row["mean_diff_vs_tfmot"] = statistics.fmean(diffs)
            row["diff_stderr"] = (statistics.stdev(diffs) / len(diffs) ** 0.5
                                  if len(diffs) > 1 else 0.0)
        summary[method] = row
    return summary


def markdown(result):
    seeds = result["seeds"]
    lines = [
        f"magnitude vs TFMOT at {result['sparsity']:.0%} kernel sparsity, "
        f"{len(seeds)} fine-tune seeds; baseline {result['baseline_accuracy']:.2%}",
        "",
        "| method | " + " | ".join(f"seed {s}" for s in seeds)
        + " | mean ± std | mean − TFMOT (± s.e.) |",
        "|---|" + "---|" * len(seeds) + "---|---|",
    ]
    for method in METHODS:
        accs = {r["seed"]: r["accuracy"] for r in result["runs"] if r["method"] == method}
        s = result["summary"][method]
        diff = (f"{100 * s['mean_diff_vs_tfmot']:+.2f} ± {100 * s['diff_stderr']:.2f} pts"
                if "mean_diff_vs_tfmot" in s else "—")
        lines.append(f"| {method} | " + " | ".join(f"{accs[x]:.2%}" for x in seeds)
                     + f" | {s['mean']:.2%} ± {100 * s['std']:.2f} | {diff} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12k/2k images, width 0.5")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated fine-tune seeds (default 0,1,2; quick: 0,1)")
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in (args.seeds or ("0,1" if args.quick else "0,1,2")).split(",")]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers. Received: {args.seeds!r}")
    if len(set(seeds)) != len(seeds) or not seeds:
        parser.error(f"--seeds must be distinct and non-empty. Received: {args.seeds!r}")
    cfg = setup.Config.quick() if args.quick else setup.Config.full()
    t0 = time.perf_counter()
    result = run(cfg, seeds)
    result["wall_seconds"] = time.perf_counter() - t0
    result["command"] = "python benchmarks/magnitude_seeds.py" + (
        " --quick" if args.quick else "") + (f" --seeds {args.seeds}" if args.seeds else "")
    stem = os.path.join(args.out_dir, "magnitude_seeds" + ("_quick" if args.quick else ""))
    text = markdown(result)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(text)
    print(f"wrote {stem}.json, {stem}.md")


if __name__ == "__main__":
    main()
