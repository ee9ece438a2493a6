"""The shard scan: framing, CRCs, GZIP streams and manifest counts, checked before TensorFlow
reads a byte; each bad input names the file and the record index."""

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest

from tfcompress.data import compression, encode, integrity, records
from tfcompress.data.errors import CorruptInputError, SkippedRecords

ROOT = os.path.dirname(os.path.dirname(__file__))
# One record whose length field says 2^40, with a valid length CRC, then 64 zero bytes.
CRAFTED = bytes.fromhex("0000000000010000aa3d6be4") + bytes(64)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}


@pytest.fixture(autouse=True)
def _fresh_cache():
    integrity.clear_cache()  # files rewritten within one mtime tick must be scanned again
    yield
    integrity.clear_cache()


def _example(i):
    return encode.classification_example(encode.encode_png(np.full((4, 5), i, np.uint8)), i % 2)


def _labelled(label):
    return encode.classification_example(encode.encode_png(np.zeros((4, 5), np.uint8)), label)


def _frame(data):
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", compression.masked_crc32c(length)) + data
            + struct.pack("<I", compression.masked_crc32c(data)))  # fmt: skip


def _stream(n):
    """``(uncompressed TFRecord bytes of n records, byte offset of each record)``."""
    frames = [_frame(_example(i)) for i in range(n)]
    offsets = np.cumsum([0] + [len(f) for f in frames])
    return b"".join(frames), [int(o) for o in offsets]


def _write(path, data):
    path.write_bytes(data)
    return str(path)


def _manifest(directory, counts, split="train", num_classes=2):
    """A manifest listing ``{basename: count}`` as one split."""
    entry = {"shards": list(counts), "shard_counts": list(counts.values()),
             "num_examples": sum(counts.values())}  # fmt: skip
    manifest = {"splits": {split: entry}, "num_classes": num_classes, "task": "classification"}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return str(directory / "manifest.json")


def _strict_error(path, compression="auto"):
    with pytest.raises(CorruptInputError) as info:
        integrity.check_shards([path], compression)
    return str(info.value)


def test_crc32c_matches_the_reference_and_the_pure_python_fallback(tmp_path, monkeypatch):
    assert compression.crc32c_extend(0, b"123456789") == 0xE3069283  # RFC 3720 check value
    data = np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes()
    fast = compression.crc32c_extend(compression.crc32c_extend(0, data[:777]), data[777:])
    assert compression._crc32c_extend_python(0, data) == fast
    assert compression.masked_crc32c(struct.pack("<Q", 2**40)) == 0xE46B3DAA  # CRAFTED's
    bad = bytearray(_stream(3)[0])
    bad[-30] ^= 1
    path = _write(tmp_path / "a.tfrecord", bytes(bad))
    fast = integrity.scan_shard(path, "")
    integrity.clear_cache()
    monkeypatch.setattr(compression, "_google_crc32c", None)
    monkeypatch.setattr(compression, "_warned_slow_crc", False)
    with mock.patch.object(compression.logging, "warning") as warning:
        assert integrity.scan_shard(path, "") == fast
    assert "google-crc32c is not installed" in warning.call_args_list[0].args[0]
    assert warning.call_count == 1  # once per process


def test_a_good_shard_scans_clean_and_is_cached(tmp_path):
    data, offsets = _stream(4)
    path = _write(tmp_path / "a.tfrecord", data)
    scan = integrity.scan_shard(path, "auto")
    assert (scan.ok, scan.num_records, scan.compression, scan.corrupt) == (True, 4, "", [])
    assert integrity.scan_shard(path, "") is scan  # cached by realpath, size, mtime
    assert [i for i, _ in scan.good_records()] == [0, 1, 2, 3]
    assert scan.good_records()[2][1] == _example(2)
    gz = _write(
        tmp_path / "b.tfrecord",
        gzip.compress(data[: offsets[2]]) + gzip.compress(data[offsets[2] :]),
    )  # fmt: skip  (two gzip members, as TensorFlow reads them)
    assert integrity.check_shards([gz])[0].num_records == 4


