"""The demo (`make demo`) through the scripts: Fashion-MNIST records, a baseline (train),
its compression (compress), a one-shot pruning sweep (evaluate), the exports (export),
then the report and the compression plot. Every command is printed before it runs, so
each step can be re-run by hand.
"""

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time

from tfcompress.numbers import is_number
from tfcompress.training import methods, paths
from tfcompress.training.plot import compression_plot

# Per method: what the compress step changes in configs/demo_compress.cfg (slimming's
# recipe), and the data-free criterion of the one-shot sweep.
METHOD_FLAGS = {
    "slimming": [],
    "l1_filter": [
        "--scope=local",
        "--starting_epoch=0.5",
        "--ending_epoch=1",
        "--prune_every=0.25",
    ],
    "taylor": ["--scope=global", "--starting_epoch=0.25", "--ending_epoch=1", "--prune_every=0.25"],
    "soft_topk": ["--scope=local", "--starting_epoch=0", "--ending_epoch=1.5"],
    "magnitude": ["--ratio=0.8", "--starting_epoch=0", "--ending_epoch=1", "--prune_every=0.25"],
}
SWEEP_CRITERION = {"slimming": "slimming", "magnitude": "magnitude"}


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """What the demo runs.

    method: the compression method (`tfcompress.METHODS`).
    output_dir: runs, exports, the plot and summary.json go here.
    data_dir: Fashion-MNIST TFRecords (written there first if missing).
    fmnist_dir: Debian's Fashion-MNIST idx files.
    sweep_ratios: one-shot pruning ratios of the sweep.
    extra_flags: flags added to the train and compress commands (e.g. the smoke overlay).
    """

    method: str = "slimming"
    output_dir: str = "out/demo"
    data_dir: str = "out/data/fashion_mnist"
    fmnist_dir: str = "/usr/share/datasets/fashion-mnist"
    sweep_ratios: tuple = (0.25, 0.5, 0.75)
    extra_flags: tuple = ()

    def __post_init__(self):
        if self.method not in methods.METHODS:
            raise ValueError(
                f"method must be one of {list(methods.METHODS)}. Received: method={self.method!r}"
            )
        bad = [r for r in self.sweep_ratios if not (is_number(r) and 0 <= r < 1)]
        if bad:  # before the baseline trains, not at the sweep after it
            raise ValueError(
                f"sweep_ratios must be numbers in [0, 1). Received: "
                f"sweep_ratios={list(self.sweep_ratios)!r}"
            )


def _command(module, args):
    return [sys.executable, "-m", module, *args]


def _run(step, module, args, log=print):
    """Runs one step, output streamed through; raises naming the step if it fails."""
    cmd = _command(module, args)
    log(f"\n=== {step}\n$ {shlex.join(cmd[2:] if cmd[1] == '-m' else cmd)}", flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, check=False)
    if done.returncode:
        raise RuntimeError(f"demo step {step!r} failed (exit code {done.returncode}).")
    log(f"=== {step}: done in {time.monotonic() - start:.0f}s", flush=True)


def _read(path):
    with open(path) as f:
        return json.load(f)


def _width(run_dir):
    """The width multiplier the run in `run_dir` trained with (its run.json)."""
    return _read(os.path.join(run_dir, "run.json"))["config"]["model"]["width_multiplier"]


def check_paths(config):
    """Every path the demo reads or writes, before its first step (`training.paths`)."""
    for name in ("demo_train.cfg", "demo_compress.cfg"):
        if not os.path.exists(os.path.join("configs", name)):
            raise FileNotFoundError(
                f"configs/{name} not found: run the demo from the repository root."
            )
    paths.output_directory("output_dir", config.output_dir)
    writes = {"baseline": paths.DIRECTORY, config.method: paths.DIRECTORY}
    writes.update({"export": paths.DIRECTORY, "sweep.json": paths.FILE})
    writes.update({"compression.png": paths.FILE, "summary.json": paths.FILE})
    paths.outputs_inside("output_dir", config.output_dir, writes)
    if os.path.exists(os.path.join(config.data_dir, "manifest.json")):
        paths.input_path("data_dir", config.data_dir)
    else:  # converted first
        paths.output_directory("data_dir", config.data_dir)
        paths.input_path("fmnist_dir", config.fmnist_dir)


def run_demo(config, log=print):
    """Runs the demo; returns the summary dict (also written to output_dir/summary.json)."""
    began = time.monotonic()
    check_paths(config)
    out = config.output_dir
    data = config.data_dir
    data_flags = [
        f"--train_data={data}/train-*.tfrecord",
        f"--test_data={data}/test-*.tfrecord",
    ]
    if not os.path.exists(os.path.join(data, "manifest.json")):
        _run(
            "Fashion-MNIST -> TFRecords",
            "tfrecords_tools.fashion_mnist",
            [f"--fmnist_dir={config.fmnist_dir}", f"--output_dir={data}", "--num_shards=4"],
            log,
        )
    baseline = os.path.join(out, "baseline")
    _run(
        "train the baseline",
        "tfcompress.scripts.train",
        [
            "--flagfile=configs/demo_train.cfg",
            *data_flags,
            f"--checkpoint={baseline}",
            *config.extra_flags,
        ],
        log,
    )
    compressed = os.path.join(out, config.method)
    _run(
        f"compress it ({config.method})",
        "tfcompress.scripts.compress",
        [
            "--flagfile=configs/demo_compress.cfg",
            *data_flags,
            f"--initialize={baseline}",
            f"--checkpoint={compressed}",
            f"--method={config.method}",
            *METHOD_FLAGS[config.method],
            *config.extra_flags,
        ],
        log,
    )
    criterion = SWEEP_CRITERION.get(config.method, "l1_filter")
    sweep_file = os.path.join(out, "sweep.json")
    _run(
        f"one-shot {criterion} sweep of the baseline (BatchNorm recalibrated, no fine-tuning)",
        "tfcompress.scripts.evaluate",
        [
            f"--checkpoint={baseline}",
            data_flags[1],
            f"--method={criterion}",
            f"--prune_ratios={','.join(str(r) for r in config.sweep_ratios)}",
            f"--recalibrate_data={data}/train-00000-*.tfrecord",
            f"--output={sweep_file}",
        ],
        log,
    )
    export_dir = os.path.join(out, "export")
    _run(
        "export the compact model (SavedModel, TFLite, .keras, report)",
        "tfcompress.scripts.export",
        [
            f"--checkpoint={compressed}",
            f"--output_dir={export_dir}",
            f"--calibration_data={data}/test-*.tfrecord",
        ],
        log,
    )
    return _summarize(config, baseline, compressed, sweep_file, export_dir, began, log)


def _summarize(config, baseline, compressed, sweep_file, export_dir, began, log):
    base, comp, sweep = (
        _read(os.path.join(baseline, "result.json")),
        _read(os.path.join(compressed, "result.json")),
        _read(sweep_file),
    )
    exported = _read(os.path.join(export_dir, "export.json"))
    base_point = (base["params"], base["test"]["accuracy"])
    comp_point = (comp["nonzero_params_after"], comp["test"]["accuracy"])
    plot = compression_plot(
        os.path.join(config.output_dir, "compression.png"),
        base_point,
        {f"{config.method} + fine-tuning": comp_point},
        sweep=[(p["nonzero_params"], p["accuracy"]) for p in sweep.get("sweep", [])],
        sweep_label=f"one-shot {SWEEP_CRITERION.get(config.method, 'l1_filter')} + BatchNorm "
        "recalibration, no fine-tuning",
        metric=f"test accuracy ({comp['test']['examples']:,} Fashion-MNIST test images)",
        title=f"Fashion-MNIST, VGG-16-BN x{_width(baseline):g}: {config.method}",
    )
    summary = {
        "method": config.method,
        "baseline": {"params": base_point[0], "accuracy": base_point[1]},
        "compressed": {
            "params": comp_point[0],
            "accuracy": comp_point[1],
            "compression_ratio": comp["compression_ratio"],
            "mac_ratio": comp["mac_ratio"],
        },
        "sweep": [
            {"ratio": p["ratio"], "params": p["nonzero_params"], "accuracy": p["accuracy"]}
            for p in sweep.get("sweep", [])
        ],
        "saved_model": exported.get("saved_model"),
        "tflite": exported.get("tflite"),
        "plot": plot,
        "seconds": round(time.monotonic() - began, 1),
    }
    with open(os.path.join(config.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    log("\n=== summary")
    log(f"baseline      {base_point[0]:>9,} parameters  accuracy {base_point[1]:.4f}")
    for p in summary["sweep"]:
        log(f"one-shot {p['ratio']:.2f} {p['params']:>9,} parameters  accuracy {p['accuracy']:.4f}")
    log(
        f"{config.method:<13} {comp_point[0]:>9,} parameters  accuracy {comp_point[1]:.4f}  "
        f"({comp['compression_ratio']:.2f}x fewer parameters, {comp['mac_ratio']:.2f}x fewer MACs)"
    )
    tflite = exported.get("tflite") or {}
    log(f"SavedModel    {exported.get('saved_model')}")
    log(f"TFLite        {tflite.get('path')} ({tflite.get('size_bytes', 0):,} bytes)")
    log(f"plot          {plot}")
    log(f"total         {summary['seconds']:.0f}s")
    for line in next_steps(config.data_dir):
        log(line)
    return summary


# The recipes a demo user runs next on the same converted data: (what, flagfile).
NEXT_RECIPES = (
    ("Deep Compression (prune, share weights, Huffman file) of LeNet-5, ~42x smaller",
     "configs/lenet5_fmnist_deep_compression.cfg"),
    ("the same on LeNet-300-100", "configs/lenet_300_100_fmnist_deep_compression.cfg"),
)


def next_steps(data_dir):
    """The closing lines: each next recipe as the command to run on `data_dir`'s records."""
    lines = ["\n=== next"]
    for what, flagfile in NEXT_RECIPES:
        lines.append(f"# {what}")
        lines.append(" ".join([
            "python", "-m", "tfcompress.scripts.compress", f"--flagfile={flagfile}",
            f"--train_data={data_dir}/train-*.tfrecord",
            f"--test_data={data_dir}/test-*.tfrecord",
        ]))  # fmt: skip
    return lines
