"""Input-pipeline throughput: TFRecords (decode + augment) vs in-memory arrays vs training.

    .venv/bin/python benchmarks/input_pipeline.py --quick        # ~8 minutes on 2 cores
    .venv/bin/python benchmarks/input_pipeline.py                # larger sets, longer runs

For Fashion-MNIST (classification, 28x28x1) and a Fashion-MNIST segmentation mosaic
(64x64x1, 11 classes), each with images stored as PNG and as raw pixels, in GZIP-compressed
and uncompressed shards, and the converters' default shards read with ``cache=True``
(decoded once, then served from memory), and the raw Fashion-MNIST shards also read with
the serialized records shuffled and decoded after the shuffle (the route for PNGs and large
images; small raw images are decoded before it), all in one run:

- ``tfrecord``: images/s out of ``build_dataset(training=True)`` (read the shards, shuffle,
  parse, decode, augment, batch);
- ``in_memory``: images/s of the same parser and augmentation fed from uint8 arrays;
- ``train_step``: images/s one training step of a matching small Keras model consumes (a
  conv-BN classifier; a conv encoder-decoder), fed a fixed in-memory batch;
- ``fit_tfrecord``: images/s of ``model.fit`` fed by the TFRecord pipeline (end to end).

Targets (issue 4): ``tfrecord / train_step >= 2`` and ``in_memory / tfrecord <= 1.5``.
``tfrecord`` and ``in_memory`` are steady-state rates: a fresh iterator is warmed up (20
batches and 0.5 s; 50 and 1 s in the full run), then measured over at least 40 batches and
1 s (200 and 3 s), best of 5; the two pipelines are measured in turn, so a change in the
machine's load (it may be shared) reaches both alike. The warm-up rates (start-up: opening
shards, filling the shuffle buffer) are in the JSON as ``*_start_up``. Training rates are
the best of 3 measurements. The 1-minute load average at the start and at the end of the
run is printed with the table.
Prints a Markdown table and writes ``input_pipeline.{json,md}`` to ``--output_dir``.
"""

import argparse
import contextlib
import gc
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcompress.data import build_dataset, convert, fashion_mnist, mosaic, parse, pipeline  # noqa: E402,E501
from tfcompress.data.sources import fashion_mnist as fmnist_source  # noqa: E402
from tfcompress.data.sources import mosaic as mosaic_source  # noqa: E402

# (image format, record compression, build_dataset's cache) of each case; the converters'
# defaults are marked. SERIALIZED: the cases also read with the serialized records shuffled
# and decoded after the shuffle, the route build_dataset takes for PNGs and large images,
# instead of decoding small raw images before the shuffle (pipeline._decodes_first).
FMNIST_CASES = (("raw", "", False), ("raw", "", True), ("raw", "GZIP", False),
                ("png", "", False), ("png", "GZIP", False))
MOSAIC_CASES = (("png", "", False), ("png", "GZIP", False), ("png", "GZIP", True),
                ("raw", "", False))
SERIALIZED = (("raw", "", False), ("raw", "GZIP", False))
FMNIST_DEFAULT, MOSAIC_DEFAULT = ("raw", ""), ("png", "GZIP")


def case_name(image_format, compression, cache, default, serialized=False):
    name = f"{image_format}, {'GZIP' if compression else 'uncompressed'}"
    if (image_format, compression) == default:
        name += ", the converter's default"
    if serialized:
        name += ", serialized records shuffled"
    return name + (", cache=True" if cache else "")


@contextlib.contextmanager
def serialized_shuffle(enabled):
    """``build_dataset`` calls inside shuffle serialized records even for small raw images
    (no byte budget for decoded pixels in the shuffle buffer)."""
    budget = pipeline._DECODED_SHUFFLE_BYTES
    if enabled:
        pipeline._DECODED_SHUFFLE_BYTES = 0
    try:
        yield
    finally:
        pipeline._DECODED_SHUFFLE_BYTES = budget

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def steady_rate(dataset, cfg):
    """Images/s of a fresh iterator over ``dataset`` (which repeats) after a warm-up, and the
    rate of that warm-up (start-up: opening shards, filling the shuffle buffer, AUTOTUNE).

    The warm-up runs ``cfg["warmup"]`` batches and at least ``cfg["warmup_seconds"]``; the
    window that follows, ``cfg["batches"]`` batches and at least ``cfg["seconds"]``. The
    consumer never waits, so prefetch buffers stay drained and the window measures the
    pipeline, not a buffer filled while nobody was reading. The iterator is released before
    returning, so its threads stop before the next measurement.
    """

    def run(iterator, batches, seconds):
        start, count, done = time.perf_counter(), 0, 0
        while done < batches or time.perf_counter() - start < seconds:
            count += int(next(iterator)[0].shape[0])
            done += 1
        return count / (time.perf_counter() - start)

    iterator = iter(dataset)
    start_up = run(iterator, cfg["warmup"], cfg["warmup_seconds"])
    rate = run(iterator, cfg["batches"], cfg["seconds"])
    del iterator
    gc.collect()
    return rate, start_up