def test_crafted_length_is_reported_not_allocated(tmp_path):
    path = _write(tmp_path / "crafted.tfrecord", CRAFTED)
    assert _strict_error(path) == (
        f"Corrupt record in {path}: record 0 (byte 0): truncated record: length field says "
        "1099511627776 bytes, 64 remain in the file"
    )
    # The same length inside a GZIP stream: refused before a byte of it is read.
    gz = _write(tmp_path / "crafted.gz.tfrecord", gzip.compress(CRAFTED))
    assert _strict_error(gz) == (
        f"Corrupt record in {gz}: record 0 (byte 0 of the decompressed stream): length field "
        "says 1099511627776 bytes, more than a record can hold (2147483647)"
    )
    small = struct.pack("<Q", 1000)
    header = small + struct.pack("<I", compression.masked_crc32c(small))
    gz = _write(tmp_path / "short.tfrecord", gzip.compress(header + bytes(64)))
    assert _strict_error(gz, "GZIP") == (
        f"Corrupt record in {gz}: record 0 (byte 0 of the decompressed stream): truncated "
        "record: length field says 1000 bytes, 64 remain in the stream"
    )


def test_max_record_bytes_bounds_a_gzip_length(tmp_path, monkeypatch):
    monkeypatch.setattr(integrity, "MAX_RECORD_BYTES", 100)
    data, _ = _stream(1)
    gz = _write(tmp_path / "a.tfrecord", gzip.compress(data))
    assert _strict_error(gz).endswith(
        f"record 0 (byte 0 of the decompressed stream): length field says {len(data) - 16} "
        "bytes, more than a record can hold (100)"
    )


def test_flipped_data_byte_names_the_record_and_the_walk_goes_on(tmp_path):
    data, offsets = _stream(4)
    bad = bytearray(data)
    bad[offsets[1] + 20] ^= 0x01
    path = _write(tmp_path / "a.tfrecord", bytes(bad))
    assert _strict_error(path) == (
        f"Corrupt record in {path}: record 1 (byte {offsets[1]}): data CRC mismatch"
    )
    scan = integrity.scan_shard(path, "")
    assert scan.num_records == 4 and scan.corrupt == [(1, f"data CRC mismatch (byte {offsets[1]})")]
    assert [i for i, _ in scan.good_records()] == [0, 2, 3]  # TF's ignore_errors keeps only 0


def test_flipped_length_byte_stops_the_framing(tmp_path):
    data, offsets = _stream(4)
    bad = bytearray(data)
    bad[offsets[2] + 1] ^= 0x40
    path = _write(tmp_path / "a.tfrecord", bytes(bad))
    length = struct.unpack_from("<Q", bad, offsets[2])[0]
    assert _strict_error(path) == (
        f"Corrupt record in {path}: record 2 (byte {offsets[2]}): length CRC mismatch: the "
        f"length field ({length}) cannot be trusted, so nothing after it can be framed"
    )
    assert [i for i, _ in integrity.scan_shard(path, "").good_records()] == [0, 1]


def test_truncated_header_and_truncated_data(tmp_path):
    data, offsets = _stream(3)
    path = _write(tmp_path / "header.tfrecord", data[: offsets[2] + 5])
    assert _strict_error(path) == (
        f"Corrupt record in {path}: record 2 (byte {offsets[2]}): truncated record header: "
        "5 of 12 bytes"
    )
    length = offsets[3] - offsets[2] - 16
    path = _write(tmp_path / "data.tfrecord", data[: offsets[2] + 12 + 7])
    assert _strict_error(path) == (
        f"Corrupt record in {path}: record 2 (byte {offsets[2]}): truncated record: length "
        f"field says {length} bytes, 7 remain in the file"
    )
    path = _write(tmp_path / "crc.tfrecord", data[:-2])
    assert _strict_error(path) == (
        f"Corrupt record in {path}: record 2 (byte {offsets[2]}): truncated record: data CRC "
        "2 of 4 bytes"
    )


def test_gzip_trailing_garbage(tmp_path):
    data, offsets = _stream(3)
    packed = gzip.compress(data)
    path = _write(tmp_path / "a.tfrecord", packed + b"garbage!")
    assert _strict_error(path) == (
        f"Corrupt record in {path}: record 3 (byte {offsets[3]} of the decompressed stream): "
        f"trailing garbage after the end of the GZIP stream: 8 bytes from compressed byte "
        f"{len(packed)}"
    )
    scan = integrity.scan_shard(path, "GZIP")
    assert scan.num_records == 3 and len(scan.good_records()) == 3


