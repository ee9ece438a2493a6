"""build_dataset's map functions are traced once per process and configuration
(``tfcompress.data.traced``), yet every pipeline names and counts its own records: the
shard paths and skip tables of a pipeline are arguments of the kept functions, never what
the pipeline that traced them first captured."""

import concurrent.futures
import gc

import numpy as np
import pytest
import tensorflow as tf

from tfcompress.data import (
    SkippedRecords,
    build_dataset,
    decode,
    encode,
    parse,
    pipeline,
    schema,
    shards,
    validate,
)

SHARD = "train-00000-of-00001.tfrecord"
NUM_CLASSES = 10


def _set(record, key, kind, values):
    example = tf.train.Example.FromString(record)
    example.features.feature[key].Clear()
    getattr(example.features.feature[key], kind).value.extend(values)
    return example.SerializeToString()


def _classification(i, size, image_format="raw"):
    image = np.full((*size, 1), 10 * i, np.uint8)
    return encode.classification_example(encode.encode_array(image, image_format=image_format),
                                         i % NUM_CLASSES)  # fmt: skip


def _segmentation(i, size):
    image = encode.encode_png(np.full((*size, 1), 10 * i, np.uint8))
    return encode.segmentation_example(image, np.full(size, i % 4, np.uint8))


def _detection(i, size):
    image = encode.encode_png(np.full((*size, 3), 10 * i, np.uint8))
    return encode.detection_example(image, [[0.1, 0.1, 0.5, 0.5]], [i % NUM_CLASSES])


_BAD_LABEL = (schema.CLASS_LABEL, "int64_list", [2**32 + 3])
_LABEL_REASON = "image/class/label 4294967299 outside [0, 10)"
_MASK_200 = np.full((6, 7), 1, np.uint8)
_MASK_200[2, 3] = 200
_UNDECODABLE_PNG = [validate.PNG_SIGNATURE + b"broken"]

# route -> (make(i, size), size, bad feature (key, kind, values), reason, build kwargs)
ROUTES = {
    "classification batches": (_classification, (4, 5), _BAD_LABEL, _LABEL_REASON,
                               dict(training=False)),
    "classification decoded first": (_classification, (4, 5), _BAD_LABEL, _LABEL_REASON,
                                     dict(training=True, seed=0)),
    "classification cache": (_classification, (4, 5), _BAD_LABEL, _LABEL_REASON,
                             dict(training=False, cache=True)),
    "classification undecodable png": (
        lambda i, size: _classification(i, size, "png"), (4, 5),
        (schema.IMAGE_ENCODED, "bytes_list", _UNDECODABLE_PNG), validate.UNDECODABLE,
        dict(training=False)),
    "segmentation per record": (
        _segmentation, (6, 7), (schema.MASK_ENCODED, "bytes_list", [encode.png_bytes(_MASK_200)]),
        "mask value 200 outside [0, 10) and not 255 (ignore)", dict(training=False)),
    "detection per record, training": (
        _detection, (8, 8), (schema.BBOX_KEYS[0], "float_list", [float("nan")]),
        "box 0 [ymin, xmin, ymax, xmax] = [nan 0.1 0.5 0.5] is not finite",
        dict(training=True, seed=0)),
}  # fmt: skip


def _write(directory, records):
    directory.mkdir()
    with shards.ShardWriter(str(directory), "train", 1, compression="") as writer:
        for record in records:
            writer.write(record)
    entry = {"shards": [SHARD], "shard_counts": [len(records)]}
    shards.update_manifest(str(directory), {"train": entry}, num_classes=NUM_CLASSES)
    return str(directory / "train-*.tfrecord")


def _split(directory, route, bad=None, n=6):
    """The records of ``route`` (record ``bad`` invalid) written to ``directory``."""
    make, size, (key, kind, values), _, _ = ROUTES[route]
    records = [make(i, size) for i in range(n)]
    if bad is not None:
        records[bad] = _set(records[bad], key, kind, values)
    return _write(directory, records)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_an_error_names_the_file_of_its_own_pipeline(tmp_path, route):
    """Pipeline ``a`` traces first (or an earlier test did); ``b``, built next, of the same
    kind over other files, meets an invalid record: its error names ``b``'s file."""
    *_, reason, kwargs = ROUTES[route]
    ds_a = build_dataset(_split(tmp_path / "a", route), route.split()[0], 2, **kwargs)
    ds_b = build_dataset(_split(tmp_path / "b", route, bad=1), route.split()[0], 2, **kwargs)
    assert sum(int(tf.shape(x)[0]) for x, _ in ds_a) == 6
    del ds_a
    gc.collect()  # the pipeline that traced first is gone: the kept functions still run
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        list(ds_b)
    message = validate.corrupt_record_message(raised.value)
    assert message is not None, raised.value
    assert message.startswith(f"Corrupt record in {tmp_path / 'b' / SHARD}: record 1: "), message
    assert reason in message, message


SKIP_ROUTES = ["classification batches", "classification undecodable png",
               "segmentation per record", "detection per record, training"]  # fmt: skip