def best_in_turn(datasets, cfg):
    """``{name: (best rate, best start-up rate)}`` over ``cfg["pipeline_repeats"]`` rounds
    that measure each dataset in turn, so a change in the machine's load reaches all alike."""
    best = {name: (0.0, 0.0) for name in datasets}
    for _ in range(cfg["pipeline_repeats"]):
        for name, dataset in datasets.items():
            rate, start_up = steady_rate(dataset, cfg)
            best[name] = (max(best[name][0], rate), max(best[name][1], start_up))
    return best


def in_memory_dataset(images, targets, parser, batch_size, target_key):
    """The same parser and augmentation as ``build_dataset``, fed from uint8 arrays (and,
    like ``build_dataset``, batch-first for classification)."""
    ds = tf.data.Dataset.from_tensor_slices({"image": images, target_key: targets})
    ds = ds.shuffle(2048).repeat()
    seeds = tf.data.Dataset.random().batch(2, drop_remainder=True)
    if target_key == "label":
        ds = tf.data.Dataset.zip((ds.batch(batch_size, drop_remainder=True), seeds))
        ds = ds.map(
            lambda d, s: (parser.augment_batch(parse.to_float(d["image"]), s), d["label"]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            parser.parse_train, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False
        )
        ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def classifier(input_shape, num_classes):
    """Small conv-BN classifier (the LeNet/VGG-BN family the seeds prune)."""
    layers = keras.layers
    x = inputs = keras.Input(input_shape)
    for filters, stride in ((32, 1), (32, 2), (64, 2)):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x))


def encoder_decoder(input_shape, num_classes):
    """Small conv encoder-decoder for segmentation (AdapNet++-like in miniature)."""
    layers = keras.layers
    x = inputs = keras.Input(input_shape)
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    for filters in (32, 16):
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    return keras.Model(inputs, layers.Conv2D(num_classes, 1)(x))


def compile_model(model):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
    )
    return model


def train_step_rate(model, batch, steps):
    """Images/s of ``model.fit`` on one fixed in-memory batch (no input pipeline cost)."""
    images, targets = batch
    ds = tf.data.Dataset.from_tensors((images, targets)).repeat()
    model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # trace + warm up
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * int(images.shape[0]) / (time.perf_counter() - start)


def fit_rate(model, dataset, steps):
    """Images/s of ``model.fit`` fed by ``dataset`` (end to end)."""
    model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    batch = int(dataset.element_spec[0].shape[0])
    return steps * batch / (time.perf_counter() - start)


def best_of(repeats, measure):
    """The best of ``repeats`` measurements: other processes on a shared machine only ever
    slow a measurement down, so the maximum is the least disturbed one."""
    return max(measure() for _ in range(repeats))


