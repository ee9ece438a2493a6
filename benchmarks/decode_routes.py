"""CPU per image of ``decode_classification_batch`` on raw batches, against the floor.

    .venv/bin/python benchmarks/decode_routes.py     # ~1 minute

A batch of 128 serialized Fashion-MNIST-sized raw records, repeated, goes through one
``tf.data`` map on a single thread, three ways:

- ``floor``: ``parse_example`` of the image and label, one ``decode_raw``, no checks;
- ``library``: the header features parsed and ``decode_classification_batch`` (the route
  checks; the per-image routes as a never-inlined call, untaken on a raw batch);
- ``inlined``: the same with the per-image routes inlined, as they were before: TF then
  walks their ops on every raw batch, as the untaken side of the ``tf.cond``.

Reports microseconds of process CPU per image (best of 5 rounds, in turn) and the ratios to
the floor, measured in one run.
"""

import argparse
import os
import sys
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcompress.data import encode, parse, pipeline, reader, schema  # noqa: E402


def _serialized_batch(size=128, shape=(28, 28, 1)):
    rng = np.random.default_rng(0)
    records = [
        encode.classification_example(
            encode.encode_array(rng.integers(0, 256, shape, dtype=np.uint8), image_format="raw"),
            i % 10,
        )
        for i in range(size)
    ]
    return tf.constant(records)


def _floor(serialized):
    spec = schema.feature_spec(schema.CLASSIFICATION)
    features = tf.io.parse_example(
        serialized, {k: spec[k] for k in (schema.IMAGE_ENCODED, schema.CLASS_LABEL)}
    )
    pixels = tf.io.decode_raw(features[schema.IMAGE_ENCODED], tf.uint8)
    return parse.to_float(tf.reshape(pixels, [-1, 28, 28, 1])), features[schema.CLASS_LABEL]


_TF_FUNCTION = tf.function


def _without_noinline(func=None, **kwargs):
    """``tf.function`` that drops the ``_noinline`` attribute (the routes get inlined)."""
    attributes = dict(kwargs.pop("experimental_attributes", None) or {})
    attributes.pop("_noinline", None)
    return _TF_FUNCTION(func, **kwargs, experimental_attributes=attributes or None)


def cpu_per_image(fn, serialized, batches):
    ds = tf.data.Dataset.from_tensors(serialized).repeat(batches).map(fn)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    ds = ds.with_options(options)
    count = ds.reduce(tf.constant(0, tf.int64), lambda n, *_: n + 1)  # trace and warm up
    start = time.process_time()
    count = ds.reduce(tf.constant(0, tf.int64), lambda n, *_: n + 1)
    return (time.process_time() - start) / int(count) / int(serialized.shape[0]) * 1e6


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    serialized = _serialized_batch()
    check = reader.RecordCheck(schema.CLASSIFICATION, 1, 10,
                               reader.record_failure(["benchmark-batch"]))  # fmt: skip
    batch_parser = pipeline._classification_batch_parser(
        parse.make_parser(schema.CLASSIFICATION, (28, 28)), check)

    def parse_batch(serialized):  # keys: the records' indices, as build_dataset gives them
        return batch_parser(tf.range(tf.shape(serialized)[0], dtype=tf.int64), serialized)

    inlined = _TF_FUNCTION(parse_batch)
    with mock.patch.object(tf, "function", _without_noinline):  # traced now, routes inlined
        inlined.get_concrete_function(tf.TensorSpec(serialized.shape, tf.string))
    fns = {"floor": _floor, "library": parse_batch, "inlined": inlined}
    best = {name: float("inf") for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], cpu_per_image(fn, serialized, args.batches))
    for name, value in best.items():
        print(f"{name}: {value:.2f} us of CPU per image ({value / best['floor']:.2f}x the floor)")
    return best


if __name__ == "__main__":
    main()