@pytest.mark.parametrize("route", SKIP_ROUTES)
def test_skipped_records_are_counted_by_their_own_pipeline(tmp_path, route):
    """With ``skip_corrupt`` (per record: one lookup table per pipeline, an argument of the
    kept functions), each pipeline counts its own invalid record, with its own path."""
    *_, reason, kwargs = ROUTES[route]
    task = route.split()[0]
    skipped = {"a": SkippedRecords(), "b": SkippedRecords()}
    datasets = {
        name: build_dataset(_split(tmp_path / name, route, bad=bad), task, 2, skip_corrupt=True,
                            skipped=skipped[name], **kwargs)
        for name, bad in (("a", 2), ("b", 1))
    }  # fmt: skip
    for name in ("b", "a"):  # 5 good records; training drops the last of the batches of 2
        expected = 4 if kwargs["training"] else 5
        assert sum(int(tf.shape(x)[0]) for x, _ in datasets[name]) == expected
    for name, bad in (("a", 2), ("b", 1)):
        assert skipped[name].count == 1, (name, skipped[name].records)
        [(path, index, message)] = skipped[name].records
        assert (path, index) == (str(tmp_path / name / SHARD), bad)
        assert reason in message, message


def _count_calls(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize("task, size, kwargs", [
    ("classification", (3, 13), dict(training=False)),
    ("classification", (3, 13), dict(training=True, seed=0)),
    ("segmentation", (5, 11), dict(training=False)),
    ("segmentation", (5, 11), dict(training=False, skip_corrupt=True, num_classes=9)),
    ("detection", (7, 3), dict(training=True, seed=0)),
])  # fmt: skip
def test_a_second_pipeline_of_a_kind_traces_no_record_again(tmp_path, monkeypatch, task, size,
                                                            kwargs):  # fmt: skip
    """A kind no other test reads (its size; with ``skip_corrupt``, whose checks hold no
    size, its ``num_classes``): the first pipeline traces the decoding of a record (or a
    batch), the second, over other files, reuses it."""
    traced = {"classification": (pipeline, "decode_classification_batch")}.get(
        task, (decode, "decode_features")
    )
    calls = _count_calls(monkeypatch, *traced)
    make = {"classification": _classification, "segmentation": _segmentation,
            "detection": _detection}[task]  # fmt: skip
    for name in ("a", "b"):
        ds = build_dataset(_write(tmp_path / name, [make(i, size) for i in range(4)]), task, 2,
                           **kwargs)  # fmt: skip
        assert sum(int(tf.shape(x)[0]) for x, _ in ds) == 4
        if name == "a":
            first = len(calls)
            assert first > 0
    assert len(calls) == first


class _Shifted:
    """A parser of the caller's own: its state is not a key, it is traced per pipeline."""

    def __init__(self, shift):
        self.shift = shift
        self.base = parse.make_parser("segmentation", (6, 7))

    def parse_eval(self, decoded):
        image, mask = self.base.parse_eval(decoded)
        return image + self.shift, mask


def test_a_parser_of_its_own_is_traced_with_each_pipeline(tmp_path):
    pattern = _split(tmp_path / "a", "segmentation per record")
    images = [
        np.concatenate([x.numpy() for x, _ in build_dataset(
            pattern, "segmentation", 2, training=False, parser=_Shifted(shift))])
        for shift in (0.0, 1.0)
    ]  # fmt: skip
    np.testing.assert_array_equal(images[1], images[0] + 1.0)


@pytest.mark.slow
def test_pipelines_under_a_distribution_strategy(tmp_path):
    """A kept function traced outside a strategy serves pipelines built in its scope (one
    distributed), and names their own file."""
    route = "classification batches"
    plain = [x.numpy() for x, _ in build_dataset(_split(tmp_path / "a", route),
                                                 "classification", 2, training=False)]  # fmt: skip
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        ds = build_dataset(_split(tmp_path / "b", route), "classification", 2, training=False)
        bad = build_dataset(_split(tmp_path / "c", route, bad=3), "classification", 2,
                            training=False)  # fmt: skip
    distributed = [x.numpy() for x, _ in strategy.experimental_distribute_dataset(ds)]
    np.testing.assert_array_equal(np.concatenate(distributed), np.concatenate(plain))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"Corrupt record in {tmp_path / 'c' / SHARD}: record 3: "
                       r"image/class/label 4294967299"):  # fmt: skip
        list(bad)


@pytest.mark.slow
def test_pipelines_built_at_once_from_threads(tmp_path):
    """Pipelines of a kind no other test reads, built and read in parallel threads (their
    first traces race): each error names its own file."""

    def read(name):
        records = [_segmentation(i, (9, 2)) for i in range(4)]
        records[name] = _set(records[name], schema.MASK_ENCODED, "bytes_list",
                             _UNDECODABLE_PNG)  # fmt: skip
        pattern = _write(tmp_path / str(name), records)
        try:
            list(build_dataset(pattern, "segmentation", 2, training=False))
        except tf.errors.InvalidArgumentError as e:
            return validate.corrupt_record_message(e)
        return None

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        messages = list(pool.map(read, range(3)))
    for name, message in enumerate(messages):
        assert message is not None and message.startswith(
            f"Corrupt record in {tmp_path / str(name) / SHARD}: record {name}: "
        ), message
