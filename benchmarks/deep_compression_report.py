"""The Markdown tables and the plot of `deep_compression.py`'s runs (no TensorFlow here).

python benchmarks/deep_compression_report.py RUN.json            # re-render RUN.md/.png
python benchmarks/deep_compression_report.py A.json B.json --out STEM  # merge runs
"""

import argparse
import gzip
import json
import os

import fmnist_report
import numpy as np

MAX_DROP_POINTS = 0.5  # the accuracy budget: within 0.5 points of dense

WHAT = {
    "dense": "dense float32 weights (4 B each)",
    "pruned": "pruned + retrained: gzip -9 of its float32 `.keras`",
    "shared": "weights shared + centroids trained: gzip -9 of its float32 `.keras`",
    "file": "the file: sparse, Huffman-coded (decoded and evaluated)",
}


def weights_gzip_bytes(arrays):
    """Bytes of gzip -9 of `arrays` as raw float32, one after the other: a model's weights
    without any file format (the same measure in the Keras 3 and the tf-keras process)."""
    raw = b"".join(np.asarray(a, dtype=np.float32).tobytes() for a in arrays)
    return len(gzip.compress(raw, compresslevel=9))


def _number(setting, index):
    """The setting's number in `SWEEPS` (1-based); its place in the run for older runs or
    a setting of one's own."""
    return setting.get("number") or index + 1


def _kept(densities):
    return "/".join(f"{100 * v:g}" for v in densities.values()) + " %"


def _bits(bits):
    return "/".join(str(b) for b in bits.values())


def stage_table(row, index_bits):
    """The headline setting's stages beside the dense net's other files and TFMOT."""
    setting = row["settings"][row["headline"]]
    stages = setting["stages"]
    dense_bytes = stages[0]["dense_bytes"]
    lines = [
        "| stage | what is stored | test accuracy | non-zero params | bytes | storage ratio "
        "| step buys |",
        "|---|---|---|---|---|---|---|",
    ]

    def line(stage, what, acc, nonzero, stored, step=""):
        acc = "-" if acc is None else f"{100 * acc:.2f} %"
        nonzero = "" if nonzero is None else f"{nonzero:,}"
        lines.append(
            f"| {stage} | {what} | {acc} | {nonzero} | {stored:,} | "
            f"{dense_bytes / stored:.1f}x | {step} |"
        )

    dense = stages[0]
    line("dense", WHAT["dense"], dense["accuracy"], dense["nonzero"], dense_bytes)
    line(
        "dense",
        "gzip -9 of the float32 `.keras`",
        dense["accuracy"],
        None,
        row["dense_keras_gzip_bytes"],
        f"{dense_bytes / row['dense_keras_gzip_bytes']:.2f}x",
    )
    line(
        "dense",
        "dynamic-range TFLite (int8 weights)",
        row.get("tflite_dynamic_accuracy"),
        None,
        row["tflite_dynamic_bytes"],
    )
    line(
        "dense",
        "gzip -9 of the dynamic-range TFLite",
        row.get("tflite_dynamic_accuracy"),
        None,
        row["tflite_dynamic_gzip_bytes"],
    )
    previous = row["dense_keras_gzip_bytes"]
    for s in stages[1:]:
        if s["name"] == "file":
            what = f"{WHAT['file']}; index {index_bits or 'paper'} bits"
        else:
            what = WHAT[s["name"]]
        line(
            s["name"],
            what,
            s["accuracy"],
            s["nonzero"],
            s["bytes"],
            f"{previous / s['bytes']:.2f}x",
        )
        previous = s["bytes"]
    tfmot = row.get("tfmot_clustering", {})
    if "accuracy" in tfmot:
        line(
            "TFMOT",
            "`cluster_weights` on the same pruned net, same values per layer and "
            "epochs: gzip -9 of its float32 `.keras`",
            tfmot["accuracy"],
            tfmot["nonzero"],
            tfmot["keras_gzip_bytes"],
        )
    return lines


