"""TFMOT's `prune_low_magnitude` on the benchmark network, in its own process.

Importing tensorflow_model_optimization switches the whole process to tf-keras (it sets
TF_USE_LEGACY_KERAS=1) and TFMOT rejects Keras 3 models, so `fmnist_methods.py` runs this
script as a subprocess:

    python benchmarks/tfmot_baseline.py --inputs run.npz --out tfmot.json --workdir DIR

`run.npz` holds the data, the baseline weights per layer and the settings; the script
rebuilds the network in tf-keras, prunes and fine-tunes it with the same polynomial
schedule, sparsity and epochs as tfcompress's `magnitude`, strips it, and writes accuracy,
parameters, SavedModel sizes (BatchNorm folded, as the tfcompress rows are exported) and
latency at batch 64 as JSON.
"""

import argparse
import gzip
import io
import json
import os
import tarfile
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:  # the `tfmot` extra; checked first, so a missing one fails before TensorFlow loads
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
except ImportError as e:
    raise ImportError(
        "benchmarks/tfmot_baseline.py needs tensorflow-model-optimization and tf-keras: "
        f"pip install 'tfcompress[tfmot]' ({e})"
    ) from e
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def build_net(widths, num_classes=10, batchnorm=True):
    """The benchmark network in tf-keras; without `batchnorm`, convs carry biases (the
    folded export form)."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for i, filters in enumerate(widths):
        x = keras.layers.Conv2D(int(filters), 3, padding="same", use_bias=not batchnorm,
                                name=f"conv{i}")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        if i in (1, 3):
            x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


def fold_batchnorm(model, widths):
    """`model` with each BatchNorm folded into its conv, as `tfcompress.export`'s
    `fold_batchnorm=True` exports the tfcompress rows (same network, same arithmetic)."""
    folded = build_net(widths, batchnorm=False)
    for i in range(len(widths)):
        bn = model.get_layer(f"bn{i}")
        gamma, beta, mean, var = (w.numpy().astype(np.float64) for w in bn.weights)
        a = gamma / np.sqrt(var + bn.epsilon)
        kernel = model.get_layer(f"conv{i}").kernel.numpy().astype(np.float64)
        folded.get_layer(f"conv{i}").set_weights(
            [(kernel * a).astype(np.float32), (beta - mean * a).astype(np.float32)])
    folded.get_layer("logits").set_weights(model.get_layer("logits").get_weights())
    return folded


def sizes(model, workdir):
    path = os.path.join(workdir, "tfmot_saved_model")
    tf.saved_model.save(model, path)
    raw = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname="tfmot_saved_model")
    return raw, len(gzip.compress(buf.getvalue(), compresslevel=9))


def latency(model, rounds, calls=10):
    x = tf.constant(np.random.default_rng(0).uniform(size=(64, 28, 28, 1)), tf.float32)
    fn = tf.function(lambda t: model(t, training=False))
    for _ in range(3):
        fn(x).numpy()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(x)
        fn(x).numpy()
        samples.append((time.perf_counter() - t0) / (calls + 1))
    return float(np.min(samples))


def recalibrate_bn(model, x, batch_size, steps=20, seed=1):
    """The same adaptive-BN pass the tfcompress rows get (cumulative batch statistics)."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [bn.momentum for bn in bns]
    idx = np.random.default_rng(seed).permutation(len(x))
    for i in range(min(steps, len(x) // batch_size)):
        for bn in bns:
            bn.momentum = 1.0 - 1.0 / (i + 1)
        model(x[idx[i * batch_size:(i + 1) * batch_size]], training=True)
    for bn, m in zip(bns, momenta):
        bn.momentum = m


def set_weights_from(model, data):
    """Loads `data`'s `w/<layer>/<i>` arrays (an `.npz` the parent process wrote) into
    `model`'s layers of those names; layers without arrays keep their weights."""
    for layer in model.layers:
        if f"w/{layer.name}/0" in data:
            n = sum(1 for k in data.files if k.startswith(f"w/{layer.name}/"))
            layer.set_weights([data[f"w/{layer.name}/{i}"] for i in range(n)])


def read_inputs(description, argv=None):
    """`(args, data, settings)` of a baseline run: its `--inputs` (the `.npz` the parent
    process wrote), `--out` and `--workdir`; the settings' seed is set."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    data = np.load(args.inputs, allow_pickle=False)
    settings = json.loads(str(data["settings"]))
    tf.keras.utils.set_random_seed(settings["seed"])
    return args, data, settings


def main():
    args, data, settings = read_inputs(__doc__.splitlines()[0])
    model = build_net(settings["widths"])
    set_weights_from(model, data)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=settings["sparsity"], begin_step=0,
        end_step=settings["end_step"], frequency=settings["frequency"])
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(
        optimizer=keras.optimizers.Adam(settings["lr"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    pruned.fit(data["x_train"], data["y_train"], batch_size=settings["batch_size"],
               epochs=settings["epochs"], verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    train_seconds = time.perf_counter() - t0
    final = tfmot.sparsity.keras.strip_pruning(pruned)
    recalibrate_bn(final, data["x_train"], settings["batch_size"])
    logits = final.predict(data["x_test"], batch_size=500, verbose=0)
    kernels = [w for layer in final.layers for w in layer.weights if "kernel" in w.name]
    export = settings.get("export", True)
    raw, gz = sizes(fold_batchnorm(final, settings["widths"]), args.workdir) if export else (
        None, None)
    result = {
        "accuracy": float(np.mean(logits.argmax(-1) == data["y_test"])),
        "params": int(final.count_params()),
        "nonzero_params": int(sum(np.count_nonzero(w.numpy()) for w in final.weights)),
        "kernel_sparsity": float(1 - sum(np.count_nonzero(k.numpy()) for k in kernels)
                                 / sum(int(np.prod(k.shape)) for k in kernels)),
        "saved_model_bytes": raw,
        "saved_model_gz_bytes": gz,
        "latency_s": latency(final, settings["latency_rounds"]) if export else None,
        "train_seconds": train_seconds,
        "keras": keras.__version__,
        "tfmot": tfmot.__version__ if hasattr(tfmot, "__version__") else "0.8.x",
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