def test_truncated_gzip_inside_a_record_and_at_the_end(tmp_path):
    data, offsets = _stream(3)
    packed = gzip.compress(data, mtime=0)
    cut = _write(tmp_path / "cut.tfrecord", packed[: len(packed) // 2])
    message = _strict_error(cut)
    assert message.startswith(f"Corrupt record in {cut}: record ")
    assert message.endswith(
        f"truncated GZIP stream: no end-of-stream marker in its {len(packed) // 2} bytes "
        "(an interrupted write or copy?)"
    )
    # Only the gzip trailer missing: TensorFlow reads the 3 records without an error.
    tail = _write(tmp_path / "tail.tfrecord", packed[:-8])
    assert _strict_error(tail) == (
        f"Corrupt record in {tail}: record 3 (byte {offsets[3]} of the decompressed stream): "
        f"truncated GZIP stream: no end-of-stream marker in its {len(packed) - 8} bytes (an "
        "interrupted write or copy?)"
    )


def test_corrupt_gzip_header_and_data(tmp_path):
    data, _ = _stream(3)
    plain = _write(tmp_path / "plain.tfrecord", data)
    assert _strict_error(plain, "GZIP") == (
        f"Corrupt record in {plain}: record 0 (byte 0 of the decompressed stream): not a GZIP "
        "stream: corrupt GZIP header (incorrect header check) (the file looks uncompressed, "
        "read as GZIP: pass compression='auto')"
    )
    packed = _write(tmp_path / "packed.tfrecord", gzip.compress(data))
    assert _strict_error(packed, "").endswith(
        "(the file looks GZIP, read as uncompressed: pass compression='auto')"
    )
    packed = bytearray(gzip.compress(data, mtime=0))
    packed[-6] ^= 0xFF  # the gzip trailer's CRC-32
    bad = _write(tmp_path / "bad.tfrecord", bytes(packed))
    assert _strict_error(bad) == (
        f"Corrupt record in {bad}: record 0 (byte 0 of the decompressed stream): corrupt GZIP "
        "data after compressed byte 0 (incorrect data check)"
    )


def test_empty_file(tmp_path):
    path = _write(tmp_path / "train-00000-of-00001.tfrecord", b"")
    assert _strict_error(path) == f"Corrupt record in {path}: record 0: empty file (0 bytes)"
    manifest = _manifest(tmp_path, {"train-00000-of-00001.tfrecord": 0})
    assert integrity.check_shards([path])[0].num_records == 0  # listed as empty: fine
    _manifest(tmp_path, {"train-00000-of-00001.tfrecord": 2})
    assert _strict_error(path) == (
        f"Corrupt record in {path}: record 0: empty file (0 bytes); {manifest} lists 2 "
        "records for it, the file holds 0: 2 missing"
    )


def test_mixed_compressions_name_both_files(tmp_path):
    data, _ = _stream(2)
    gz = _write(tmp_path / "a.tfrecord", gzip.compress(data))
    plain = _write(tmp_path / "b.tfrecord", data)
    with pytest.raises(CorruptInputError) as info:
        integrity.check_shards([gz, plain], skip_corrupt=True, skipped=SkippedRecords())
    assert str(info.value) == (
        f"TFRecord files mix compressions: {gz} is GZIP, {plain} is uncompressed. Convert "
        "them alike or pass compression= explicitly."
    )


def test_manifest_counts(tmp_path):
    data, offsets = _stream(3)
    names = ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    manifest = _manifest(tmp_path, {names[0]: 3, names[1]: 3})
    cut = _write(tmp_path / names[0], data[: offsets[2]])  # cut at a record boundary
    good = _write(tmp_path / names[1], gzip.compress(data, mtime=0))
    assert integrity.check_shards([good])[0].num_records == 3
    assert _strict_error(cut) == (
        f"Corrupt record in {cut}: record 2: {manifest} lists 3 records for it, the file holds "
        "2: 1 missing (cut at a record boundary?)"
    )
    # A GZIP copy cut at a record boundary: the stream problem and the count, one problem.
    packed = gzip.compress(data[: offsets[1]], mtime=0)[:-8]
    _write(tmp_path / names[1], packed)
    assert _strict_error(good) == (
        f"Corrupt record in {good}: record 1 (byte {offsets[1]} of the decompressed stream): "
        f"truncated GZIP stream: no end-of-stream marker in its {len(packed)} bytes (an "
        f"interrupted write or copy?); {manifest} lists 3 records for it, the file holds 1: "
        "2 missing"
    )
    # Cut inside record 1: the cut record is read (and corrupt), record 2 is missing.
    _write(tmp_path / names[0], data[: offsets[1] + 20])
    skipped = SkippedRecords()
    integrity.check_shards([cut], skip_corrupt=True, skipped=skipped)
    length = offsets[2] - offsets[1] - 16
    assert skipped.records == [
        (cut, 1, f"truncated record: length field says {length} bytes, 8 remain in the file "
                 f"(byte {offsets[1]})"),
        (cut, 2, f"{manifest} lists 3 records for it, the file holds 2: 1 missing"),
    ]  # fmt: skip
    _write(tmp_path / names[0], data[: offsets[2]])
    _manifest(tmp_path, {names[0]: 1, names[1]: 3})  # fewer than the file holds: fatal
    with pytest.raises(CorruptInputError) as info:
        integrity.check_shards([cut], skip_corrupt=True, skipped=SkippedRecords())
    assert str(info.value) == (
        f"Corrupt file {cut}: {manifest} lists 1 records for it, the file holds 2"
    )


def test_unlisted_and_missing_shards(tmp_path):
    data, _ = _stream(2)
    names = ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    manifest = _manifest(tmp_path, {names[0]: 2, names[1]: 2})
    first = _write(tmp_path / names[0], data)
    leftover = _write(tmp_path / "train-00003-of-00004.tfrecord", data)
    with pytest.raises(CorruptInputError) as info:
        integrity.check_shards([first, leftover])
    assert str(info.value) == (
        f"Missing shard {tmp_path / names[1]}: {manifest} lists it (2 records of split "
        "'train') but it does not exist: an interrupted conversion or copy?"
    )
    _write(tmp_path / names[1], data)
    assert _strict_error(leftover) == (
        f"Corrupt file {leftover}: not listed in {manifest}: a leftover of an earlier conversion?"
    )
    os.remove(tmp_path / names[1])
    skipped = SkippedRecords()
    assert len(integrity.check_shards([first], skip_corrupt=True, skipped=skipped)) == 1
    assert skipped.count == 2 and skipped.records[1][:2] == (str(tmp_path / names[1]), 1)


def test_unreadable_manifest(tmp_path):
    data, _ = _stream(1)
    path = _write(tmp_path / "train-00000-of-00001.tfrecord", data)
    (tmp_path / "manifest.json").write_text('{"splits": ')  # an interrupted write
    assert _strict_error(path) == (
        f"Unreadable shard manifest {tmp_path / 'manifest.json'}: Expecting value: line 1 "
        "column 12 (char 11)"
    )
    (tmp_path / "manifest.json").write_text('{"other": "tool"}')  # not a shard manifest
    assert integrity.check_shards([path])[0].ok


def test_skip_mode_counts_every_bad_record_and_keeps_true_indices(tmp_path):
    data, offsets = _stream(6)
    bad = bytearray(data)
    for i in (1, 3):
        bad[offsets[i] + 30] ^= 0x10
    name = "train-00000-of-00001.tfrecord"
    manifest = _manifest(tmp_path, {name: 8})  # 2 more than the file holds: cut short
    path = _write(tmp_path / name, bytes(bad))
    skipped = SkippedRecords()
    (scan,) = integrity.check_shards([path], skip_corrupt=True, skipped=skipped)
    assert not scan.ok and skipped.count == 4
    missing = (
        f"{manifest} lists 8 records for it, the file holds 6: 2 missing (cut at a record "
        "boundary?)"
    )
    assert skipped.records == [
        (path, 1, f"data CRC mismatch (byte {offsets[1]})"),
        (path, 3, f"data CRC mismatch (byte {offsets[3]})"),
        (path, 6, missing),
        (path, 7, missing),
    ]
    good = scan.good_records()
    assert [i for i, _ in good] == [0, 2, 4, 5]
    assert [r for _, r in good] == [_example(i) for i in (0, 2, 4, 5)]


def test_structure_checked_with_a_task(tmp_path, monkeypatch):
    data, offsets = _stream(2)
    path = _write(tmp_path / "a.tfrecord", data + _frame(b"\xff\xff not an example"))
    assert integrity.check_shards([path])[0].ok  # framing alone is fine
    with pytest.raises(CorruptInputError) as info:
        integrity.check_shards([path], task="classification")
    assert str(info.value).startswith(
        f"Corrupt record in {path}: record 2 (byte {offsets[2]}): not a tf.train.Example"
    )
    skipped = SkippedRecords()
    (scan,) = integrity.check_shards([path], task="classification", skip_corrupt=True,
                                     skipped=skipped)  # fmt: skip
    assert skipped.count == 1 and [i for i, _ in scan.good_records()] == [0, 1]
    integrity.clear_cache()
    integrity.check_shards([path], task="classification", skip_corrupt=True,
                           skipped=SkippedRecords())  # fmt: skip
    monkeypatch.setattr(integrity, "_walk", None)  # the framing scan comes from that read
    assert integrity.scan_shard(path, "").ok


def test_a_file_changed_after_its_scan_is_not_read(tmp_path):
    data, _ = _stream(2)
    path = _write(tmp_path / "a.tfrecord", data)
    scan = integrity.scan_shard(path, "")
    _write(tmp_path / "a.tfrecord", data + data)
    with pytest.raises(CorruptInputError, match=r"a\.tfrecord changed while being read"):
        scan.good_records()
    assert integrity.scan_shard(path, "").num_records == 4  # a new size: scanned again


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"at least one file\. Received: files=\[\]"):
        integrity.check_shards([])
    with pytest.raises(ValueError, match="skip_corrupt=True needs a SkippedRecords"):
        integrity.check_shards(["x.tfrecord"], skip_corrupt=True)
    with pytest.raises(ValueError, match=r"skipped counts the records skip_corrupt=True leaves "
                                         r"out; .*Received: skip_corrupt=False, skipped=<"):
        integrity.check_shards(["x.tfrecord"], skipped=SkippedRecords())  # was left unread
    with pytest.raises(ValueError, match=r"Received: compression='ZLIB'"):
        integrity.scan_shard("x.tfrecord", "ZLIB")


@pytest.mark.slow  # decodes and validates with TensorFlow: ~4 s once it is warm
def test_verify_reports_every_problem_of_a_directory(tmp_path):
    data, offsets = _stream(3)
    names = [f"train-0000{i}-of-00004.tfrecord" for i in range(4)]
    manifest = _manifest(tmp_path, {names[0]: 5, names[1]: 3, names[2]: 3, names[3]: 2})
    junk = _frame(b"\xff\xff not an example")  # record 0: task and channels come from record 1
    first = _write(tmp_path / names[0], junk + data + _frame(_labelled(5)))  # 2 classes
    cut = _write(tmp_path / names[1], data[: offsets[2]])  # cut at a record boundary
    mixed = _write(tmp_path / names[2], gzip.compress(data))
    leftover = _write(tmp_path / "train-00009-of-00010.tfrecord", data)
    report = records.verify_records(str(tmp_path / "*.tfrecord"))
    assert (report.task, report.num_records, report.num_corrupt) == ("classification", 13, 6)
    assert report.messages()[0].startswith(f"{first}: record 0: not a tf.train.Example (")
    assert report.messages()[1:] == [
        f"{first}: record 4: image/class/label 5 outside [0, 2)",
        f"{cut}: record 2: {manifest} lists 3 records for it, the file holds 2: 1 missing "
        "(cut at a record boundary?)",
        f"{mixed}: GZIP while {first} is uncompressed: one reader cannot read both (convert "
        "them alike)",
        f"{leftover}: not listed in {manifest}: a leftover of an earlier conversion?",
        f"{tmp_path / names[3]}: missing: {manifest} lists it (2 records of split 'train') but "
        "it does not exist",
    ]
    wide = records.verify_records(first, num_classes=10).messages()
    assert wide[1:] == report.messages()[-1:]  # no label problem with 10 classes
    # Two directories in one call, validated together: each with its manifest's classes.
    other = tmp_path / "ten"
    other.mkdir()
    _manifest(other, {names[0]: 5}, num_classes=10)
    _write(other / names[0], junk + data + _frame(_labelled(5)))
    ten = str(other / names[0])
    both = records.verify_records([first, ten]).messages()  # sorted: .../ten/... first
    assert both[0].startswith(f"{ten}: record 0: not a tf.train.Example")
    assert both[1:] == report.messages()[:2] + report.messages()[-1:]  # label 5 < 10 in ten
    with pytest.raises(CorruptInputError) as info:
        records.verify_records(first, raise_on_error=True)
    assert str(info.value).startswith(
        f"Corrupt record in {first}: record 0: not a tf.train.Example ("
    )


def _crafted_set(tmp_path):
    """The crafted shard, and one whose length also spells the gzip magic (auto-detection
    must not hand it to TensorFlow either)."""
    crafted = _write(tmp_path / "crafted.tfrecord", CRAFTED)
    magic = b"\x1f\x8b\x08\x00\x00\x01\x00\x00"
    header = magic + struct.pack("<I", compression.masked_crc32c(magic))
    disguised = _write(tmp_path / "disguised.tfrecord", header + bytes(64))
    return crafted, disguised


@pytest.mark.slow
def test_crafted_length_verify_records_and_inspect_in_a_subprocess(tmp_path):
    crafted, disguised = _crafted_set(tmp_path)
    unreadable = tmp_path / "sub" / "folder.tfrecord"  # matches the pattern, is a folder
    unreadable.mkdir(parents=True)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        from tfcompress.data import records
        for path in ({crafted!r}, {disguised!r}):
            print("\\n".join(records.verify_records(path).messages()))
            try:
                records.inspect_records(path)
            except ValueError as e:
                print("inspect:", e)
        from absl import flags
        from tfrecords_tools import verify
        flags.FLAGS(["verify", "--file_pattern={unreadable}"])
        try:
            verify.main([])
        except SystemExit as e:
            print("verify:", e.code)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=ENV, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"{crafted}: record 0: truncated record: length field says 1099511627776 bytes, 64 "
        "remain in the file (byte 0)"
    )
    refused = "; 1 problem: inspect reads only valid shards, run verify to list every problem"
    assert lines[1] == f"inspect: Corrupt record in {lines[0]}{refused}"  # verify's message
    # Its length spells the gzip magic: read as GZIP, which it is not either.
    assert lines[2] == (
        f"{disguised}: record 0: corrupt GZIP data after compressed byte 0 (invalid block "
        "type) (byte 0)"
    )
    assert lines[3] == f"inspect: Corrupt record in {lines[2]}{refused}"
    assert lines[4] == f"verify: error: [Errno 21] Is a directory: '{unreadable}'"


