"""``build_dataset``: sharded TFRecords -> batched, augmented model inputs.

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
(parallel, ``cycle_length`` files, one record from each in turn; when training, runs of up
to 16 records, see ``_block_length``) -> ``shuffle`` of the serialized records (training) ->
parallel decode + parse (augmentation when training, with stateless seeds drawn from
``seed``) -> ``batch`` -> ``prefetch(AUTOTUNE)``. Classification batches the serialized
records first and parses whole batches: ``parse_example`` once per batch, the cheapest
decode route the batch allows (one ``decode_raw`` for a batch of raw images of the output
size; see ``decode_classification_batch``) and ``parser.augment_batch`` once per batch
(vectorised); for small images, where per-element overhead dominates, that is several times
faster. Training on small raw images goes one step further: each shard reader parses and
decodes blocks of up to 128 records, and the shuffle holds uint8 pixels (``_decodes_first``).
``skip_corrupt`` falls back to the per-element path, so one bad record costs only
itself. ``cache`` decodes the shards once, in order, and serves later epochs from memory
(or files): shuffle, augment and batch only. With ``training=False`` and at most
``cycle_length`` shards the records come back in the order they were converted.
``deterministic=True`` with a ``seed`` gives the same elements, in the same order, every run.
"""

import functools
import os

import tensorflow as tf

from tfcompress.data import compression as compression_lib
from tfcompress.data import decode, parse, schema

AUTOTUNE = tf.data.AUTOTUNE


