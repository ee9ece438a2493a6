"""Invalid records: every route of build_dataset names the file, the record index and the
value (strict), or leaves the record out and counts it (skip_corrupt); find_invalid agrees."""

import io
import json
import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcompress.data import SkippedRecords, build_dataset, encode, records, schema, shards, validate
from tfcompress.data.errors import CorruptInputError

NUM_CLASSES = 10
SHARD = "train-00000-of-00001.tfrecord"


def _mutated(record, mutate):
    example = tf.train.Example.FromString(record)
    mutate(example.features.feature)
    return example.SerializeToString()


def _set(key, kind, values):
    def mutate(f):
        f[key].Clear()
        getattr(f[key], kind).value.extend(values)

    return mutate


def _drop(key):
    return lambda f: f.__delitem__(key)


def _all(*mutations):
    def mutate(f):
        for m in mutations:
            m(f)

    return mutate


def _classification(i, image_format="raw"):
    image = np.full((4, 5, 1), 10 * i, np.uint8)
    encoded = encode.encode_array(image, image_format=image_format)
    return encode.classification_example(encoded, i % NUM_CLASSES)


def _segmentation(i, mask=None):
    image = encode.encode_png(np.full((6, 7, 1), 10 * i, np.uint8))
    mask = np.full((6, 7), i % 4, np.uint8) if mask is None else mask
    return encode.segmentation_example(image, mask)


def _detection(i):
    image = encode.encode_png(np.full((8, 8, 3), 10 * i, np.uint8))
    boxes = [[0.1, 0.1, 0.5, 0.5], [0.0, 0.2, 1.0, 0.9]]
    return encode.detection_example(image, boxes, [i % NUM_CLASSES, 1])


def _jpeg(array):
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG")
    return out.getvalue()


_MASK = schema.MASK_ENCODED
_YMIN, _XMIN, _YMAX, _XMAX = schema.BBOX_KEYS
_LABEL, _CLASSES = schema.CLASS_LABEL, schema.OBJECT_CLASS
_MASK_200 = np.full((6, 7), 1, np.uint8)
_MASK_200[2, 3] = 200

