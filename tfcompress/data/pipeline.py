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
smaller). ``output_size`` and ``C`` default to those of the first record (with
``skip_corrupt``, of the first valid one).

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
Every route validates each record (``validate``: schema, header, label range,
masks, boxes) before it reaches a model; an invalid one raises naming its file and record
index, or with ``skip_corrupt`` is left out and counted in a ``SkippedRecords`` (the
per-element path, so one bad record costs only itself). Shards are framed and CRC-checked
(``integrity``) before TensorFlow reads them (see ``reader``). ``cache`` decodes the shards
once, in order, and serves later epochs from memory (or files): shuffle, augment and batch
only. With ``training=False`` and at most
``cycle_length`` shards the records come back in the order they were converted.
``deterministic=True`` with a ``seed`` gives the same elements, in the same order, every run.
"""

import functools
import os

import tensorflow as tf

from tfcompress.data import compression as compression_lib
from tfcompress.data import decode, parse, reader, schema, traced, validate
from tfcompress.data.errors import SkippedRecords, check_skipped
from tfcompress.data.graph_fn import graph_fn
from tfcompress.data.reader import first_example, image_format_of, image_shape_of, list_shards
from tfcompress.numbers import check_count, check_flag, check_int, is_int

__all__ = ["build_dataset", "first_example", "image_format_of", "image_shape_of", "list_shards"]

AUTOTUNE = tf.data.AUTOTUNE


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


# What ``build_dataset`` maps over records, as ``traced.function`` takes them: module-level
# functions of the configuration (a parser, a ``reader.RecordCheck``) -> the function mapped.


def _decoder(check):
    """``(decoded, ok)`` of a keyed record (``reader.RecordCheck.decode``)."""
    return check.decode


def _eval_parser(parser):
    return parser.parse_eval


def _train_parser(parser):
    return parser.parse_train


def _checked_eval_parser(parser, check):
    """``(image, target)`` of a keyed record: checked decode, then ``parse_eval``."""
    return lambda key, serialized: parser.parse_eval(check.decode(key, serialized)[0])


def _checked_train_parser(parser, check):
    """``(image, target)`` of a keyed record and a seed: checked decode, then
    ``parse_train``."""
    return lambda key, serialized, seed: parser.parse_train(check.decode(key, serialized)[0], seed)


def _batch_augmenter(parser):
    """``((images, labels), seed) -> (augmented float32 images, labels)``: uint8 pixels
    (decoded before the shuffle) or float32 images (cached)."""
    as_float = lambda x: parse.to_float(x) if x.dtype == tf.uint8 else x  # noqa: E731
    return lambda batch, s: (parser.augment_batch(as_float(batch[0]), s), batch[1])


def _decoded(ds, check, finite=True):
    """Keyed records -> the decoded dicts of the valid ones (``reader.RecordCheck.decode``)."""
    ds = check.map(ds, traced.function(_decoder, check), finite=finite)
    if check.skip:
        ds = ds.filter(graph_fn(lambda decoded, ok: ok))
    return ds.map(graph_fn(lambda decoded, ok: decoded))


def _parse_per_element(ds, check, parser, training, seed, finite=True):
    """``(image, target)`` per keyed record: checked decode, then ``parse_train`` /
    ``parse_eval``."""
    if check.skip:
        ds = _decoded(ds, check, finite)
        if not training:
            return ds.map(graph_fn(traced.function(_eval_parser, parser)),
                          num_parallel_calls=AUTOTUNE)  # fmt: skip
        return tf.data.Dataset.zip((ds, _seeds(seed))).map(
            graph_fn(traced.function(_train_parser, parser)), num_parallel_calls=AUTOTUNE
        )
    if not training:
        return check.map(ds, traced.function(_checked_eval_parser, parser, check), finite=finite)
    ds = tf.data.Dataset.zip((ds, _seeds(seed))).map(graph_fn(lambda kr, s: (*kr, s)))
    return check.map(ds, traced.function(_checked_train_parser, parser, check), finite=finite)


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


def decode_classification_batch(
    serialized, features, parser, channels, dtype=tf.float32, keys=None, fail=None
):
    """A batch of serialized records and their parsed ``_HEADER_KEYS`` features -> ``dtype``
    ``[B, *parser.output_size, channels]``: float32 in ``[0, 1]``, or uint8 (the pixels;
    records resized to the output size are rounded to uint8).

    The cheapest route the batch allows, chosen per batch from its header features:

    - every record raw pixels of the output size: one ``decode_raw`` for the whole batch;
    - every record of the output size, none raw or JPEG: ``decode_png`` per image (unrolled
      when the batch size is static, as with ``drop_remainder``);
    - every record of the output size: ``decode.decode_record_image`` per image;
    - otherwise: per image decode and ``parser.prepare`` (resize to the output size).

    With record ``keys`` and ``fail`` (``reader.RecordCheck.fail``), a PNG or JPEG that decodes to
    another size than its header says, or is gray or colour where its channels say
    otherwise (``validate.channels_check``), fails naming its file and record (the header
    itself is checked before, ``validate``); without, a wrong size raises naming its
    ``image/source_id``.
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
        inputs = {**features, **source_id, **({"key": keys} if fail is not None else {})}
        return tf.map_fn(fn, inputs, fn_output_signature=spec)

    def image_of(f):
        """The decoded image of record features ``f``, checked against its header."""
        image = decode.decode_record_image(f, channels)
        if fail is None:
            return image
        shape = tf.shape(image, out_type=tf.int64)
        h, w = f[schema.IMAGE_HEIGHT], f[schema.IMAGE_WIDTH]
        ok = tf.cond(
            tf.equal(shape[0], h) & tf.equal(shape[1], w),
            lambda: tf.constant(True),
            lambda: fail(f["key"], tf.strings.join([
                "image decodes to ", tf.strings.as_string(shape[0]), "x",
                tf.strings.as_string(shape[1]), " but its header says ",
                tf.strings.as_string(h), "x", tf.strings.as_string(w)])),
        )  # fmt: skip
        with tf.control_dependencies([ok]):
            return tf.identity(image)

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
        return finish(each(lambda f: exact(image_of(f))))

    def resize_each():
        images = each(
            lambda f: parser.prepare(image_of(f)),
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
        images = tf.cond(png, png_each, lambda: tf.cond(all_sized, decode_each, resize_each))
        if fail is None:
            return images
        checks = [validate.channels_check(features)]

        def first_failure():
            position, reason = validate.first_reason(checks)
            return fail(tf.reshape(keys, [-1])[position], reason)

        ok = tf.cond(validate.any_bad(checks), first_failure, lambda: tf.constant(True))
        with tf.control_dependencies([ok]):
            return tf.identity(images)

    return tf.cond(raw, raw_batch, per_image)


def _classification_batch_parser(parser, check, dtype=tf.float32):
    """``fn(keys [B], serialized [B], batch_seed=None) -> (images, labels)``: the batch's
    header features parsed and validated (``validate``: a strict ``check`` raises naming
    the first invalid record), ``decode_classification_batch`` to ``dtype``, and with a
    seed (float32 only) ``parser.augment_batch``."""
    header_keys = (*_HEADER_KEYS, schema.CLASS_LABEL)

    def parse_batch(keys, serialized, batch_seed=None):
        features = validate.parse_tolerant(serialized, schema.CLASSIFICATION, header_keys)
        checks = validate.header_checks(
            features, schema.CLASSIFICATION, check.num_classes, signatures=False
        )
        with tf.control_dependencies([check.batch_ok(keys, checks)]):
            features = {k: tf.identity(v) for k, v in features.items()}
        labels = tf.cast(features.pop(schema.CLASS_LABEL), tf.int32)
        images = decode_classification_batch(serialized, features, parser, check.channels,
                                             dtype, keys, check.fail)  # fmt: skip
        images = tf.ensure_shape(images, [serialized.shape[0], *parser.output_size, check.channels])
        if batch_seed is not None:
            images = parser.augment_batch(images, batch_seed)
        return images, labels

    return parse_batch


def _parse_classification_batches(ds, parser, check, training, seed, width, finite=True):
    """Batches (of at most ``width``) keyed records -> ``(images, labels)``, augmented when
    ``training``."""
    parse_batch = traced.function(_classification_batch_parser, parser, check, tf.float32)
    if training:
        ds = tf.data.Dataset.zip((ds, _seeds(seed))).map(graph_fn(lambda batch, s: (*batch, s)))
    return check.map(ds, parse_batch, width, finite)


# Training on raw classification images this small decodes them before the shuffle (see
# ``_decodes_first``): the shuffle buffer then holds at most this many bytes of uint8 pixels.
_DECODED_SHUFFLE_BYTES = 64 << 20
# Records a shard reader decodes at once when decoding before the shuffle: a block costs one
# parse call and one hand-over between threads, which 128 records amortise to ~0.3 us each.
_MAX_DECODE_BLOCK = 128


def _decodes_first(
    task, training, skip_corrupt, output_size, channels, shuffle_buffer, first_record
):
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
        height,
        width,
        channels,
    )


