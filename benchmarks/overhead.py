"""Training-step cost of each method's wrapped model relative to the plain model.

    python benchmarks/overhead.py            # batch 64, full-width benchmark network
    python benchmarks/overhead.py --quick    # fewer rounds

For each method the network is wrapped, its masks are put in a pruned state (half the
channels / weights masked; soft top-k in its soft phase), and it trains on real
Fashion-MNIST batches with `fit`. Two numbers per method, each the per-step median of
the least disturbed of several rounds, the models run in a new random order each round
(machine load hits every model alike):

- step: the training step alone (batch begin -> batch end, no pruning callback);
- with callback: step to step, with the method's callback driving it in the same fit
  (Taylor folds its scores each batch, soft top-k sets its temperature).

Writes `benchmarks/results/overhead.{json,md}`. Target: step ratio <= 1.05.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import fmnist_setup as setup  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress import callbacks as cb  # noqa: E402
from tfcompress import schedules  # noqa: E402
from tfcompress.layers import SoftTopKMask  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = 1.05
FAR = 10**9  # a pruning step the run never reaches: the callback only does its per-batch work


class StepTimer(keras.callbacks.Callback):
    """Per-batch times: `step` (begin -> end) and `cycle` (begin -> next begin)."""

    def __init__(self):
        super().__init__()
        self.step, self.cycle, self._begin = [], [], None

    def on_train_batch_begin(self, batch, logs=None):
        now = time.perf_counter()
        if self._begin is not None:
            self.cycle.append(now - self._begin)
        self._begin = now

    def on_train_batch_end(self, batch, logs=None):
        self.step.append(time.perf_counter() - self._begin)


def prepared(model, method):
    """`(wrapped model, its pruning callback)` with the masks in a pruned state."""
    if method == "plain":
        return model, None
    options = {"penalty": 1e-4} if method == "slimming" else {}
    masked = tfc.wrap(model, method, **options)
    if method == "magnitude":
        tfc.pruners.prune_weights(masked, sparsity=0.5)
        return masked, cb.MagnitudePruning(schedules.OneShot(0.5, step=FAR))
    if method == "soft_topk":
        for mask in masked.layers:
            if isinstance(mask, SoftTopKMask):
                mask.keep.assign(float(max(1, mask.units // 2)))
        return masked, cb.SoftTopK(schedules.ACoSPTemperature(0.5, ending_epoch=FAR))
    crit = "l1_filter" if method == "taylor" else method
    tfc.prune(masked, 0.5, method=crit)
    return masked, cb.StructuredPruning(schedules.OneShot(0.5, step=FAR), method)


def run(rounds=5, steps=30, batch_size=64, width=1.0):
    cfg = setup.Config(n_train=steps * batch_size, n_test=10)
    x, y = setup.load_data(cfg)[:2]
    base = setup.build_net(width)
    methods = ["plain", "magnitude", "l1_filter", "taylor", "slimming", "soft_topk"]
    entries = {}
    for method in methods:
        model, callback = prepared(base, method)
        setup.compile_model(model, 1e-3)
        model.fit(x[:4 * batch_size], y[:4 * batch_size], batch_size=batch_size, verbose=0,
                  callbacks=[callback] if callback else [])  # trace + warm up
        entries[method] = (model, callback, {"step": [], "cycle_cb": []})
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        order = rng.permutation(len(methods))  # no model always runs after the same one
        for model, callback, samples in (entries[methods[i]] for i in order):
            for with_cb in (False, True):
                timer = StepTimer()
                cbs = [timer] + ([callback] if with_cb and callback else [])
                model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False,
                          callbacks=cbs)
                if with_cb:
                    samples["cycle_cb"].append(float(np.median(timer.cycle)))
                else:
                    samples["step"].append(float(np.median(timer.step)))
    plain = entries["plain"][2]
    rows = []
    for method, (_, _, s) in entries.items():
        step, cycle = min(s["step"]), min(s["cycle_cb"])  # the least disturbed round
        rows.append({
            "method": method, "step_ms": 1000 * step, "cycle_with_callback_ms": 1000 * cycle,
            "step_ratio": step / min(plain["step"]),
            "with_callback_ratio": cycle / min(plain["cycle_cb"]),
        })
    return {"batch_size": batch_size, "rounds": rounds, "steps_per_round": steps,
            "width": width, "target": TARGET, "rows": rows}


def markdown(result):
    lines = ["| method | step ms | step ratio | with callback ms | with callback ratio | "
             f"step ratio <= {TARGET} |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['method']} | {r['step_ms']:.1f} | {r['step_ratio']:.3f} | "
            f"{r['cycle_with_callback_ms']:.1f} | {r['with_callback_ratio']:.3f} | "
            f"{'yes' if r['step_ratio'] <= TARGET else 'no'} |")
    lines.append("")
    lines.append(f"Command: `{result['command']}`; batch {result['batch_size']}, "
                 f"{result['rounds']} interleaved rounds of {result['steps_per_round']} steps.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    result = run(rounds=3 if args.quick else 7, steps=20 if args.quick else 40)
    result["command"] = "python benchmarks/overhead.py" + (" --quick" if args.quick else "")
    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, "overhead")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