# (task, bad-record mutation, expected reason): the bad record replaces record 1 of 3.
CASES = {
    "label_10": ("classification", _set(_LABEL, "int64_list", [10]),
                 "image/class/label 10 outside [0, 10)"),
    "label_255": ("classification", _set(_LABEL, "int64_list", [255]),
                  "image/class/label 255 outside [0, 10)"),
    "label_-1": ("classification", _set(_LABEL, "int64_list", [-1]),
                 "image/class/label -1 outside [0, 10)"),
    "label_2^40": ("classification", _set(_LABEL, "int64_list", [2**40]),
                   "image/class/label 1099511627776 outside [0, 10)"),
    "label_2^32+3": ("classification", _set(_LABEL, "int64_list", [2**32 + 3]),
                     "image/class/label 4294967299 outside [0, 10)"),
    "no_height": ("classification", _drop(schema.IMAGE_HEIGHT), "image/height missing"),
    "no_encoded": ("classification", _drop(schema.IMAGE_ENCODED), "image/encoded missing"),
    "height_as_bytes": ("classification", _set(schema.IMAGE_HEIGHT, "bytes_list", [b"4"]),
                        "image/height is a bytes_list, expected a int64_list"),
    "two_labels": ("classification", _set(_LABEL, "int64_list", [1, 2]),
                   "image/class/label holds 2 values, expected 1"),
    "raw_short": ("classification", _set(schema.IMAGE_ENCODED, "bytes_list", [b"\0" * 7]),
                  "raw image/encoded holds 7 bytes, but height x width x channels = "
                  "4 x 5 x 1 = 20"),
    "format_gif": ("classification", _set(schema.IMAGE_FORMAT, "bytes_list", [b"gif"]),
                   "image/format 'gif' is not one of png, jpeg, raw"),
    "mask_jpeg": ("segmentation", _set(_MASK, "bytes_list", [_jpeg(np.ones((6, 7), np.uint8))]),
                  "image/segmentation/class/encoded is not a PNG (a JPEG: lossy"),
    "mask_200": ("segmentation", _set(_MASK, "bytes_list", [encode.png_bytes(_MASK_200)]),
                 "mask value 200 outside [0, 10) and not 255 (ignore)"),
    "mask_smaller": ("segmentation",
                     _set(_MASK, "bytes_list", [encode.png_bytes(np.ones((5, 7), np.uint8))]),
                     "mask is 5x7, image 6x7"),
    "mask_undecodable": ("segmentation",
                         _set(_MASK, "bytes_list", [validate.PNG_SIGNATURE + b"broken"]),
                         "does not decode"),
    "boxes_no_classes": ("detection", _set(_CLASSES, "int64_list", []),
                         "object lists differ in length (ymin 2, xmin 2, ymax 2, xmax 2, "
                         "image/object/class/label 0)"),
    "box_nan": ("detection", _set(_YMIN, "float_list", [math.nan, 0.0]),
                "box 0 [ymin, xmin, ymax, xmax] = [nan 0.1 0.5 0.5] is not finite"),
    "box_inverted": ("detection", _set(_YMIN, "float_list", [0.9, 0.0]),
                     "box 0 [ymin, xmin, ymax, xmax] = [0.9 0.1 0.5 0.5] has ymin > ymax"),
    "box_above_1": ("detection", _set(_XMAX, "float_list", [0.5, 1.5]),
                    "box 1 [ymin, xmin, ymax, xmax] = [0 0.2 1 1.5] is outside [0, 1]"),
    "class_99": ("detection", _set(_CLASSES, "int64_list", [1, 99]),
                 "image/object/class/label 99 outside [0, 10)"),
    "class_-1": ("detection", _set(_CLASSES, "int64_list", [-1, 1]),
                 "image/object/class/label -1 outside [0, 10)"),
    "channels_3_gray_png": ("segmentation", _set(schema.IMAGE_CHANNELS, "int64_list", [3]),
                            "image/channels 3 but image/encoded is a gray PNG"),
    "channels_1_colour_png": ("detection", _set(schema.IMAGE_CHANNELS, "int64_list", [1]),
                              "image/channels 1 but image/encoded is a colour PNG"),
    "channels_3_gray_jpeg": ("classification", _all(
        _set(schema.IMAGE_ENCODED, "bytes_list", [_jpeg(np.zeros((4, 5), np.uint8))]),
        _set(schema.IMAGE_FORMAT, "bytes_list", [b"jpeg"]),
        _set(schema.IMAGE_CHANNELS, "int64_list", [3])),
        "image/channels 3 but image/encoded is a gray JPEG"),
}  # fmt: skip
_MAKE = {"classification": _classification, "segmentation": _segmentation,
         "detection": _detection}  # fmt: skip


def _records(task, mutate, bad=(1,), n=3):
    return [_mutated(_MAKE[task](i), mutate) if i in bad else _MAKE[task](i) for i in range(n)]


def _write(directory, records, num_classes=NUM_CLASSES):
    with shards.ShardWriter(str(directory), "train", 1, compression="") as writer:
        for record in records:
            writer.write(record)
    if num_classes:
        entry = {"shards": [SHARD], "shard_counts": [len(records)]}
        shards.update_manifest(str(directory), {"train": entry}, num_classes=num_classes)
    return str(directory / "train-*.tfrecord")


def _ids(task, batch):
    """The record each example came from (the records of ``_MAKE`` encode it)."""
    return [int(round(float(x) * 255 / 10)) for x in batch[0].numpy()[:, 0, 0, 0]]


def test_find_invalid_names_each_problem():
    for name, (task, mutate, reason) in CASES.items():
        found = validate.find_invalid(_records(task, mutate), task, num_classes=NUM_CLASSES)
        assert len(found) == 1 and found[0][0] == 1, (name, found)
        assert reason in found[0][1], (name, found)