def _decoded_blocks(read, shuffle_buffer, cycle_length, parser, check):
    """``(uint8 image, label)`` examples, file order shuffled every epoch: ``cycle_length``
    shards read in parallel (``read``: ``reader.keyed_records`` with the files bound), each
    in blocks that are validated, parsed and decoded at once
    (``_classification_batch_parser``; a record of another size is resized and rounded), so
    the shuffle buffer still holds at least two blocks of every shard being read."""
    block = max(1, min(_MAX_DECODE_BLOCK, shuffle_buffer // (2 * cycle_length)))
    parse_block = graph_fn(traced.function(_classification_batch_parser, parser, check, tf.uint8))
    ds = read(block_length=1, shuffle_files=True,
              per_shard=lambda records: records.batch(block).map(parse_block))  # fmt: skip
    return ds.unbatch()


def _check_arguments(task, batch_size, output_size, num_classes, channels, max_boxes, parser,
                     shuffle_buffer, cycle_length, seed, training, repeat, deterministic,
                     skip_corrupt, skipped, drop_remainder):  # fmt: skip
    """Raises a ValueError naming the first argument of ``build_dataset`` of the wrong kind
    (``batch_size=True`` read as 1, ``num_classes=2.7`` as 2, ``cycle_length=0``,
    ``output_size=32`` or ``seed="a"`` failed in Python or TensorFlow naming no argument) or
    that would be left unread (``max_boxes`` but for detection's default parser,
    ``skipped`` without ``skip_corrupt``)."""
    counts = {"batch_size": batch_size, "shuffle_buffer": shuffle_buffer,
              "cycle_length": cycle_length}  # fmt: skip
    for name, value in counts.items():
        check_count(name, value)
    if output_size is not None:
        parse.check_output_size(output_size)
    check_count("num_classes", num_classes, none=True)
    check_count("max_boxes", max_boxes, none=True)
    check_int("seed", seed, none=True)
    if max_boxes is not None and task != schema.DETECTION:
        raise ValueError(
            f"max_boxes is read only for task='detection' (the box rows each target is "
            f"padded to); a {task} target holds no boxes. Leave max_boxes out. "
            f"Received: task={task!r}, max_boxes={max_boxes!r}"
        )
    if max_boxes is not None and parser is not None:
        raise ValueError(
            "max_boxes is read by the default parser only; the parser given pads to its "
            "own max_boxes (parse.DetectionParser(output_size, max_boxes=...)). Give it "
            f"there. Received: max_boxes={max_boxes!r}, parser={parser!r}"
        )
    if channels is not None and not (is_int(channels) and channels in (1, 3)):
        raise ValueError(f"channels must be 1, 3 or None. Received: channels={channels!r}")
    flags = {"training": training, "repeat": repeat, "deterministic": deterministic,
             "skip_corrupt": skip_corrupt}  # fmt: skip
    for name, value in flags.items():
        check_flag(name, value)
    check_skipped(skip_corrupt, skipped)
    if drop_remainder is not None:
        check_flag("drop_remainder", drop_remainder)


def build_dataset(
    file_pattern,
    task,
    batch_size,
    training,
    *,
    output_size=None,
    channels=None,
    num_classes=None,
    max_boxes=None,
    parser=None,
    shuffle_buffer=2048,
    cycle_length=16,
    seed=None,
    deterministic=False,
    compression="auto",
    repeat=False,
    drop_remainder=None,
    skip_corrupt=False,
    skipped=None,
    cache=False,
):
    """Builds the input pipeline of one split (see the module docstring for the elements).

    Every record is validated before it reaches the model (``validate``): the schema's
    features present with their types, the image decoding to its header's size, labels in
    ``[0, num_classes)`` (checked on the stored int64, before the cast to int32), masks
    stored as PNG with ids in ``[0, num_classes)`` or 255 and the image's size, detection
    boxes with a class each, finite, in ``[0, 1]`` and ordered. Shards are framed and
    CRC-checked first (``integrity.check_shards``), also against the manifest's counts.

    Args:
      file_pattern: glob (a ``str`` or ``pathlib.Path``), or a list of globs, of TFRecord
        shards written by ``tfrecords_tools``.
      task: ``"classification"``, ``"segmentation"`` or ``"detection"``.
      batch_size: examples per batch.
      training: shuffle + augment (``parser.parse_train``) vs. ordered ``parser.parse_eval``.
      output_size: ``(H, W)`` of the images yielded (a tuple, list or 1-D array of two
        integers >= 1); default: the first record's size (with ``skip_corrupt``, the first
        valid record's).
      channels: 1 or 3; default: the first record's channel count (likewise).
      num_classes: classes of the labels; default: the ``num_classes`` of the shards'
        ``manifest.json``; without either, labels need only be in ``[0, 2**31)``.
      max_boxes: detection only: box rows per example after padding (more objects are
        truncated); default: the default parser's, 100. Refused for the other tasks and
        with ``parser`` (give it to ``parse.DetectionParser`` there).
      parser: a ``parse.*Parser``; default ``parse.make_parser(task, output_size)``.
      shuffle_buffer: examples in the shuffle buffer (training only).
      cycle_length: shards read concurrently.
      seed: an integer (or None): seeds file order, shuffling and augmentation.
      deterministic: keep element order fixed despite parallelism (slightly slower).
      compression: ``"GZIP"``, ``""`` (uncompressed) or ``"auto"``: detected from the
        files (all must be alike).
      repeat: repeat forever (after shuffling, so each epoch is a new permutation).
      drop_remainder: drop the last partial batch; default ``training``.
      skip_corrupt: ``False``: an invalid record raises ``InvalidArgumentError`` (a
        damaged shard ``CorruptInputError``, when this is called) whose message holds
        ``Corrupt record in {path}: record {index}: {reason}``. ``True``: invalid and
        damaged records are left out, each counted into ``skipped`` (and logged); the
        good records all come out.
      skipped: the ``errors.SkippedRecords`` that counts what ``skip_corrupt`` left out
        (damaged records when this is called, invalid ones as they are read); pass one to
        read its ``count``, ``summary()`` or ``to_json()`` after the run. Default: a new
        one (the skips are still logged, to stderr as the pipeline meets them). Refused
        without ``skip_corrupt=True``, which is what it counts.
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
    _check_arguments(task, batch_size, output_size, num_classes, channels, max_boxes, parser,
                     shuffle_buffer, cycle_length, seed, training, repeat, deterministic,
                     skip_corrupt, skipped, drop_remainder)  # fmt: skip
    files = list_shards(file_pattern)
    compression = compression_lib.resolve(files, compression)
    if skip_corrupt and skipped is None:
        skipped = SkippedRecords()
    damaged = reader.checked_shards(files, compression, task, skip_corrupt, skipped)
    if num_classes is None:
        num_classes = reader.manifest_num_classes(files)
    first = functools.cache(
        lambda: first_example(files, compression, task, damaged, skip=skip_corrupt,
                              channels=channels, num_classes=num_classes)  # fmt: skip
    )
    if output_size is None or channels is None:
        height, width, record_channels = image_shape_of(first(), files[0])
        output_size = (height, width) if output_size is None else output_size
        channels = channels or record_channels
    check = reader.RecordCheck.make(files, compression, damaged, task, channels, num_classes,
                                    skipped)  # fmt: skip
    if parser is None:
        kwargs = {} if max_boxes is None else {"max_boxes": max_boxes}  # detection only
        parser = parse.make_parser(task, output_size, **kwargs)
    drop_remainder = training if drop_remainder is None else drop_remainder
    cycle_length = min(cycle_length, len(files))
    read = functools.partial(reader.keyed_records, files, compression, cycle_length,
                             damaged=damaged, seed=seed)  # fmt: skip
    cache = _cache_path(cache)
    if cache is not None:
        ds = _cached(read(block_length=1, deterministic=True), cache, parser, check)
        ds = _from_decoded(
            ds, task, parser, batch_size, training, shuffle_buffer, seed, repeat, drop_remainder
        )
        return _finish(ds, training, deterministic)
    if _decodes_first(task, training, skip_corrupt, output_size, channels, shuffle_buffer, first):
        ds = _decoded_blocks(functools.partial(read, deterministic=deterministic),
                             shuffle_buffer, cycle_length, parser, check)  # fmt: skip
        ds = _from_decoded(
            ds, task, parser, batch_size, training, shuffle_buffer, seed, repeat, drop_remainder
        )
        return _finish(ds, training, deterministic)

    ds = read(
        block_length=_block_length(training, shuffle_buffer, cycle_length),
        deterministic=deterministic or not training,
        shuffle_files=training,
    )
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if task == schema.CLASSIFICATION and not skip_corrupt:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = _parse_classification_batches(ds, parser, check, training, seed, batch_size,
                                           finite=not repeat)  # fmt: skip
    else:  # per element, so one invalid record costs only itself
        ds = _parse_per_element(ds, check, parser, training, seed, finite=not repeat)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return _finish(ds, training, deterministic)


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
        f"cache must be False, True (in memory) or a file path prefix. Received: cache={cache!r}"
    )


def _cached(records, cache, parser, check):
    """Keyed ``records`` validated and decoded once into ``cache`` (``Dataset.cache``): for
    classification what ``parse_eval`` makes of a record, for the other tasks the decoded
    record."""
    if check.task == schema.CLASSIFICATION and not check.skip:
        ds = _parse_classification_batches(records.batch(256), parser, check, False, None, 256)
        ds = ds.unbatch()
    elif check.task == schema.CLASSIFICATION:
        ds = _parse_per_element(records, check, parser, False, None)
    else:
        ds = _decoded(records, check)
    return ds.cache(cache)


def _from_decoded(
    ds, task, parser, batch_size, training, shuffle_buffer, seed, repeat, drop_remainder
):
    """Decoded (cached, or for classification parsed) examples -> batches: shuffled and
    augmented every epoch when training."""
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if task == schema.CLASSIFICATION:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if training:
            ds = tf.data.Dataset.zip((ds, _seeds(seed))).map(
                graph_fn(traced.function(_batch_augmenter, parser)), num_parallel_calls=AUTOTUNE
            )
    else:
        if training:
            ds = tf.data.Dataset.zip((ds, _seeds(seed))).map(
                graph_fn(traced.function(_train_parser, parser)), num_parallel_calls=AUTOTUNE
            )
        else:
            ds = ds.map(graph_fn(traced.function(_eval_parser, parser)),
                        num_parallel_calls=AUTOTUNE)  # fmt: skip
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds
