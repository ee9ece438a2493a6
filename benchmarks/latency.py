"""CPU latency of exported SavedModels at batch 64, measured turn by turn.

    python benchmarks/latency.py benchmarks/results/fmnist_methods.json WORKDIR

Every model is called through its serving signature; the models take turns call by call
in a new random order each turn, and each model's speedup is the median over turns of
(reference time / model time) in the same turn, so load from other processes cancels out.
The command form re-measures the SavedModels a `fmnist_methods.py` run left in WORKDIR
and re-renders its JSON / Markdown / plot.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def _serving(path):
    fn = tf.saved_model.load(path).signatures["serving_default"]
    (name,) = fn.structured_input_signature[1]
    return lambda x: next(iter(fn(**{name: x}).values())).numpy()


def measure(paths, reference="baseline", batch_size=64, turns=200, seed=0):
    """`{name: (median seconds per batch, paired speedup over reference)}`."""
    x = tf.constant(np.random.default_rng(seed).uniform(size=(batch_size, 28, 28, 1)),
                    tf.float32)
    fns = {name: _serving(path) for name, path in paths.items()}
    for fn in fns.values():
        for _ in range(3):
            fn(x)
    names = list(fns)
    times = {name: [] for name in names}
    rng = np.random.default_rng(seed)
    for _ in range(turns):
        for j in rng.permutation(len(names)):
            t0 = tf.timestamp()
            fns[names[j]](x)
            times[names[j]].append(float(tf.timestamp() - t0))
    ref = np.array(times[reference])
    return {name: (float(np.median(t)), float(np.median(ref / np.array(t))))
            for name, t in times.items()}


def main(result_path, workdir):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import fmnist_report

    with open(result_path) as f:
        result = json.load(f)
    paths = {}
    for row in result["rows"]:
        name = "tfmot_saved_model" if row["method"].startswith("tfmot") else row.get(
            "model", "baseline")
        paths[name] = os.path.join(workdir, name)
        row["model"] = name
    lat = measure(paths)
    for row in result["rows"]:
        row["latency_s"], row["speedup"] = lat[row["model"]]
    result["latency"] = "SavedModel serving signatures, batch 64, paired turn by turn"
    fmnist_report.derive(result["rows"])
    result["targets"] = fmnist_report.check_targets(
        result["rows"], result["config"].get("budget", "full"))
    print("wrote " + ", ".join(fmnist_report.write(result, os.path.splitext(result_path)[0])))


if __name__ == "__main__":
    main(*sys.argv[1:3])