def test_find_invalid_passes_valid_records_and_ignore_label():
    mask = np.full((6, 7), 9, np.uint8)
    mask[0] = schema.IGNORE_LABEL
    records = [_classification(0), _classification(1, "png")]
    assert validate.find_invalid(records, "classification", num_classes=NUM_CLASSES) == []
    no_format = _mutated(_classification(2, "png"), _drop(schema.IMAGE_FORMAT))  # png default
    assert validate.find_invalid([no_format], "classification") == []
    segmentation = [_segmentation(0, mask), _segmentation(1)]
    assert validate.find_invalid(segmentation, "segmentation", num_classes=NUM_CLASSES) == []
    no_difficult = _mutated(_detection(0), _set(schema.OBJECT_DIFFICULT, "int64_list", []))
    assert validate.find_invalid([_detection(1), no_difficult], "detection",
                                 num_classes=NUM_CLASSES) == []  # fmt: skip


def test_without_num_classes_labels_need_only_fit_int32():
    records = [_mutated(_classification(0), _set(_LABEL, "int64_list", [v]))
               for v in (10, 2**31 - 1, 2**31, -1)]  # fmt: skip
    found = validate.find_invalid(records, "classification")
    assert found == [(2, "image/class/label 2147483648 outside [0, 2**31)"),
                     (3, "image/class/label -1 outside [0, 2**31)")]  # fmt: skip


def test_corrupt_record_message_from_errors():
    error = tf.errors.InvalidArgumentError(
        None, None, "Error in map: assertion failed: [Corrupt record in /d/a.tfrecord: "
        "record 3: image/class/label 10 outside [0, 10)]\n\t [[{{node Assert}}]]")  # fmt: skip
    assert validate.corrupt_record_message(error) == (
        "Corrupt record in /d/a.tfrecord: record 3: image/class/label 10 outside [0, 10)"
    )
    assert validate.corrupt_record_message(ValueError("other")) is None


# Strict reads through build_dataset: the cases the shard scan stops (cheap) and, of those
# only a built pipeline's in-graph checks see (seconds of tracing each), one per route and
# task. Every message of every case is asserted through find_invalid above, the same checks.
STRICT_CASES = sorted(
    {"no_height", "no_encoded", "height_as_bytes", "two_labels"}  # the shard scan
    | {"label_2^32+3", "raw_short", "mask_200", "mask_undecodable", "box_nan"}  # in-graph
    | {"channels_3_gray_png"}
)


@pytest.mark.slow
@pytest.mark.parametrize("name", STRICT_CASES)
def test_strict_names_file_record_and_value(tmp_path, name):
    task, mutate, reason = CASES[name]
    pattern = _write(tmp_path, _records(task, mutate))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError)) as raised:
        list(build_dataset(pattern, task, 2, training=False))
    message = validate.corrupt_record_message(raised.value)
    assert message is not None, raised.value
    assert message.startswith(f"Corrupt record in {tmp_path / SHARD}: record 1"), message
    assert reason in message, message


