"""Cases of the data fuzz test (tests/test_data_fuzz.py) and its subprocess worker.

Every case is a folder of shards: a small valid shard of one task variant (4 records, each
with a distinct signature: its label, mask pixel [0, 0] or first box class; image pixel
[0, 0] holds the case's stamp, [0, 1] the record index), damaged by one seeded mutation,
with what a reader must make of it:

- strict ``build_dataset(..., training=False, num_classes=10)``, fully iterated: an error
  whose message names the damaged shard and, for damage inside one record, ``record <i>``
  (every case the shard scan stops; of the cases only the in-graph checks see, which cost
  seconds of tracing a read, the intact control and the first damaged case per variant:
  ``_choose_strict_reads``; tests/test_data_validation.py reads each value check strictly);
- ``build_dataset(..., skip_corrupt=True, skipped=SkippedRecords())``: no error, the good
  records come out in order, ``skipped.count`` as many as the damaged records (damage that
  leaves the rest of the file unframeable: at least one, the records before it out);
- ``verify_records``: the damaged records (their indices) reported for that shard.

Controls (an intact shard, a record without the defaulted ``image/format``, a mask with 255
ignore pixels, a detection record without objects, an empty shard the manifest lists with
0 records) must read cleanly in all three.

``generate_cases(seed)`` is deterministic, so the parent (expectations) and the worker
(files and reads) build the same list. The worker runs ``units(cases)[first:stop]``: each
case's strict read, then per group (task variant x compression) one ``skip_corrupt`` read
and one ``verify_records`` of all the group's shards (the stamps tell the cases' images
apart; a grouped read that raises is split in halves down to the case). Run as a script:

    python tests/data_fuzz_cases.py OUT_DIR RESULTS_JSONL FIRST STOP [CASES_PICKLE]

it writes the cases under OUT_DIR and one JSON line per event to RESULTS_JSONL (``start``
before a unit, ``done`` with what each case's read observed), flushed, so a crash names
the read it happened in.
"""

import gzip
import io
import json
import math
import os
import pickle
import random
import re
import signal
import struct
import time

NUM_RECORDS = 4
HEIGHT, WIDTH = 6, 5
NUM_CLASSES = 10
SIGNATURES = [1, 4, 7, 0]  # record r's label / mask[0, 0] / first box class
SPLIT_FILE = "test-00000-of-00001.tfrecord"
VARIANTS = {  # name: (task, channels, image format)
    "cls_raw": ("classification", 1, "raw"),
    "cls_png": ("classification", 3, "png"),
    "seg": ("segmentation", 1, "png"),
    "det": ("detection", 3, "png"),
}
COMPRESSIONS = {"gz": "GZIP", "raw": ""}


# --- TFRecord framing, computed here (not with the code under test) ---------------------------


def _crc32c_table():
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ (0x82F63B78 if n & 1 else 0)
        table.append(n)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record):
    header = struct.pack("<Q", len(record))
    return (header + struct.pack("<I", masked_crc(header)) + record
            + struct.pack("<I", masked_crc(record)))  # fmt: skip


def stream_of(records):
    """The uncompressed file bytes and each record's ``(start, end)`` in them."""
    out, spans, offset = [], [], 0
    for r in records:
        framed = frame(r)
        out.append(framed)
        spans.append((offset, offset + len(framed)))
        offset += len(framed)
    return b"".join(out), spans


def _inflates_to(data, stream):
    try:
        return gzip.decompress(data) == stream
    except Exception:  # noqa: BLE001 - any failure: the damage shows
        return False


def gzip_bytes(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


# --- valid records ----------------------------------------------------------------------------


def _example(serialized):
    import tensorflow as tf

    return tf.train.Example.FromString(serialized)


def _pixels(rng, channels):
    import numpy as np

    shape = (HEIGHT, WIDTH) if channels == 1 else (HEIGHT, WIDTH, channels)
    return np.array([rng.randrange(256) for _ in range(HEIGHT * WIDTH * channels)],
                    np.uint8).reshape(shape)  # fmt: skip


def _mask(rng, signature):
    import numpy as np

    mask = np.array([rng.choice([0, 1, 2, 3, 255]) for _ in range(HEIGHT * WIDTH)], np.uint8)
    mask = mask.reshape(HEIGHT, WIDTH)
    mask[0, 0] = signature
    return mask


def valid_record(variant, r, rng, stamp=0):
    """Record ``r`` (signature ``SIGNATURES[r]``) of a variant's shard; pixel ``[0, 0]``
    holds ``stamp`` and pixel ``[0, 1]`` holds ``r`` (channel 0), so a read of many cases'
    shards at once tells which case and record each image came from."""
    from tfcompress.data import encode

    task, channels, fmt = VARIANTS[variant]
    pixels = _pixels(rng, channels)
    pixels.reshape(HEIGHT, WIDTH, channels)[0, :2, 0] = (stamp, r)
    image = encode.encode_array(pixels, f"{variant}/{r}", fmt)
    sig = SIGNATURES[r]
    if task == "classification":
        record = encode.classification_example(image, sig)
    elif task == "segmentation":
        record = encode.segmentation_example(image, _mask(rng, sig))
    else:
        boxes = [[0.0, 0.0, 0.5, 0.4], [1 / 6, 0.2, 1.0, 1.0]]
        record = encode.detection_example(image, boxes, [sig, 2], [0, 1])
    return _serialize(_example(record))


def _serialize(example):
    """Bytes independent of the process: protobuf writes a map's entries (the features) in
    an order that may change with the string hash seed unless asked to sort them."""
    return example.SerializeToString(deterministic=True)


def valid_records(variant, seed, stamp=0):
    rng = random.Random(f"{variant}:{seed}")
    return [valid_record(variant, r, rng, stamp) for r in range(NUM_RECORDS)]


def stamp_of(image):
    """``(stamp, record)`` of a read image (float32 ``[H, W, C]`` in [0, 1])."""
    return int(round(float(image[0, 0, 0]) * 255)), int(round(float(image[0, 1, 0]) * 255))


# --- structure-aware mutations of one record: fn(Example, rng) -> Example --------------------

IMAGE_KEYS = ("image/encoded", "image/format", "image/height", "image/width", "image/channels")
LABEL = "image/class/label"
MASK = "image/segmentation/class/encoded"
MASK_FORMAT = "image/segmentation/class/format"
BOXES = tuple(f"image/object/bbox/{k}" for k in ("ymin", "xmin", "ymax", "xmax"))
CLASSES = "image/object/class/label"
DIFFICULT = "image/object/difficult"


def _set_int(ex, key, values):
    f = ex.features.feature[key]
    f.Clear()
    f.int64_list.SetInParent()
    f.int64_list.value.extend(values)


def _set_float(ex, key, values):
    f = ex.features.feature[key]
    f.Clear()
    f.float_list.SetInParent()
    f.float_list.value.extend(values)


def _set_bytes(ex, key, value):
    f = ex.features.feature[key]
    f.Clear()
    f.bytes_list.value.append(value)


def _wrong_type(key):
    def mutate(ex, rng):
        feature = ex.features.feature[key]
        kind = feature.WhichOneof("kind")
        if kind == "int64_list":
            _set_float(ex, key, [float(v) + 0.5 for v in feature.int64_list.value] or [1.5])
        elif kind == "float_list":
            _set_int(ex, key, [int(v) for v in feature.float_list.value] or [1])
        else:
            _set_int(ex, key, [7])
        return ex

    return mutate


def _missing(key):
    def mutate(ex, rng):
        del ex.features.feature[key]
        return ex

    return mutate


def _label(value):
    def mutate(ex, rng):
        _set_int(ex, LABEL, [value])
        return ex

    return mutate


def _header_size(ex, rng):
    """The header's height one more than the stored image holds (raw: bytes; PNG: pixels)."""
    _set_int(ex, "image/height", [HEIGHT + 1])
    return ex


def _short_raw(ex, rng):
    data = ex.features.feature["image/encoded"].bytes_list.value[0]
    _set_bytes(ex, "image/encoded", data[: rng.randrange(1, len(data))])
    return ex


def _png_garbage(ex, rng):
    data = bytearray(ex.features.feature["image/encoded"].bytes_list.value[0])
    for _ in range(8):  # inside the IDAT chunk: its CRC then fails
        data[rng.randrange(41, len(data) - 16)] ^= 0xFF
    _set_bytes(ex, "image/encoded", bytes(data))
    return ex


def _decoded_mask(ex):
    import numpy as np
    from PIL import Image

    data = ex.features.feature[MASK].bytes_list.value[0]
    return np.asarray(Image.open(io.BytesIO(data)))


def _png(array):
    from tfcompress.data import encode

    return encode.png_bytes(array)


def _mask_jpeg(fmt_value):
    def mutate(ex, rng):
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(_decoded_mask(ex)).save(buf, "JPEG", quality=75)
        _set_bytes(ex, MASK, buf.getvalue())
        if fmt_value is not None:
            _set_bytes(ex, MASK_FORMAT, fmt_value)
        return ex

    return mutate


def _mask_value(value):
    def mutate(ex, rng):
        mask = _decoded_mask(ex).copy()
        mask[rng.randrange(1, HEIGHT), rng.randrange(WIDTH)] = value
        _set_bytes(ex, MASK, _png(mask))
        return ex

    return mutate


def _mask_size(dh, dw):
    def mutate(ex, rng):
        import numpy as np

        mask = np.zeros((HEIGHT + dh, WIDTH + dw), np.uint8)
        _set_bytes(ex, MASK, _png(mask))
        return ex

    return mutate


def _boxes(fn):
    def mutate(ex, rng):
        coords = [list(ex.features.feature[k].float_list.value) for k in BOXES]
        fn(coords, rng)
        for k, values in zip(BOXES, coords, strict=True):
            _set_float(ex, k, values)
        return ex

    return mutate


def _box_value(which, value):
    def fn(coords, rng):
        coords[which][rng.randrange(2)] = value

    return fn


def _inverted(coords, rng):
    axis = rng.randrange(2)  # y or x: min > max
    lo, hi = coords[axis][0], coords[axis + 2][0]
    coords[axis][0], coords[axis + 2][0] = hi, lo


def _short_list(coords, rng):
    coords[rng.randrange(4)].pop()


def _classes(values):
    def mutate(ex, rng):
        _set_int(ex, CLASSES, values)
        return ex

    return mutate


def _class_value(value):
    def mutate(ex, rng):
        classes = list(ex.features.feature[CLASSES].int64_list.value)
        classes[rng.randrange(len(classes))] = value
        _set_int(ex, CLASSES, classes)
        return ex

    return mutate


def _no_objects(ex, rng):
    for k in BOXES:
        _set_float(ex, k, [])
    _set_int(ex, CLASSES, [])
    _set_int(ex, DIFFICULT, [])
    return ex


def _not_example(ex, rng):
    return None  # the record's bytes become garbage (see _damage_records)


COMMON_MUTATIONS = {
    "missing_image": _missing("image/encoded"),
    "missing_height": _missing("image/height"),
    "missing_width": _missing("image/width"),
    "missing_channels": _missing("image/channels"),
    "wrong_type_image": _wrong_type("image/encoded"),
    "wrong_type_height": _wrong_type("image/height"),
    "wrong_type_format": _wrong_type("image/format"),
    "header_size": _header_size,
    "not_an_example": _not_example,
}
TASK_MUTATIONS = {
    "classification": {
        "missing_label": _missing(LABEL),
        "wrong_type_label": _wrong_type(LABEL),
        "label_-1": _label(-1),
        "label_10": _label(10),
        "label_255": _label(255),
        "label_2^40": _label(2**40),
        "label_2^32+3": _label(2**32 + 3),
        "label_two_values": lambda ex, rng: (_set_int(ex, LABEL, [1, 2]), ex)[1],
    },
    "segmentation": {
        "missing_mask": _missing(MASK),
        "wrong_type_mask": _wrong_type(MASK),
        "mask_jpeg": _mask_jpeg(b"jpeg"),
        "mask_jpeg_as_png": _mask_jpeg(None),
        "mask_200": _mask_value(200),
        "mask_10": _mask_value(10),
        "mask_taller": _mask_size(1, 0),
        "mask_narrower": _mask_size(0, -1),
    },
    "detection": {
        "box_nan": _boxes(_box_value(0, math.nan)),
        "box_inf": _boxes(_box_value(3, math.inf)),
        "box_inverted": _boxes(_inverted),
        "box_above_1": _boxes(_box_value(2, 1.5)),
        "box_below_0": _boxes(_box_value(1, -0.25)),
        "box_lists_unequal": _boxes(_short_list),
        "boxes_without_classes": _classes([]),
        "class_-1": _class_value(-1),
        "class_99": _class_value(99),
        "class_10": _class_value(10),
        "wrong_type_boxes": _wrong_type(BOXES[0]),
    },
}
# Valid variations: each must read back cleanly (record kept, nothing skipped).
CONTROLS = {
    None: {"intact": None},
    "png": {"no_image_format": _missing("image/format")},  # the schema defaults it to png
    "segmentation": {"mask_ignore_255": _mask_value(255)},
    "detection": {"no_objects": _no_objects},
}
RAW_ONLY = {"short_raw"}


def _mutations(variant):
    task, _, fmt = VARIANTS[variant]
    muts = {**COMMON_MUTATIONS, **TASK_MUTATIONS[task]}
    if fmt == "raw":
        muts["short_raw"] = _short_raw
    else:
        muts["png_garbage"] = _png_garbage
    return muts


def _controls(variant):
    task, _, fmt = VARIANTS[variant]
    return {**CONTROLS[None], **CONTROLS.get(fmt, {}), **CONTROLS.get(task, {})}


# --- cases ------------------------------------------------------------------------------------


def _case(cid, variant, comp, mutation, files, expect, manifest=None, stamp=0):
    return {
        "id": cid,
        "stamp": stamp,
        "group": f"{variant}-{comp}",
        "variant": variant,
        "task": VARIANTS[variant][0],
        "channels": VARIANTS[variant][1],
        "compression": COMPRESSIONS[comp],
        "mutation": mutation,
        "files": files,  # {name: bytes}
        "manifest": manifest,  # {name: count} written as a converter's manifest.json
        "expect": expect,
    }


def _expect(damaged=SPLIT_FILE, record=None, keep=(), count=(1, 1), indices=None,
            prefix=False, also_keep=None):  # fmt: skip
    """What readers must make of a case.

    record: index a strict error must name (``record {i}``), None: the file only.
    keep: signatures the skip read must yield, in order; ``also_keep``: an alternative
      accepted (a reader that resynchronises after a damaged header).
    count: ``(min, max)`` of ``skipped.count`` (max None: no bound).
    indices: the exact record indices ``verify`` and the skip report name for the damaged
      file; None: at least one.
    prefix: any prefix of ``keep`` is accepted (damage inside a GZIP stream).
    """
    return {
        "damaged": damaged,
        "record": record,
        "keep": list(keep),
        "count": list(count),
        "indices": None if indices is None else sorted(indices),
        "prefix": prefix,
        "also_keep": None if also_keep is None else list(also_keep),
        "clean": False,
    }


CLEAN = {"damaged": None, "record": None, "keep": list(SIGNATURES), "count": [0, 0],
         "indices": [], "prefix": False, "also_keep": None, "clean": True}  # fmt: skip


def _file(stream, compression):
    return gzip_bytes(stream) if compression == "gz" else stream


def _without(i):
    return [s for r, s in enumerate(SIGNATURES) if r != i]


def _byte_cases(variant, comp, fresh, rng, per_class):
    """Byte-level damage: bit flips per frame field, cuts, crafted lengths, garbage."""
    stamp, records = fresh()
    stream, spans = stream_of(records)
    n = len(records)
    out = []

    def add(name, data, expect, manifest=None):
        nonlocal stamp, records, stream, spans
        cid = f"{variant}-{comp}-{name}-{sum(1 for c in out if c['mutation'] == name)}"
        out.append(_case(cid, variant, comp, name, {SPLIT_FILE: data}, expect, manifest, stamp))
        stamp, records = fresh()  # the next case's records (same sizes, another stamp)
        stream, spans = stream_of(records)

    fields = {  # name: (first, last) byte offsets inside a frame of data length L
        "flip_length": lambda L: (0, 8),
        "flip_length_crc": lambda L: (8, 12),
        "flip_data": lambda L: (12, 12 + L),
        "flip_data_crc": lambda L: (12 + L, 16 + L),
    }
    for name, field in fields.items():
        for _ in range(per_class):
            i = rng.randrange(n)
            start, end = spans[i]
            lo, hi = field(len(records[i]))
            data = bytearray(stream)
            data[start + rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
            if name.startswith("flip_length"):  # the frame is lost: nothing after it is sure
                expect = _expect(record=i, keep=SIGNATURES[:i], count=(1, None), indices=[i],
                                 also_keep=_without(i))  # fmt: skip
            else:  # framing intact: only record i is bad
                expect = _expect(record=i, keep=_without(i), indices=[i])
            add(name, _file(bytes(data), comp), expect)
    for _ in range(per_class):  # cut inside record i
        i = rng.randrange(n)
        start, end = spans[i]
        cut = rng.randrange(start + 1, end)
        add("truncate", _file(stream[:cut], comp),
            _expect(record=i, keep=SIGNATURES[:i], count=(1, None), indices=[i]))  # fmt: skip
    for _ in range(max(1, per_class // 2)):  # cut at a record boundary: the manifest says n
        i = rng.randrange(1, n)
        missing = (n - i, n - i)  # each record the manifest lists that the file lacks
        expect = _expect(keep=SIGNATURES[:i], count=missing)
        add("truncate_at_boundary", _file(stream[: spans[i][0]], comp), expect, {SPLIT_FILE: n})
    for length in (2**40, 2**63 + 5, 2**32, 2**64 - 1):  # crafted length, valid length CRC
        i = rng.randrange(n)
        header = struct.pack("<Q", length)
        crafted = header + struct.pack("<I", masked_crc(header)) + bytes(64)
        add("crafted_length", _file(stream[: spans[i][0]] + crafted, comp),
            _expect(record=i, keep=SIGNATURES[:i], count=(1, None), indices=[i]))  # fmt: skip
    for _ in range(max(1, per_class // 2)):  # garbage after the last record
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        if comp == "gz":
            add("trailing_garbage", gzip_bytes(stream) + garbage,
                _expect(keep=SIGNATURES, count=(1, None)))  # fmt: skip
        else:
            add("trailing_garbage", stream + garbage,
                _expect(record=n, keep=SIGNATURES, count=(1, None), indices=[n]))  # fmt: skip
    if comp == "gz":
        for _ in range(per_class):  # damage inside the deflate stream or its trailer
            compressed = gzip_bytes(stream)
            data = compressed
            while _inflates_to(data, stream):  # a flip of a padding bit changes nothing
                data = bytearray(compressed)
                data[rng.randrange(10, len(data))] ^= 1 << rng.randrange(8)
                data = bytes(data)
            add("gzip_flip", bytes(data),
                _expect(keep=SIGNATURES, count=(1, None), prefix=True))  # fmt: skip
        for _ in range(per_class):  # a copy cut off anywhere
            compressed = gzip_bytes(stream)
            add("gzip_cut", compressed[: rng.randrange(10, len(compressed) - 1)],
                _expect(keep=SIGNATURES, count=(1, None), prefix=True))  # fmt: skip
        i = rng.randrange(1, n)  # whole records, but the stream has no end
        add("gzip_no_end", gzip_bytes(stream[: spans[i][0]])[:-8],
            _expect(keep=SIGNATURES[:i], count=(1, None)))  # fmt: skip
    return out


def _zero_byte_case(variant, comp, fresh):
    """A 0-byte second shard that the manifest says holds records."""
    stamp, records = fresh()
    stream, _ = stream_of(records)
    files = {
        "test-00000-of-00002.tfrecord": _file(stream, comp),
        "test-00001-of-00002.tfrecord": b"",
    }
    manifest = {"test-00000-of-00002.tfrecord": len(records), "test-00001-of-00002.tfrecord": 3}
    expect = _expect(damaged="test-00001-of-00002.tfrecord", keep=SIGNATURES, count=(3, 3))
    case = _case(f"{variant}-{comp}-zero_byte-0", variant, comp, "zero_byte", files, expect,
                 manifest, stamp)  # fmt: skip
    case["group"] += "-zero_byte"  # read alone: a 0-byte file looks uncompressed
    return case


def _empty_listed_case(variant, fresh):
    """Control: an uncompressed shard with no record is a 0-byte file (a split with fewer
    examples than shards); the manifest lists 0 records for it."""
    stamp, records = fresh()
    stream, _ = stream_of(records)
    files = {"test-00000-of-00002.tfrecord": stream, "test-00001-of-00002.tfrecord": b""}
    manifest = {"test-00000-of-00002.tfrecord": len(records), "test-00001-of-00002.tfrecord": 0}
    case = _case(f"{variant}-raw-empty_shard_listed-0", variant, "raw", "empty_shard_listed",
                 files, dict(CLEAN), manifest, stamp)  # fmt: skip
    case["group"] += "-zero_byte"
    return case


def _damage_records(records, indices, mutate, rng):
    out = list(records)
    for i in indices:
        ex = mutate(_example(records[i]), rng)
        out[i] = (bytes(rng.randrange(256) for _ in range(rng.randrange(3, 30)))
                  if ex is None else _serialize(ex))  # fmt: skip
    return out


def _structure_cases(variant, fresh, rng):
    out = []
    names = list(COMPRESSIONS)
    for n, (name, mutate) in enumerate(_mutations(variant).items()):
        comp = names[n % 2]
        for k in (1, 2) if name in ("label_10", "mask_200", "box_nan", "not_an_example") else (1,):
            stamp, records = fresh()
            indices = sorted(rng.sample(range(len(records)), k))
            damaged = _damage_records(records, indices, mutate, rng)
            stream, _ = stream_of(damaged)
            keep = [s for r, s in enumerate(SIGNATURES) if r not in indices]
            expect = _expect(record=indices[0], keep=keep, count=(k, k), indices=indices)
            out.append(_case(f"{variant}-{comp}-{name}-{k - 1}", variant, comp, name,
                             {SPLIT_FILE: _file(stream, comp)}, expect, None, stamp))  # fmt: skip
    for n, (name, mutate) in enumerate(_controls(variant).items()):
        expect = dict(CLEAN)
        if name == "no_objects":  # record 1's first class row is padding
            expect["keep"] = [-1 if r == 1 else s for r, s in enumerate(SIGNATURES)]
        for comp in names if name == "intact" else [names[n % 2]]:
            stamp, records = fresh()
            changed = records if mutate is None else _damage_records(records, [1], mutate, rng)
            stream, _ = stream_of(changed)
            out.append(_case(f"{variant}-{comp}-{name}-0", variant, comp, name,
                             {SPLIT_FILE: _file(stream, comp)}, expect, None, stamp))  # fmt: skip
    return out


def generate_cases(seed=0, per_class=2):
    """Every case, in a fixed order: variants x compressions x mutations.

    Byte-level damage runs on both compressions (the framing is walked in the
    decompressed stream of a GZIP file); a damaged record inside an intact file reads the
    same either way, so each structure mutation runs on one compression, alternating.
    """
    cases = []
    for variant in VARIANTS:
        stamps = iter(range(1, 256))

        def fresh(variant=variant, stamps=stamps):
            stamp = next(stamps)
            return stamp, valid_records(variant, seed, stamp)

        structure = _structure_cases(variant, fresh, random.Random(f"{seed}:{variant}"))
        for comp in COMPRESSIONS:
            rng = random.Random(f"{seed}:{variant}:{comp}")
            cases += [c for c in structure if c["compression"] == COMPRESSIONS[comp]]
            cases += _byte_cases(variant, comp, fresh, rng, per_class)
            cases.append(_zero_byte_case(variant, comp, fresh))
        cases.append(_empty_listed_case(variant, fresh))
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    _choose_strict_reads(cases)
    return cases


# Record mutations the shard scan stops (``validate.structure_problem``: a feature missing,
# of the wrong type or count, bytes that are no Example): a strict read ends before
# TensorFlow builds a pipeline (~1 ms). Every other record mutation, and every control, is
# only seen by the in-graph checks of a built pipeline (2-6 s a strict read here).
SCAN_STOPPED = ("missing_", "wrong_type_", "not_an_example", "label_two_values")


def reaches_the_pipeline(case):
    """Whether a strict read of ``case`` gets past the shard scan to the in-graph checks."""
    record_level = set(_mutations(case["variant"])) | set(_controls(case["variant"]))
    return case["mutation"] in record_level and not case["mutation"].startswith(SCAN_STOPPED)


def _choose_strict_reads(cases):
    """``case["strict"]``: whether the case gets its own strict read. Every case the scan
    stops does; of those that reach the pipeline, per task variant the intact control and
    the first damaged case (the skip and verify reads, grouped, still cover every case: a
    counted skip of exactly its records, and verify naming them)."""
    sampled = set()
    for case in cases:
        key = (case["variant"], case["mutation"] == "intact")
        case["strict"] = not reaches_the_pipeline(case) or key not in sampled
        if reaches_the_pipeline(case):
            sampled.add(key)


def mutation_class(case):
    """The summary's grouping: structure mutations by family, byte mutations by name."""
    m = case["mutation"]
    for family in ("missing", "wrong_type", "label", "mask", "box", "class"):
        if m.startswith(family):
            return family
    return m


# --- checking (parent side) -------------------------------------------------------------------


def case_paths(case, root):
    """``{file name: path}`` of a case's shards under the worker's ``root``."""
    return {name: os.path.join(root, case["id"], name) for name in case["files"]}


def _short(message, n):
    """A message on one line, its TensorFlow ``{{function_node ...}}`` prefixes dropped,
    cut to ``n`` characters."""
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message or "")
    return " ".join(message.split())[:n]


def check(case, observed, root):
    """Problems of one case's observed reads against its expectation (empty: passed)."""
    exp = case["expect"]
    problems = []
    if not case.get("strict", True):  # not read strictly (see _choose_strict_reads)
        observed = {**observed, "strict": {"sampled_out": True}}
    for kind in ("strict", "skip", "verify"):
        read = observed.get(kind) or {"crash": "no outcome recorded"}
        if "crash" in read:
            problems.append(f"{kind} read: {read['crash']}")
            observed[kind] = None
    damaged_path = case_paths(case, root).get(exp["damaged"]) if exp["damaged"] else None

    strict = observed["strict"]
    if strict is None or strict.get("sampled_out"):
        pass
    elif exp["clean"]:
        if strict["error"]:
            problems.append(f"strict read of valid data failed: {strict['error']}: "
                            f"{_short(strict['message'], 300)}")  # fmt: skip
        elif strict["yield"] != exp["keep"]:
            problems.append(f"strict read yielded {strict['yield']}, expected {exp['keep']}")
    elif not strict["error"]:
        problems.append(f"strict read raised nothing (yielded {strict['yield']})")
    else:
        msg = strict["message"]
        if damaged_path not in msg:
            problems.append(f"strict error does not name {exp['damaged']}: "
                            f"{strict['error']}: {_short(msg, 300)}")  # fmt: skip
        elif exp["record"] is not None and not re.search(rf"\brecord {exp['record']}\b", msg):
            problems.append(f"strict error does not name record {exp['record']}: "
                            f"{strict['error']}: {_short(msg, 300)}")  # fmt: skip

    skip = observed["skip"]
    if skip is None:
        pass
    elif skip.get("stray"):
        problems.append(f"the grouped skip_corrupt read yielded {skip['stray']} images of no "
                        "case (pixels changed?)")  # fmt: skip
    elif skip["error"]:
        problems.append(f"skip_corrupt read raised {skip['error']}: {_short(skip['message'], 300)}")
    else:
        got, keep = skip["yield"], exp["keep"]
        if exp["prefix"]:
            ok = got == keep[: len(got)]
        else:
            ok = got == keep or (exp["also_keep"] is not None and got == exp["also_keep"])
        if not ok:
            want = f"a prefix of {keep}" if exp["prefix"] else str(keep)
            problems.append(f"skip_corrupt read yielded {got}, expected {want}")
        lo, hi = exp["count"]
        if got == exp["also_keep"] and got != keep:
            lo, hi = 1, 1  # resynchronised: exactly the damaged record skipped
        count = skip["count"]
        if count is None or count < lo or (hi is not None and count > hi):
            want = f"{lo}" if lo == hi else f">= {lo}" if hi is None else f"{lo}..{hi}"
            problems.append(f"skipped.count {count}, expected {want}")
        if exp["indices"] and skip["records"] is not None:
            idx = sorted(i for p, i, _ in skip["records"] if p == damaged_path)
            if idx != exp["indices"]:
                problems.append(f"skipped records name {skip['records']}, expected records "
                                f"{exp['indices']} of {exp['damaged']}")  # fmt: skip

    ver = observed["verify"]
    if ver is None:
        pass
    elif ver["error"]:
        problems.append(f"verify_records raised {ver['error']}: {_short(ver['message'], 300)}")
    else:
        corrupt = {
            p: [-1 if i is None else i for i, _ in v] for p, v in ver["corrupt"].items() if v
        }
        if exp["clean"]:
            if corrupt:
                problems.append(f"verify reports valid data as corrupt: {ver['messages'][:3]}")
        else:
            found = corrupt.get(damaged_path, [])
            if not found:
                problems.append(f"verify reports nothing for {exp['damaged']} "
                                f"(reports: {ver['messages'][:3]})")  # fmt: skip
            elif exp["indices"] is not None and sorted(found) != exp["indices"]:
                problems.append(f"verify reports records {sorted(found)} of {exp['damaged']}, "
                                f"expected {exp['indices']}")  # fmt: skip
    return problems


# --- the worker (subprocess side) -------------------------------------------------------------


def units(cases):
    """The worker's steps, in order: per group (variant x compression) each case's strict
    read, then one ``skip_corrupt`` read and one ``verify_records`` of all the group's
    shards at once (a per-case read when the grouped one raises)."""
    out, groups = [], {}
    for case in cases:
        groups.setdefault(case["group"], []).append(case["id"])
    strict = {case["id"] for case in cases if case.get("strict", True)}
    for group, ids in groups.items():
        out += [("strict", cid) for cid in ids if cid in strict]
        out += [("skip", group), ("verify", group)]
    return out


def _signatures(task, batch):
    _, target = batch
    if task == "classification":
        return [int(v) for v in target.numpy()]
    if task == "segmentation":
        return [int(v) for v in target.numpy()[:, 0, 0]]
    return [int(v) for v in target["classes"].numpy()[:, 0]]


def _read(fn):
    """Runs ``fn``; ``{"error", "message", "seconds"}`` of what it raised, plus what it
    returned."""
    start = time.perf_counter()
    try:
        out = {"error": None, "message": "", **fn()}
    except Exception as e:  # noqa: BLE001 - every Python-level outcome is recorded
        message = getattr(e, "message", None) or str(e)
        out = {"error": type(e).__name__, "message": str(message)[:4000], "yield": None,
               "count": None, "records": None}  # fmt: skip
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def write_case(case, root):
    """Writes a case's shards (and manifest) under ``root``; returns their paths."""
    folder = os.path.join(root, case["id"])
    os.makedirs(folder, exist_ok=True)
    paths = case_paths(case, root)
    for name, data in case["files"].items():
        with open(paths[name], "wb") as f:
            f.write(data)
    if case["manifest"]:
        names = sorted(case["manifest"])
        manifest = {
            "task": case["task"], "num_classes": NUM_CLASSES,
            "classes": [str(c) for c in range(NUM_CLASSES)],
            "compression": case["compression"], "file_pattern": "{split}-*.tfrecord",
            "splits": {"test": {"num_examples": sum(case["manifest"].values()), "shards": names,
                                "shard_counts": [case["manifest"][n] for n in names],
                                "num_skipped": 0, "skipped": []}},
        }  # fmt: skip
        with open(os.path.join(folder, "manifest.json"), "w") as f:
            json.dump(manifest, f)
    return sorted(paths.values())


def _strict(case, files):
    from tfcompress.data import build_dataset

    ds = build_dataset(files, case["task"], 2, training=False, num_classes=NUM_CLASSES)
    return {"yield": [s for b in ds for s in _signatures(case["task"], b)]}


def _skip(cases, files, root):
    """One ``skip_corrupt`` read of ``files`` (the shards of ``cases``, one task variant):
    ``{case id: read}``, each image given to its case by its stamp."""
    from tfcompress.data import build_dataset
    from tfcompress.data.errors import SkippedRecords

    task, channels = cases[0]["task"], cases[0]["channels"]
    skipped = SkippedRecords(max_reported=10**6)  # every skip listed, to tell cases apart
    size = {"output_size": (HEIGHT, WIDTH), "channels": channels}
    ds = build_dataset(files, task, 8, training=False, skip_corrupt=True, skipped=skipped,
                       num_classes=NUM_CLASSES, **size)  # fmt: skip
    by_stamp = {c["stamp"]: c["id"] for c in cases}
    got, stray = {c["id"]: [] for c in cases}, 0
    for batch in ds:
        for image, sig in zip(batch[0].numpy(), _signatures(task, batch), strict=True):
            cid = by_stamp.get(stamp_of(image)[0])
            if cid is None:
                stray += 1
            else:
                got[cid].append(sig)
    assert skipped.count == len(skipped.records)
    out = {}
    for case in cases:
        folder = os.path.abspath(os.path.join(root, case["id"]))
        mine = [list(r) for r in skipped.records
                if os.path.dirname(os.path.abspath(r[0])) == folder]  # fmt: skip
        out[case["id"]] = {"yield": got[case["id"]], "count": len(mine), "records": mine,
                           "stray": stray}  # fmt: skip
    return out


def _verify(cases, files, root):
    """One ``verify_records`` of ``files``: ``{case id: read}``."""
    from tfcompress.data import records

    report = records.verify_records(files, task=cases[0]["task"], num_classes=NUM_CLASSES)
    corrupt = {f.path: [[i, str(m)] for i, m in f.corrupt] for f in report.files}
    messages = report.messages()
    out = {}
    for case in cases:
        folder = os.path.abspath(os.path.join(root, case["id"]))
        mine = {p: v for p, v in corrupt.items() if os.path.dirname(os.path.abspath(p)) == folder}
        out[case["id"]] = {"corrupt": mine,
                           "messages": [m for m in messages if folder in m][:10]}  # fmt: skip
    return out


def run_unit(unit, by_id, groups, root):
    """``{case id: read}`` of one unit (see ``units``)."""
    kind, key = unit
    if kind == "strict":
        case = by_id[key]
        files = write_case(case, root)
        return {key: _read(lambda: _strict(case, files))}
    cases = groups[key]
    files = [p for case in cases for p in write_case(case, root)]
    fn = _skip if kind == "skip" else _verify
    return _grouped(fn, cases, files, root)


def _grouped(fn, cases, files, root):
    """``fn`` over all of ``cases`` at once; if it raises, over each half (down to one case,
    whose read then records the error)."""
    grouped = _read(lambda: {"reads": fn(cases, files, root)})
    if not grouped["error"]:
        return {cid: {**r, "error": None, "message": "", "seconds": grouped["seconds"]}
                for cid, r in grouped["reads"].items()}  # fmt: skip
    if len(cases) == 1:
        return {cases[0]["id"]: grouped}
    out = {}
    for half in (cases[: len(cases) // 2], cases[len(cases) // 2 :]):
        mine = [p for case in half for p in sorted(case_paths(case, root).values())]
        out.update(_grouped(fn, half, mine, root))
    return out


def main(argv):
    out_dir, results, first, stop = argv[1], argv[2], int(argv[3]), int(argv[4])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf  # noqa: F401 - loaded before the first unit is timed

    if len(argv) > 5:  # the parent's cases: its expectations hold for exactly these bytes
        with open(argv[5], "rb") as f:
            cases = pickle.load(f)
    else:
        cases = generate_cases()
    by_id = {c["id"]: c for c in cases}
    groups = {}
    for case in cases:
        groups.setdefault(case["group"], []).append(case)
    with open(results, "a") as log:

        def emit(**event):
            log.write(json.dumps(event) + "\n")
            log.flush()

        crash_at = os.environ.get("DATA_FUZZ_CRASH_UNIT")  # the harness's own test
        for n, unit in enumerate(units(cases)[first:stop], first):
            emit(event="start", unit=n)
            if crash_at is not None and int(crash_at) == n:
                os.kill(os.getpid(), signal.SIGSEGV)
            t0 = time.perf_counter()
            reads = run_unit(unit, by_id, groups, out_dir)
            emit(event="done", unit=n, reads=reads, seconds=round(time.perf_counter() - t0, 3))
        emit(event="end")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(sys.argv)