@pytest.mark.slow
def test_crafted_length_verify_command_line_in_a_subprocess(tmp_path):
    crafted, _ = _crafted_set(tmp_path)
    data, offsets = _stream(4)  # labels 0, 1, 0, 1
    bad = bytearray(data)
    bad[offsets[1] + 20] ^= 0x01
    flipped = _write(tmp_path / "flipped.tfrecord", bytes(bad))
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.verify", "--num_classes=1",
         f"--file_pattern={tmp_path}/[cf]*.tfrecord"],
        capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        f"corrupt: {crafted}: record 0: truncated record: length field says 1099511627776 "
        "bytes, 64 remain in the file (byte 0)",
        f"corrupt: {flipped}: record 1: data CRC mismatch (byte {offsets[1]})",
        f"corrupt: {flipped}: record 3: image/class/label 1 outside [0, 1)",
        "5 records in 2 files (classification): 3 corrupt",
    ]


def test_a_zero_byte_shard_goes_with_either_compression(tmp_path):
    data, _ = _stream(2)
    gz = _write(tmp_path / "a.tfrecord", gzip.compress(data))
    empty = _write(tmp_path / "b.tfrecord", b"")
    assert compression.resolve([empty, gz], "auto") == "GZIP"
    assert compression.resolve([empty], "auto") == ""
    report = records.verify_records([gz, empty])  # reported as empty, not as mixed
    assert report.messages() == [f"{empty}: record 0: empty file (0 bytes)"]


def test_a_converter_given_a_file_as_output_dir_names_the_flag(tmp_path):
    """It printed `error: [Errno 17] File exists: ...`, naming no flag, with a misleading
    reason; it now says what the tfcompress scripts say."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.fashion_mnist", f"--output_dir={afile}"],
        capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert (f"error: output_dir='{afile}' is a file, not a directory: give a directory to "
            "write into.") in result.stderr.splitlines()
    assert afile.read_text() == "x"