@pytest.mark.slow
def test_a_strict_error_ends_the_process(tmp_path):
    """The error of a bad record, uncaught, ends the process: no Python runs in tf.data's
    threads, which the interpreter's teardown waits for while it holds the GIL (with a
    tf.py_function there, 3 runs in 4 hung or aborted)."""
    records = _records("classification", _set(_LABEL, "int64_list", [-1]), n=24)
    pattern = _write(tmp_path, records)
    script = textwrap.dedent(f"""
        from tfcompress.data import build_dataset
        for batch in build_dataset({pattern!r}, "classification", 4, training=False):
            pass
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
           "PYTHONPATH": root}  # fmt: skip
    runs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]  # fmt: skip
    deadline = time.monotonic() + 150
    try:
        for run in runs:
            _, stderr = run.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert run.returncode == 1, (run.returncode, stderr[-2000:])
            assert (f"Corrupt record in {tmp_path / SHARD}: record 1: image/class/label -1 "
                    "outside [0, 10)") in stderr, stderr[-2000:]  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("a process stopped by a bad record did not exit (hung at teardown)")
    finally:
        for run in runs:
            run.kill()
            run.wait()


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(_MAKE))
def test_skip_corrupt_counts_each_and_keeps_the_good_records(tmp_path, task):
    """Every bad variant of the task, each between two good records, in one shard."""
    cases = [(name, mutate, reason) for name, (t, mutate, reason) in CASES.items() if t == task]
    records = [_MAKE[task](0)]
    for i, (_, mutate, _) in enumerate(cases):
        records += [_mutated(_MAKE[task](2 * i + 1), mutate), _MAKE[task](2 * i + 2)]
    pattern = _write(tmp_path, records)
    skipped = SkippedRecords()
    ds = build_dataset(pattern, task, 8, training=False, skip_corrupt=True, skipped=skipped)
    good = [i for batch in ds for i in _ids(task, batch)]
    assert good == list(range(0, len(records), 2))
    assert skipped.count == len(cases)
    reported = sorted((i, r) for p, i, r in skipped.records if p == str(tmp_path / SHARD))
    assert [i for i, _ in reported] == list(range(1, len(records), 2))
    for (name, _, reason), (_, message) in zip(cases, reported, strict=True):
        assert reason in message, (name, message)


@pytest.mark.parametrize("route", ["batches", "decoded first", "cache"])
def test_classification_routes_check_labels(tmp_path, route):
    records = [encode.classification_example(
        encode.encode_array(np.full((4, 5, 1), i, np.uint8), image_format="raw"), i % 10)
        for i in range(40)]  # fmt: skip
    records[17] = _mutated(records[17], _set(_LABEL, "int64_list", [2**32 + 3]))
    pattern = _write(tmp_path, records)
    kwargs = {"batches": dict(training=False), "cache": dict(training=False, cache=True),
              "decoded first": dict(training=True, seed=0)}[route]  # fmt: skip
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"Corrupt record in .*{SHARD}: record 17: image/class/label "
                       r"4294967299 outside \[0, 10\)"):  # fmt: skip
        list(build_dataset(pattern, "classification", 8, **kwargs))


def test_classification_batches_check_channels(tmp_path):
    """The batch route decodes a PNG to the pattern's channels: a header whose channels are
    not the PNG's is caught before that (3 over a gray PNG read the gray set as RGB)."""
    examples = [_classification(i, "png") for i in range(6)]
    examples[0] = _mutated(examples[0], _set(schema.IMAGE_CHANNELS, "int64_list", [3]))
    pattern = _write(tmp_path, examples)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"Corrupt record in .*{SHARD}: record 0: image/channels 3 but "
                       r"image/encoded is a gray PNG"):  # fmt: skip
        list(build_dataset(pattern, "classification", 4, training=False))
    report = records.verify_records(pattern)
    assert report.messages() == [f"{tmp_path / SHARD}: record 0: image/channels 3 but "
                                 "image/encoded is a gray PNG"]  # fmt: skip


def test_num_classes_argument_overrides_the_manifest(tmp_path):
    pattern = _write(tmp_path, _records("classification", _set(_LABEL, "int64_list", [7])),
                     num_classes=None)  # fmt: skip
    assert len(list(build_dataset(pattern, "classification", 3, False))) == 1  # 2**31 bound
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"label 7 outside \[0, 5\)"):
        list(build_dataset(pattern, "classification", 3, False, num_classes=5))
    with pytest.raises(ValueError, match=r"num_classes=0"):
        build_dataset(pattern, "classification", 3, False, num_classes=0)


def test_records_without_boxes_are_not_detection_records(tmp_path):
    pattern = _write(tmp_path, [_classification(i) for i in range(3)], num_classes=None)
    with pytest.raises(CorruptInputError, match=rf"Corrupt record in .*{SHARD}: record 0 "
                       r".*: image/object/bbox/ymin missing"):  # fmt: skip
        build_dataset(pattern, "detection", 2, training=False)
    report = records.verify_records(pattern, task="detection")
    assert report.num_corrupt == 3, report.messages()
    assert report.messages()[0].endswith(f"{SHARD}: record 0: image/object/bbox/ymin missing")


