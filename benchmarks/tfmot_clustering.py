"""TFMOT's `cluster_weights` on a pruned LeNet, in its own process: the baseline beside
`deep_compression.py`'s weight-sharing stage.

Importing tensorflow_model_optimization switches the whole process to tf-keras
(`tfmot_baseline.py` does it, and names the `tfmot` extra when it is missing), so
`deep_compression.py` runs this script as a subprocess:

    python benchmarks/tfmot_clustering.py --inputs run.npz --out clustering.json --workdir DIR

`run.npz` holds the data, the pruned weights per layer (`w/<layer>/<i>`, exported from
tfcompress's pruned stage) and the settings (net, bits per layer, epochs, lr, batch size,
seed). The script rebuilds the net in tf-keras, loads the pruned weights, measures them
(the accuracy must equal tfcompress's pruned stage: the same net), clusters each layer's
kernel with `2**bits + 1` clusters (sparsity-preserving: TFMOT counts its zero centroid;
tfcompress stores zeros in the sparse index, so both have `2**bits` values for the
surviving weights), linear centroid initialisation (Han's, as tfcompress), fine-tunes with
the same optimizer, epochs and batch size, strips, and writes as JSON: accuracy, non-zero
parameters, distinct kernel values, bytes of the stripped model's float32 `.keras` and
of its gzip -9 (as tfcompress's pruned and shared stages are measured), and gzip -9 of its
raw float32 weights (`deep_compression_report.weights_gzip_bytes`: no file format, the same
measure in both processes).
"""

import gzip
import json
import os
import time

try:  # the tf-keras switch and the `tfmot` extra's check, in one place
    import tfmot_baseline as base
except ImportError as e:
    raise ImportError(f"benchmarks/tfmot_clustering.py: {e}") from e
import deep_compression_report as report  # noqa: E402
import numpy as np  # noqa: E402

keras, tfmot = base.keras, base.tfmot


def lenet_300_100(num_classes=10):
    """`tfcompress.models.lenet_300_100` in tf-keras (same layer names and shapes)."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate((300, 100), start=1):
        x = keras.layers.Dense(units, name=f"fc{i}")(x)
        x = keras.layers.ReLU(name=f"fc{i}_relu")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


def lenet5(num_classes=10):
    """`tfcompress.models.lenet5` in tf-keras (same layer names and shapes)."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for i, filters in enumerate((20, 50), start=1):
        x = keras.layers.Conv2D(filters, 5, name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(500, name="fc1")(x)
    x = keras.layers.ReLU(name="fc1_relu")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


NETS = {"lenet_300_100": lenet_300_100, "lenet5": lenet5}


def cluster(model, bits):
    """`model` with each layer named in `bits` wrapped by TFMOT's `cluster_weights`
    (`2**bits + 1` clusters, one of them TFMOT's zero centroid; linear initialisation).
    The wrappers wrap `model`'s own layers, as TFMOT's whole-model call does, so they
    start from the loaded weights."""
    init = tfmot.clustering.keras.CentroidInitialization.LINEAR

    def clone(layer):
        if layer.name not in bits:
            return layer
        return tfmot.clustering.keras.cluster_weights(
            layer,
            number_of_clusters=2 ** bits[layer.name] + 1,
            cluster_centroids_init=init,
            preserve_sparsity=True,
        )

    return keras.models.clone_model(model, clone_function=clone)


def accuracy(model, x, y):
    logits = model.predict(x, batch_size=500, verbose=0)
    return float(np.mean(logits.argmax(-1) == y))


def keras_bytes(model, workdir):
    """Bytes of `model`'s `.keras` file (no optimizer state) and of its gzip -9."""
    path = os.path.join(workdir, "tfmot_clustered.keras")
    model.save(path)  # stripped, never compiled: no optimizer state
    with open(path, "rb") as f:
        content = f.read()
    return len(content), len(gzip.compress(content, compresslevel=9))


def main():
    args, data, settings = base.read_inputs(__doc__.splitlines()[0])
    pruned = NETS[settings["net"]]()
    base.set_weights_from(pruned, data)
    x_test, y_test = data["x_test"], data["y_test"]
    pruned_accuracy = accuracy(pruned, x_test, y_test)
    clustered = cluster(pruned, settings["bits"])
    clustered.compile(
        optimizer=keras.optimizers.Adam(settings["lr"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    clustered.fit(
        data["x_train"],
        data["y_train"],
        batch_size=settings["batch_size"],
        epochs=settings["epochs"],
        verbose=0,
    )
    train_seconds = time.perf_counter() - t0
    final = tfmot.clustering.keras.strip_clustering(clustered)
    kernels = {
        layer.name: layer.get_weights()[0]
        for layer in final.layers
        if layer.name in settings["bits"]
    }
    raw, gz = keras_bytes(final, args.workdir)
    result = {
        "accuracy": accuracy(final, x_test, y_test),
        "pruned_accuracy": pruned_accuracy,
        "params": int(final.count_params()),
        "nonzero": int(sum(np.count_nonzero(w) for w in final.get_weights())),
        "distinct_nonzero_values": {n: int(np.unique(k[k != 0]).size) for n, k in kernels.items()},
        "number_of_clusters": {n: 2**b + 1 for n, b in settings["bits"].items()},
        "keras_bytes": raw,
        "keras_gzip_bytes": gz,
        "weights_gzip_bytes": report.weights_gzip_bytes(final.get_weights()),
        "train_seconds": train_seconds,
        "keras": keras.__version__,
        "tfmot": getattr(tfmot, "__version__", "0.8.x"),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