def list_shards(file_pattern):
    """Sorted files matching a pattern (or a list of patterns); raises naming the pattern."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"No TFRecord file matches file_pattern={file_pattern!r}")
    return files


def first_example(files, compression="auto"):
    """The first record of the first file, as a ``tf.train.Example``; raises naming the file."""
    compression = compression_lib.resolve(files[0], compression)
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


def image_format_of(example):
    """``image/format`` of a record (``b"raw"``, ``b"png"``, ``b"jpeg"``)."""
    return example.features.feature[schema.IMAGE_FORMAT].bytes_list.value[0]


def _seeds(seed):
    """Stateless seeds ``[2]``, one per element drawn (reproducible for a given ``seed``)."""
    return tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)


def _block_length(training, shuffle_buffer, cycle_length):
    """Records taken from one shard in a row: 1 for evaluation (so records come back in the
    order they were converted); when training up to 16, which spares the parallel readers a
    hand-over per record (on 2 cores ~10% less CPU per Fashion-MNIST image), while the
    shuffle buffer still holds at least 8 such runs of every shard being read."""
    if not training:
        return 1
    return max(1, min(16, shuffle_buffer // (8 * cycle_length)))


def _parse_per_element(ds, task, parser, channels, training, seed):
    """``(image, target)`` per record: decode, then ``parse_train`` / ``parse_eval``."""
    if not training:
        return ds.map(
            lambda r: parser.parse_eval(decode.decode(r, task, channels)),
            num_parallel_calls=AUTOTUNE,
        )
    return tf.data.Dataset.zip((ds, _seeds(seed))).map(
        lambda r, s: parser.parse_train(decode.decode(r, task, channels), s),
        num_parallel_calls=AUTOTUNE,
    )


_HEADER_KEYS = (
    schema.IMAGE_ENCODED,
    schema.IMAGE_FORMAT,
    schema.IMAGE_HEIGHT,
    schema.IMAGE_WIDTH,
    schema.IMAGE_CHANNELS,
)
# Batches of at most this many PNGs decode in unrolled ops rather than a tf.map_fn loop, whose
# iterations cost more than decoding a 28x28 PNG (~9 vs ~6 us of CPU).
_MAX_UNROLLED = 1024
_SOURCE_ID_SPEC = {schema.SOURCE_ID: schema.feature_spec(schema.CLASSIFICATION)[schema.SOURCE_ID]}


def decode_classification_batch(serialized, features, parser, channels, dtype=tf.float32):
    """A batch of serialized records and their parsed ``_HEADER_KEYS`` features -> ``dtype``
    ``[B, *parser.output_size, channels]``: float32 in ``[0, 1]``, or uint8 (the pixels;
    records resized to the output size are rounded to uint8).

    The cheapest route the batch allows, chosen per batch from its header features:

    - every record raw pixels of the output size: one ``decode_raw`` for the whole batch;
    - every record of the output size, none raw or JPEG: ``decode_png`` per image (unrolled
      when the batch size is static, as with ``drop_remainder``);
    - every record of the output size: ``decode.decode_record_image`` per image;
    - otherwise: per image decode and ``parser.prepare`` (resize to the output size).

    A record whose pixels disagree with its header fails on the per-image routes with an
    error naming its ``image/source_id``.
    """
    height, width = parser.output_size
    encoded = features[schema.IMAGE_ENCODED]
    pixels_spec = tf.TensorSpec([height, width, channels], tf.uint8)

    is_raw = tf.equal(features[schema.IMAGE_FORMAT], "raw")
    sized = tf.logical_and(
        tf.equal(features[schema.IMAGE_HEIGHT], height),
        tf.equal(features[schema.IMAGE_WIDTH], width),
    )
    raw = tf.reduce_all(
        sized
        & is_raw
        & tf.equal(features[schema.IMAGE_CHANNELS], channels)
        & tf.equal(tf.strings.length(encoded), height * width * channels)
    )

    def each(fn, spec=pixels_spec):
        source_id = tf.io.parse_example(serialized, _SOURCE_ID_SPEC)  # names a bad record
        return tf.map_fn(fn, {**features, **source_id}, fn_output_signature=spec)

    def exact(image):
        return tf.ensure_shape(image, [height, width, channels])

    def finish(pixels):
        return parse.to_float(pixels) if dtype == tf.float32 else pixels

    def raw_batch():
        pixels = tf.io.decode_raw(encoded, tf.uint8)
        return finish(tf.reshape(pixels, [-1, height, width, channels]))

    def png_each():
        decode_png = lambda e: exact(tf.io.decode_png(e, channels))  # noqa: E731
        batch = encoded.shape[0]
        if batch is not None and batch <= _MAX_UNROLLED:  # a static batch: no loop
            pixels = tf.stack([decode_png(e) for e in tf.unstack(encoded, batch)])
        else:
            pixels = tf.map_fn(decode_png, encoded, fn_output_signature=pixels_spec)
        return finish(pixels)

    def decode_each():
        return finish(each(lambda f: exact(decode.decode_record_image(f, channels))))

    def resize_each():
        images = each(
            lambda f: parser.prepare(decode.decode_record_image(f, channels)),
            tf.TensorSpec([height, width, channels], tf.float32),
        )
        return images if dtype == tf.float32 else tf.saturate_cast(tf.round(images * 255), dtype)

    # The per-image routes are one call of a function that is never inlined: inlined, their
    # ops would be walked on every raw batch too, as the untaken side of the tf.cond (~1 us
    # of CPU per image at 128 records a batch). Their predicates are only computed there.
    @tf.function(autograph=False, experimental_attributes={"_noinline": True})
    def per_image():
        png = tf.reduce_all(sized & ~is_raw & ~tf.io.is_jpeg(encoded))
        all_sized = tf.reduce_all(sized)
        return tf.cond(png, png_each, lambda: tf.cond(all_sized, decode_each, resize_each))

    return tf.cond(raw, raw_batch, per_image)


def _classification_batch_parser(parser, channels, dtype=tf.float32):
    """``fn(serialized [B], batch_seed=None) -> (images, labels)``: ``parse_example`` on the
    batch, ``decode_classification_batch`` to ``dtype``, and with a seed (float32 only)
    ``parser.augment_batch``."""
    spec = schema.feature_spec(schema.CLASSIFICATION)
    spec = {k: spec[k] for k in (*_HEADER_KEYS, schema.CLASS_LABEL)}

    def parse_batch(serialized, batch_seed=None):
        features = tf.io.parse_example(serialized, spec)
        labels = tf.cast(features.pop(schema.CLASS_LABEL), tf.int32)
        images = decode_classification_batch(serialized, features, parser, channels, dtype)
        images = tf.ensure_shape(images, [serialized.shape[0], *parser.output_size, channels])
        if batch_seed is not None:
            images = parser.augment_batch(images, batch_seed)
        return images, labels

    return parse_batch


def _parse_classification_batches(ds, parser, channels, training, seed):
    """Batches of serialized records -> ``(images, labels)``, augmented when ``training``."""
    if training:
        ds = tf.data.Dataset.zip((ds, _seeds(seed)))
    return ds.map(_classification_batch_parser(parser, channels), num_parallel_calls=AUTOTUNE)


# Training on raw classification images this small decodes them before the shuffle (see
# ``_decodes_first``): the shuffle buffer then holds at most this many bytes of uint8 pixels.
_DECODED_SHUFFLE_BYTES = 64 << 20
# Records a shard reader decodes at once when decoding before the shuffle: a block costs one
# parse call and one hand-over between threads, which 128 records amortise to ~0.3 us each.
_MAX_DECODE_BLOCK = 128


def _decodes_first(task, training, skip_corrupt, output_size, channels, shuffle_buffer,
                   first_record):
    """Whether ``build_dataset`` decodes classification records to uint8 pixels in blocks as
    each shard is read, and shuffles the pixels, instead of shuffling serialized records and
    decoding whole batches after the shuffle. Chosen when training on small raw images of the
    output size (``first_record()`` is; Fashion-MNIST, CIFAR): one hand-over between threads
    per block instead of per record (measured in docs/data.md). Not for PNG or JPEG, which
    decode fastest in the fixed-size batches after a shuffle, nor for large images, whose
    pixels would fill the shuffle buffer."""
    if task != schema.CLASSIFICATION or not training or skip_corrupt:
        return False
    height, width = output_size
    if shuffle_buffer * height * width * channels > _DECODED_SHUFFLE_BYTES:
        return False
    example = first_record()
    return image_format_of(example) == b"raw" and image_shape_of(example) == (
        height, width, channels)


def _decoded_blocks(files, compression, cycle_length, shuffle_buffer, deterministic, parser,
                    channels, seed):
    """``(uint8 image, label)`` examples of ``files``, file order shuffled every epoch:
    ``cycle_length`` shards read in parallel, each in blocks that are parsed and decoded at
    once (``_classification_batch_parser``; a record of another size is resized and rounded),
    so the shuffle buffer still holds at least two blocks of every shard being read."""
    block = max(1, min(_MAX_DECODE_BLOCK, shuffle_buffer // (2 * cycle_length)))
    parse_block = _classification_batch_parser(parser, channels, tf.uint8)
    ds = _records(files, compression, cycle_length, 1, deterministic, shuffle_files=True,
                  seed=seed, per_shard=lambda records: records.batch(block).map(parse_block))
    return ds.unbatch()


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
    compression="auto",
    repeat=False,
    drop_remainder=None,
    skip_corrupt=False,
    cache=False,
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
      compression: ``"GZIP"``, ``""`` (uncompressed) or ``"auto"``: detected from the
        files (all must be alike).
      repeat: repeat forever (after shuffling, so each epoch is a new permutation).
      drop_remainder: drop the last partial batch; default ``training``.
      skip_corrupt: drop records that fail to decode instead of raising.
      cache: ``False``; ``True``: keep the decoded examples in memory; or a file path
        prefix: keep them in files there (``tf.data.Dataset.cache``). The first pass reads
        and decodes the shards in order; later epochs only shuffle, augment and batch
        (for data that fits: Fashion-MNIST's 60k images take 188 MB as float32).
        Classification caches float32 images at ``output_size``, the other tasks the
        decoded records. A file cache belongs to this ``file_pattern`` and parser: delete
        it when the records change, and finish the first pass (an interrupted pass leaves
        a lock file that ``tf.data`` refuses to overwrite).
    """
    schema.check_task(task)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    files = list_shards(file_pattern)
    compression = compression_lib.resolve(files, compression)
    first = functools.cache(lambda: first_example(files, compression))
    if output_size is None or channels is None:
        height, width, record_channels = image_shape_of(first())
        output_size = output_size or (height, width)
        channels = channels or record_channels
    if parser is None:
        kwargs = {"max_boxes": max_boxes} if task == schema.DETECTION else {}
        parser = parse.make_parser(task, output_size, **kwargs)
    drop_remainder = training if drop_remainder is None else drop_remainder
    cycle_length = min(cycle_length, len(files))
    cache = _cache_path(cache)
    if cache is not None:
        records = _records(files, compression, cycle_length, 1, deterministic=True)
        ds = _cached(records, cache, task, parser, channels, skip_corrupt)
        ds = _from_decoded(ds, task, parser, batch_size, training, shuffle_buffer, seed, repeat,
                           drop_remainder)
        return _finish(ds, training, deterministic)
    if _decodes_first(task, training, skip_corrupt, output_size, channels, shuffle_buffer,
                      first):
        ds = _decoded_blocks(files, compression, cycle_length, shuffle_buffer, deterministic,
                             parser, channels, seed)
        ds = _from_decoded(ds, task, parser, batch_size, training, shuffle_buffer, seed, repeat,
                           drop_remainder)
        return _finish(ds, training, deterministic)

    ds = _records(
        files,
        compression,
        cycle_length,
        _block_length(training, shuffle_buffer, cycle_length),
        deterministic=deterministic or not training,
        shuffle_files=training,
        seed=seed,
    )
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if task == schema.CLASSIFICATION and not skip_corrupt:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = _parse_classification_batches(ds, parser, channels, training, seed)
    else:
        ds = _parse_per_element(ds, task, parser, channels, training, seed)
        if skip_corrupt:  # per element, so one bad record costs only itself
            ds = ds.ignore_errors()
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return _finish(ds, training, deterministic)