def test_a_detection_record_may_hold_no_box(tmp_path):
    image = encode.encode_png(np.zeros((8, 8, 3), np.uint8))
    pattern = _write(tmp_path, [encode.detection_example(image, [], []), _detection(1)])
    target = next(iter(build_dataset(pattern, "detection", 2, training=False)))[1]
    assert target["num_boxes"].numpy().tolist() == [0, 2]
    assert records.verify_records(pattern, task="detection").num_corrupt == 0


@pytest.mark.parametrize("written", ["classification", "segmentation"])
def test_a_manifest_of_another_task_is_named(tmp_path, written):
    pattern = _write(tmp_path, [_MAKE[written](i) for i in range(3)])
    manifest = tmp_path / shards.MANIFEST_NAME
    fields = json.loads(manifest.read_text()) if manifest.exists() else {"splits": {}}
    manifest.write_text(json.dumps({**fields, "task": written}))  # of another task
    for skip_corrupt in (False, True):
        with pytest.raises(ValueError, match=rf"^{manifest} says task '{written}': its shards "
                           r"are not detection records. Received: task='detection'$"):  # fmt: skip
            build_dataset(pattern, "detection", 2, training=False, skip_corrupt=skip_corrupt)
    report = records.verify_records(pattern, task="detection")
    assert f"{SHARD}: {manifest} says task '{written}': its shards are not detection " \
        "records" in report.messages()[0], report.messages()  # fmt: skip
    assert len(list(build_dataset(pattern, written, 3, training=False))) == 1


def test_first_record_without_height_is_named(tmp_path):
    pattern = _write(tmp_path, _records("classification", _drop(schema.IMAGE_HEIGHT), bad=(0,)))
    with pytest.raises(ValueError, match=rf"Corrupt record in .*{SHARD}: record 0 .*: "
                       r"image/height missing"):  # fmt: skip
        build_dataset(pattern, "classification", 2, training=False)


def test_a_skipped_first_record_does_not_set_the_image_size(tmp_path):
    examples = [_classification(i, "png") for i in range(5)]  # 4x5 gray PNGs
    examples[0] = _mutated(examples[0], _all(_set(schema.IMAGE_HEIGHT, "int64_list", [8]),
                                             _set(schema.IMAGE_WIDTH, "int64_list", [8])))
    pattern = _write(tmp_path, examples)
    skipped = SkippedRecords()
    ds = build_dataset(pattern, "classification", 2, training=False, skip_corrupt=True,
                       skipped=skipped)  # fmt: skip
    assert ds.element_spec[0].shape.as_list() == [None, 4, 5, 1]
    assert [y for _, batch in ds for y in batch.numpy().tolist()] == [1, 2, 3, 4]
    assert skipped.records == [(str(tmp_path / SHARD), 0, "image decodes to 4x5 but its header "
                                "says image/height x image/width = 8x8")]  # fmt: skip


def test_record_without_format_reads_as_png(tmp_path):
    records = [_mutated(_classification(i, "png"), _drop(schema.IMAGE_FORMAT)) for i in range(3)]
    pattern = _write(tmp_path, records)
    for training in (False, True):
        ds = build_dataset(pattern, "classification", 3, training, seed=0)
        assert sorted(next(iter(ds))[1].numpy().tolist()) == [0, 1, 2]


def test_skipped_counts_each_record_once_over_epochs(tmp_path):
    pattern = _write(tmp_path, _records("segmentation", CASES["mask_200"][1]))
    skipped = SkippedRecords()
    ds = build_dataset(pattern, "segmentation", 1, training=True, seed=0, repeat=True,
                       skip_corrupt=True, skipped=skipped)  # fmt: skip
    assert len(list(ds.take(8))) == 8  # four epochs of the two good records
    assert skipped.count == 1
