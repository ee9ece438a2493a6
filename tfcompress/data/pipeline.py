"""``build_dataset``: sharded GZIP TFRecords -> batched, augmented model inputs.

    ds = build_dataset("out/fmnist/train-*.tfrecord", "classification", 128, training=True)
    model.fit(ds, epochs=3)

Each element is a tuple ``(image, target)``; with batch size ``B`` and
``output_size = (H, W)``:

- ``image``: float32 ``[B, H, W, C]`` in ``[0, 1]`` (exactly ``float32(uint8) / 255``), NHWC.
- classification: ``target`` = int32 ``[B]`` class index.
- segmentation: ``target`` = int32 ``[B, H, W]`` class index per pixel, 255 = ignore
  (void labels and pixels padded in by augmentation).
- detection: ``target`` = dict of

  - ``boxes`` float32 ``[B, max_boxes, 4]`` normalised ``[ymin, xmin, ymax, xmax]``,
  - ``classes`` int32 ``[B, max_boxes]`` in ``0..C-1``, ``-1`` on padding rows,
  - ``difficult`` int32 ``[B, max_boxes]`` (VOC difficult flag, 0 on padding),
  - ``num_boxes`` int32 ``[B]`` (valid rows come first).

All shapes are static (``drop_remainder`` defaults to ``training``; the last eval batch may be
smaller). ``output_size`` and ``C`` default to those of the first record.

Pipeline: list shards (shuffled when training) -> ``interleave`` of ``TFRecordDataset``s
(parallel, ``cycle_length`` files, one record from each in turn) -> ``shuffle`` (training)
-> parallel decode + parse (augmentation when training, seeded per element with a stateless
seed) -> ``batch`` -> ``prefetch(AUTOTUNE)``. With ``training=False`` and at most
``cycle_length`` shards the records come back in the order they were converted.
``deterministic=True`` with a ``seed`` gives the same elements, in the same order, every run.
"""

import tensorflow as tf

from tfcompress.data import decode, parse, schema

AUTOTUNE = tf.data.AUTOTUNE


def list_shards(file_pattern):
    """Sorted files matching a pattern (or a list of patterns); raises naming the pattern."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"No TFRecord file matches file_pattern={file_pattern!r}")
    return files


def first_example(files, compression="GZIP"):
    """The first record of the first file, as a ``tf.train.Example``; raises naming the file."""
    try:
        raw = next(iter(tf.data.TFRecordDataset(files[0], compression_type=compression)))
    except StopIteration as e:
        raise ValueError(f"{files[0]} holds no record") from e
    except tf.errors.OpError as e:
        raise ValueError(
            f"Cannot read record 0 of {files[0]} (compression={compression!r}): {e.message}"
        ) from e
    return tf.train.Example.FromString(raw.numpy())


def image_shape_of(example):
    """``(height, width, channels)`` of a record."""
    feature = example.features.feature
    return tuple(
        int(feature[k].int64_list.value[0])
        for k in (schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH, schema.IMAGE_CHANNELS)
    )


def build_dataset(
    file_pattern,
    task,
    batch_size,
    training,
    *,
    output_size=None,
    channels=None,
    max_boxes=100,
    parser=None,
    shuffle_buffer=2048,
    cycle_length=16,
    seed=None,
    deterministic=False,
    compression="GZIP",
    repeat=False,
    drop_remainder=None,
    skip_corrupt=False,
):
    """Builds the input pipeline of one split (see the module docstring for the elements).

    Args:
      file_pattern: glob (or list of globs) of TFRecord shards written by ``tfrecords_tools``.
      task: ``"classification"``, ``"segmentation"`` or ``"detection"``.
      batch_size: examples per batch.
      training: shuffle + augment (``parser.parse_train``) vs. ordered ``parser.parse_eval``.
      output_size: ``(H, W)`` of the images yielded; default: the first record's size.
      channels: 1 or 3; default: the first record's channel count.
      max_boxes: detection rows per example after padding (more objects are truncated).
      parser: a ``parse.*Parser``; default ``parse.make_parser(task, output_size)``.
      shuffle_buffer: examples in the shuffle buffer (training only).
      cycle_length: shards read concurrently.
      seed: seeds file order, shuffling and augmentation.
      deterministic: keep element order fixed despite parallelism (slightly slower).
      compression: ``"GZIP"`` (what the converters write) or ``""``.
      repeat: repeat forever (after shuffling, so each epoch is a new permutation).
      drop_remainder: drop the last partial batch; default ``training``.
      skip_corrupt: drop records that fail to decode instead of raising.
    """
    schema.check_task(task)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    files = list_shards(file_pattern)
    if output_size is None or channels is None:
        height, width, record_channels = image_shape_of(first_example(files, compression))
        output_size = output_size or (height, width)
        channels = channels or record_channels
    if parser is None:
        kwargs = {"max_boxes": max_boxes} if task == schema.DETECTION else {}
        parser = parse.make_parser(task, output_size, **kwargs)
    drop_remainder = training if drop_remainder is None else drop_remainder

    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=min(cycle_length, len(files)),
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic or not training,
    )
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
        ds = tf.data.Dataset.zip((ds, seeds))

        def parse_fn(serialized, element_seed):
            return parser.parse_train(decode.decode(serialized, task, channels), element_seed)

    else:
        if repeat:
            ds = ds.repeat()

        def parse_fn(serialized):
            return parser.parse_eval(decode.decode(serialized, task, channels))

    ds = ds.map(parse_fn, num_parallel_calls=AUTOTUNE, deterministic=deterministic or None)
    if skip_corrupt:
        ds = ds.ignore_errors()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = bool(deterministic) or not training
    return ds.prefetch(AUTOTUNE).with_options(options)
