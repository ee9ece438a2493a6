"""Training-step cost of each method's wrapped model relative to the plain model.

    python benchmarks/overhead.py            # batch 64, full-width benchmark network
    python benchmarks/overhead.py --quick    # fewer rounds

For each method the network is wrapped, its masks are put in a pruned state (half the
channels / weights masked; soft top-k in its soft phase), and it trains on real
Fashion-MNIST batches, one compiled training step (forward, loss and penalties, gradients,
Adam update) per call. The models take turns step by step in a new random order each
turn, and each time is divided by the plain model's time in the same turn (load from other
processes cancels out); the ratio reported is the median of those. Two numbers per method:

- step: the training step alone;
- with callback: the step plus the method's callback hooks around it (Taylor folds its
  scores each batch, soft top-k sets its temperature).

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
import tensorflow as tf  # noqa: E402

import tfcompress as tfc  # noqa: E402
from tfcompress import callbacks as cb  # noqa: E402
from tfcompress import schedules  # noqa: E402
from tfcompress.layers import SoftTopKMask  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = 1.05
FAR = 10**9  # a pruning step the run never reaches: the callback only does its per-batch work


def prepared(model, method):
    """`(wrapped model, its pruning callback)` with the masks in a pruned state."""
    if method == "plain":
        return model, None
    options = {"penalty": 1e-4} if method == "slimming" else {}
    masked = tfc.wrap(model, method, **options)
    if method == "magnitude":
        tfc.pruners.prune_weights(masked, ratio=0.5)
        return masked, cb.MagnitudePruning(schedules.OneShot(0.5, step=FAR))
    if method == "soft_topk":
        for mask in masked.layers:
            if isinstance(mask, SoftTopKMask):
                mask.keep.assign(float(max(1, mask.units // 2)))
        return masked, cb.SoftTopK(schedules.ACoSPTemperature(0.5, ending_epoch=FAR))
    # taylor's scores need training: its masks are set by l1_filter, on purpose
    tfc.prune(masked, 0.5, criterion="l1_filter" if method == "taylor" else None)
    return masked, cb.StructuredPruning(schedules.OneShot(0.5, step=FAR), method=method)


def train_step(model):
    """A compiled training step (forward, loss + penalties, gradients, Adam update)."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        variables = model.trainable_variables
        model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


def run(rounds=7, steps=40, batch_size=64, width=1.0):
    """Every step of every model is timed; models take turns step by step (a new random
    order each step), and each model's time is compared with the plain model's time in
    the same turn, so load from other processes cancels out of the ratio."""
    cfg = setup.Config(n_train=steps * batch_size, n_test=10)
    x, y = setup.load_data(cfg)[:2]
    batches = [(tf.constant(x[i:i + batch_size]), tf.constant(y[i:i + batch_size]))
               for i in range(0, len(x), batch_size)]
    base = setup.build_net(width)
    methods = ["plain", "magnitude", "l1_filter", "taylor", "slimming", "soft_topk"]
    entries = {}
    for method in methods:
        model, callback = prepared(base, method)
        setup.compile_model(model, 1e-3)
        step = train_step(model)
        for xb, yb in batches[:3]:
            step(xb, yb).numpy()  # trace, build the optimizer, warm up
        if callback is not None:
            callback.set_model(model)
            callback.set_params({"epochs": 1, "steps": len(batches), "verbose": 0})
            callback.on_train_begin()
        entries[method] = (step, callback)
    rng = np.random.default_rng(0)
    times = {(m, cb_on): [] for m in methods for cb_on in (False, True)}
    for _ in range(rounds):
        for i, (xb, yb) in enumerate(batches):
            for j in rng.permutation(2 * len(methods)):
                method, with_cb = methods[j // 2], bool(j % 2)
                step, callback = entries[method]
                use_cb = with_cb and callback is not None
                t0 = time.perf_counter()
                if use_cb:
                    callback.on_train_batch_begin(i)
                step(xb, yb).numpy()
                if use_cb:
                    callback.on_train_batch_end(i)
                times[(method, with_cb)].append(time.perf_counter() - t0)
    rows = []
    for method in methods:
        row = {"method": method}
        for with_cb, key in ((False, "step"), (True, "with_callback")):
            t = np.array(times[(method, with_cb)])
            ref = np.array(times[("plain", with_cb)])
            row[f"{key}_ms"] = 1000 * float(np.median(t))
            row[f"{key}_ratio"] = float(np.median(t / ref))  # paired, turn by turn
        rows.append(row)
    return {"batch_size": batch_size, "rounds": rounds, "steps_per_round": len(batches),
            "width": width, "target": TARGET, "rows": rows}


def markdown(result):
    lines = ["| method | step ms | step ratio | with callback ms | with callback ratio | "
             f"step ratio <= {TARGET} |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['method']} | {r['step_ms']:.1f} | {r['step_ratio']:.3f} | "
            f"{r['with_callback_ms']:.1f} | {r['with_callback_ratio']:.3f} | "
            f"{'yes' if r['step_ratio'] <= TARGET else 'no'} |")
    lines.append("")
    lines.append(f"Command: `{result['command']}`; batch {result['batch_size']}, "
                 f"{result['rounds']} rounds of {result['steps_per_round']} steps, the models "
                 "taking turns step by step; ratios are medians of same-turn ratios.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    result = run(rounds=2 if args.quick else 5, steps=20 if args.quick else 30)
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