def sweep_table(row):
    lines = [
        "| setting | kept ("
        + "/".join(row["settings"][0]["densities"])
        + ") | bits ("
        + "/".join(row["settings"][0]["bits"])
        + ") | pruned | shared | file accuracy | "
        "Δ points | file bytes | storage ratio | within 0.5 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(row["settings"]):
        st = {x["name"]: x for x in s["stages"]}
        mark = "**" if i == row["headline"] else ""
        number = _number(s, i)
        lines.append(
            f"| {mark}{number}{' (paper)' if number == 1 else ''}{mark} | "
            f"{_kept(s['densities'])} | "
            f"{_bits(s['bits'])} | {100 * st['pruned']['accuracy']:.2f} % | "
            f"{100 * st['shared']['accuracy']:.2f} % | {100 * st['file']['accuracy']:.2f} % | "
            f"{-s['drop_points']:+.2f} | {st['file']['bytes']:,} | "
            f"{mark}{st['file']['ratio']:.1f}x{mark} | {'yes' if s['within_budget'] else 'no'} |"
        )
    return lines


def knee(row):
    """A sentence on where the accuracy budget runs out among the settings run."""
    settings = row["settings"]
    best = settings[row["headline"]]
    ratio = best["stages"][-1]["ratio"]
    if not best["within_budget"]:
        return (
            f"No setting run stays within {MAX_DROP_POINTS} points (setting "
            f"{_number(settings[0], 0)} loses {settings[0]['drop_points']:.2f})."
        )
    text = (
        f"Best within {MAX_DROP_POINTS} points: setting {_number(best, row['headline'])}, "
        f"{ratio:.1f}x at {-best['drop_points']:+.2f} points."
    )
    over = [(i, s) for i, s in enumerate(settings) if not s["within_budget"]]
    if over:
        i, s = min(over, key=lambda p: p[1]["stages"][-1]["ratio"])
        text += (
            f" Past the knee: setting {_number(s, i)}, {s['stages'][-1]['ratio']:.1f}x, loses "
            f"{s['drop_points']:.2f} points."
        )
    elif len(settings) > 1:
        text += " Every setting run stays within it (the knee lies beyond them)."
    return text


def markdown(result):
    cfg = result["config"]
    lines = []
    for row in result["rows"]:
        best = row["settings"][row["headline"]]
        dense = best["stages"][0]
        lines += [
            f"### {row['net']}: dense {100 * dense['accuracy']:.2f} %, {dense['params']:,} "
            f"parameters; headline setting {_number(best, row['headline'])} (kept "
            + ", ".join(f"{k} {100 * v:g} %" for k, v in best["densities"].items())
            + "; bits "
            + ", ".join(f"{k} {v}" for k, v in best["bits"].items())
            + ")",
            "",
            *stage_table(row, cfg["index_bits"]),
            "",
        ]
        tfmot = row.get("tfmot_clustering", {})
        if "accuracy" in tfmot:
            pruned, shared, file = best["stages"][1:]
            lines.append(
                f"TFMOT {tfmot['tfmot']} (tf-keras {tfmot['keras']}, own process): the pruned "
                f"net it starts from scores {100 * tfmot['pruned_accuracy']:.2f} % there "
                f"({100 * pruned['accuracy']:.2f} % here); `number_of_clusters` 2^bits + 1 "
                "per layer (its zero centroid, `preserve_sparsity=True`), linear init, "
                f"{cfg['share_epochs']} epochs Adam {cfg['share_lr']:g}. Against our shared "
                f"stage: {100 * (shared['accuracy'] - tfmot['accuracy']):+.2f} points, "
                f"{tfmot['keras_gzip_bytes'] / shared['bytes']:.2f}x its gzip bytes; our "
                f"file is {tfmot['keras_gzip_bytes'] / file['bytes']:.1f}x smaller than "
                "TFMOT's gzip."
            )
            lines += [
                "",
                "Without file formats (gzip -9 of the raw float32 weights, the same measure "
                f"in both processes): pruned {best['pruned_weights_gzip_bytes']:,} B, ours "
                f"shared {best['shared_weights_gzip_bytes']:,} B, TFMOT clustered "
                f"{tfmot['weights_gzip_bytes']:,} B; distinct non-zero kernel values in "
                "TFMOT's stripped net: "
                + ", ".join(f"{k} {v}" for k, v in tfmot["distinct_nonzero_values"].items())
                + ".",
                "",
            ]
        elif tfmot.get("skipped"):
            lines += [f"TFMOT clustering baseline not run: {tfmot['skipped']}.", ""]
        if len(row["settings"]) > 1:
            lines += [
                "Settings run (same dense net; the headline in bold):",
                "",
                *sweep_table(row),
                "",
            ]
        verdict = "meets" if row["meets_target"] else "misses"
        final = best["stages"][-1]
        lines += [
            knee(row) + f" Headline {final['ratio']:.1f}x "
            f"({best['report']['weights_ratio']:.1f}x without header and architecture) "
            f"{verdict} the issue's target >= {row['target_ratio']:g}x within "
            f"{MAX_DROP_POINTS} points"
            + (" (the target applies to the full run)." if cfg["budget"] == "quick" else "."),
            "",
        ]
    lines.append(
        f"Command: `{result['command']}` ({result['wall_seconds'] / 60:.1f} min; "
        f"{cfg['n_train']:,} training, {cfg['n_test']:,} test images; dense {cfg['dense_epochs']} "
        f"epochs, {cfg['prune_steps']} pruning steps x {cfg['prune_epochs']} epochs, "
        f"{cfg['share_epochs']} centroid epochs)."
    )
    return "\n".join(lines)


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = result["rows"]
    n_test = result["config"]["n_test"]
    fig, axes = plt.subplots(1, len(rows), figsize=(max(8.5, 6.5 * len(rows)), 5.4), squeeze=False)
    for ax, row in zip(axes[0], rows):
        best = row["settings"][row["headline"]]
        stages = best["stages"]
        dense_bytes, dense_acc = stages[0]["dense_bytes"], 100 * stages[0]["accuracy"]
        ratios = [s["ratio"] for s in stages]
        accs = [100 * s["accuracy"] for s in stages]
        ax.plot(ratios, accs, "o-", color="C0", label="tfcompress stages (headline setting)")
        for s, x, y in zip(stages, ratios, accs):
            ax.annotate(s["name"], (x, y), textcoords="offset points", xytext=(5, -11), fontsize=8)
        others = [s for i, s in enumerate(row["settings"]) if i != row["headline"]]
        for i, s in enumerate(row["settings"]):  # each setting's file, by its number
            file = s["stages"][-1]
            ax.annotate(
                f"{_number(s, i)}",
                (file["ratio"], 100 * file["accuracy"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, 3),
                color="C0",
            )
        if others:
            ax.plot(
                [s["stages"][-1]["ratio"] for s in others],
                [100 * s["stages"][-1]["accuracy"] for s in others],
                "o",
                mfc="none",
                color="C0",
                label="the file, other settings of the sweep (numbered)",
            )
        ax.plot(
            [dense_bytes / row["dense_keras_gzip_bytes"]],
            [dense_acc],
            "s",
            color="C2",
            label="gzip -9 of the dense float32 .keras",
        )
        if row.get("tflite_dynamic_accuracy") is not None:
            ax.plot(
                [dense_bytes / row["tflite_dynamic_bytes"]],
                [100 * row["tflite_dynamic_accuracy"]],
                "^",
                color="C1",
                label="dynamic-range TFLite (int8 weights)",
            )
        tfmot = row.get("tfmot_clustering", {})
        if "accuracy" in tfmot:
            ax.plot(
                [dense_bytes / tfmot["keras_gzip_bytes"]],
                [100 * tfmot["accuracy"]],
                "D",
                color="C3",
                label="TFMOT cluster_weights, gzip -9 of its .keras",
            )
        ax.axhline(
            dense_acc - MAX_DROP_POINTS,
            color="gray",
            ls=":",
            lw=1,
            label=f"dense - {MAX_DROP_POINTS} points",
        )
        ax.axvline(
            row["target_ratio"], color="gray", ls="--", lw=0.8, label="the issue's target ratio"
        )
        ax.set_xscale("log")
        ax.set_xticks([1, 2, 5, 10, 20, 40, 80])
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("storage ratio: dense float32 weight bytes / stored bytes (log)")
        ax.set_ylabel(f"test accuracy (%)\nFashion-MNIST, {n_test:,} test images")
        ax.set_title(f"{row['net']}: dense {dense_acc:.2f} %", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    legend = {}  # every artist any panel drew, once
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels, handles = list(legend), list(legend.values())
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=2 if len(rows) == 1 else 4,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.2 if len(rows) == 1 else 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result, stem):
    return fmnist_report.write_outputs(result, stem, markdown, plot)


def merge(results):
    """One result of several runs' rows (their configs must match but for the nets)."""
    first = results[0]
    for other in results[1:]:
        if other["config"] != first["config"]:
            raise ValueError(
                f"Runs with different configs cannot merge: {first['config']} vs {other['config']}"
            )
    return {
        "config": first["config"],
        "rows": [row for r in results for row in r["rows"]],
        "command": "; ".join(r["command"] for r in results),
        "wall_seconds": sum(r["wall_seconds"] for r in results),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="deep_compression*.json files")
    parser.add_argument("--out", default=None, help="output stem (default: the first run's)")
    args = parser.parse_args(argv)
    results = []
    for path in args.runs:
        with open(path) as f:
            results.append(json.load(f))
    stem = args.out or os.path.splitext(args.runs[0])[0]
    print("wrote " + ", ".join(write(merge(results), stem)))


if __name__ == "__main__":
    main()