def _records(files, compression, cycle_length, block_length, deterministic, shuffle_files=False,
             seed=None, per_shard=None):
    """The serialized records of ``files``: ``cycle_length`` shards read in parallel,
    ``block_length`` elements from each in turn; with ``shuffle_files``, the file order is
    shuffled (by ``seed``) every epoch. ``per_shard(records)``: a transformation of each
    shard's records, run by its reader (elements are then what it yields)."""
    per_shard = per_shard or (lambda records: records)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return ds.interleave(
        lambda f: per_shard(tf.data.TFRecordDataset(f, compression_type=compression)),
        cycle_length=cycle_length,
        block_length=block_length,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )


def _finish(ds, training, deterministic):
    options = tf.data.Options()
    options.deterministic = bool(deterministic) or not training
    return ds.prefetch(AUTOTUNE).with_options(options)


def _cache_path(cache):
    """``build_dataset``'s ``cache`` -> ``None`` (no cache), ``""`` (memory) or a file prefix."""
    if cache is False or cache is None:
        return None
    if cache is True:
        return ""
    if isinstance(cache, (str, os.PathLike)) and os.fspath(cache):
        path = os.fspath(cache)
        parent = os.path.dirname(path) or "."
        if not tf.io.gfile.isdir(parent):
            raise FileNotFoundError(
                f"The cache directory {parent!r} does not exist. Received: cache={cache!r}"
            )
        return path
    raise ValueError(
        "cache must be False, True (in memory) or a file path prefix. "
        f"Received: cache={cache!r}"
    )