def bench_case(name, pattern, task, arrays, target_key, model, batch_size, cfg, cache=False,
               serialized=False):
    """One table row; ``cfg``: batches, seconds, warmup, steps, repeats. With ``cache``, one
    epoch is drawn first, so the cache is complete and every measurement reads from it."""
    images, targets = arrays
    with serialized_shuffle(serialized):
        ds = build_dataset(pattern, task, batch_size, training=True, repeat=True, cache=cache)
    if cache:
        first_epoch = iter(ds)
        for _ in range(-(-len(images) // batch_size) + 1):
            next(first_epoch)
        del first_epoch
    parser = parse.make_parser(task, images.shape[1:3])
    memory = in_memory_dataset(images, targets, parser, batch_size, target_key)
    row = {"case": name, "batch_size": batch_size}
    for key, (rate, start_up) in best_in_turn({"tfrecord": ds, "in_memory": memory}, cfg).items():
        row[key], row[f"{key}_start_up"] = rate, start_up
    batch = next(iter(memory))
    row["train_step"] = best_of(cfg["repeats"], lambda: train_step_rate(model, batch, cfg["steps"]))
    row["fit_tfrecord"] = best_of(cfg["repeats"], lambda: fit_rate(model, ds, cfg["steps"]))
    row["tfrecord_over_train_step"] = row["tfrecord"] / row["train_step"]
    row["in_memory_over_tfrecord"] = row["in_memory"] / row["tfrecord"]
    row["fit_tfrecord_over_train_step"] = row["fit_tfrecord"] / row["train_step"]
    print(f"{name}: " + ", ".join(f"{k}={v:.2f}" for k, v in row.items() if k != "case"))
    return row


def markdown(rows, meta):
    header = (
        "| case | tfrecord img/s | in-memory img/s | train step img/s | fit on tfrecord img/s "
        "| tfrecord / train step (≥ 2) | in-memory / tfrecord (≤ 1.5) |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['case']} | {r['tfrecord']:,.0f} | {r['in_memory']:,.0f} | {r['train_step']:,.0f} "
        f"| {r['fit_tfrecord']:,.0f} | {r['tfrecord_over_train_step']:.2f} "
        f"| {r['in_memory_over_tfrecord']:.2f} |"
        for r in rows
    ]
    return f"{meta}\n\n{header}" + "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sets and short runs")
    p.add_argument("--fmnist_dir", default=fashion_mnist.DEFAULT_DIR)
    p.add_argument("--output_dir", default=RESULTS_DIR)
    p.add_argument("--batch_size", type=int, default=128)
    args = p.parse_args(argv)
    n_fmnist, n_mosaic = (20000, 2000) if args.quick else (60000, 10000)
    cfg = {"warmup": 20, "warmup_seconds": 0.5, "batches": 40, "seconds": 1.0, "steps": 20}
    if not args.quick:
        cfg.update(warmup=50, warmup_seconds=1.0, batches=200, seconds=3.0, steps=60)
    cfg["repeats"], cfg["pipeline_repeats"] = 3, 5
    keras.utils.set_random_seed(0)
    load_start = os.getloadavg()[0]

    rows = []
    with tempfile.TemporaryDirectory() as work:
        all_images, all_labels = fashion_mnist.load(args.fmnist_dir, "train")
        images, labels = all_images[:n_fmnist], all_labels[:n_fmnist]
        canvases, masks = mosaic.segmentation_mosaic(all_images, all_labels, n_mosaic, seed=0)
        model = compile_model(classifier((28, 28, 1), 10))
        cases = [(*case, False) for case in FMNIST_CASES]
        cases += [(*case, True) for case in SERIALIZED]
        for image_format, compression, cache, serialized in cases:
            out = os.path.join(work, f"fmnist_{image_format}_{compression or 'none'}")
            if not os.path.isdir(out):
                items = fmnist_source.array_items(images, labels, "fmnist/train", image_format)
                src = convert.Source(
                    "classification", {"train": items}, fashion_mnist.CLASS_NAMES
                )
                convert.convert(src, out, num_shards=8, compression=compression)
            name = case_name(image_format, compression, cache, FMNIST_DEFAULT, serialized)
            rows.append(
                bench_case(
                    f"Fashion-MNIST classification 28x28x1 ({name})",
                    os.path.join(out, "train-*.tfrecord"),
                    "classification",
                    (images[..., None], labels.astype(np.int64)),
                    "label",
                    model,
                    args.batch_size,
                    cfg,
                    cache,
                    serialized,
                )
            )
        model = compile_model(encoder_decoder((64, 64, 1), 11))
        for image_format, compression, cache in MOSAIC_CASES:
            out = os.path.join(work, f"mosaic_{image_format}_{compression or 'none'}")
            if not os.path.isdir(out):
                seg = mosaic_source.source(
                    "segmentation", {"train": n_mosaic}, args.fmnist_dir,
                    image_format=image_format,
                )
                convert.convert(seg, out, num_shards=8, compression=compression)
            name = case_name(image_format, compression, cache, MOSAIC_DEFAULT)
            rows.append(
                bench_case(
                    f"Mosaic segmentation 64x64x1 ({name})",
                    os.path.join(out, "train-*.tfrecord"),
                    "segmentation",
                    (canvases, masks),
                    "mask",
                    model,
                    32,
                    cfg,
                    cache,
                )
            )

    meta = (
        f"Input pipeline benchmark ({'--quick' if args.quick else 'full'}): "
        f"{os.cpu_count()} CPU cores, TF {tf.__version__}, Keras {keras.__version__}, "
        f"Python {platform.python_version()}; 1-minute load average {load_start:.2f} at the "
        f"start, {os.getloadavg()[0]:.2f} at the end"
    )
    table = markdown(rows, meta)
    print(table)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "input_pipeline.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    with open(os.path.join(args.output_dir, "input_pipeline.md"), "w") as f:
        f.write(table)
    return rows


if __name__ == "__main__":
    main()