def _cached(records, cache, task, parser, channels, skip_corrupt):
    """``records`` decoded once into ``cache`` (``Dataset.cache``): for classification what
    ``parse_eval`` makes of a record, for the other tasks the decoded record."""
    if task == schema.CLASSIFICATION and not skip_corrupt:
        ds = _parse_classification_batches(records.batch(256), parser, channels, False, None)
        ds = ds.unbatch()
    elif task == schema.CLASSIFICATION:
        ds = _parse_per_element(records, task, parser, channels, False, None)
    else:
        ds = records.map(lambda r: decode.decode(r, task, channels), num_parallel_calls=AUTOTUNE)
    if skip_corrupt:
        ds = ds.ignore_errors()
    return ds.cache(cache)


def _from_decoded(ds, task, parser, batch_size, training, shuffle_buffer, seed, repeat,
                  drop_remainder):
    """Decoded (cached, or for classification parsed) examples -> batches: shuffled and
    augmented every epoch when training."""
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if task == schema.CLASSIFICATION:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if training:  # uint8 pixels (decoded before the shuffle) or float32 images (cached)
            as_float = lambda x: parse.to_float(x) if x.dtype == tf.uint8 else x  # noqa: E731
            ds = tf.data.Dataset.zip((ds, _seeds(seed))).map(
                lambda batch, s: (parser.augment_batch(as_float(batch[0]), s), batch[1]),
                num_parallel_calls=AUTOTUNE,
            )
    else:
        if training:
            ds = tf.data.Dataset.zip((ds, _seeds(seed))).map(
                parser.parse_train, num_parallel_calls=AUTOTUNE
            )
        else:
            ds = ds.map(parser.parse_eval, num_parallel_calls=AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds
