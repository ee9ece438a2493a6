"""TFRecord file compression: the values readers accept, and ``"auto"`` detection.

Shards are written GZIP-compressed or uncompressed (``tfrecords_tools --compression``);
readers default to ``"auto"`` and look at each file, so a reader never needs to be told
how the converter was run.
"""

import struct

import tensorflow as tf

AUTO = "auto"
GZIP = "GZIP"
NONE = ""
_GZIP_MAGIC = b"\x1f\x8b\x08"  # gzip header: magic bytes, then method 8 (deflate)


def _crc32c_table():
    table = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ (0x82F63B78 if n & 1 else 0)
        table.append(n)
    return table


_CRC32C = _crc32c_table()


def _masked_crc32c(data):
    """The masked CRC-32C a TFRecord frame stores after its length."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def check(compression):
    """Raises naming ``compression`` unless it is ``"auto"``, ``"GZIP"`` or ``""``."""
    if compression not in (AUTO, GZIP, NONE):
        raise ValueError(
            f"compression must be 'auto', 'GZIP' or '' (uncompressed). "
            f"Received: compression={compression!r}"
        )


def detect(path):
    """``"GZIP"`` or ``""``: how the TFRecord file at ``path`` is compressed.

    A file that starts with the gzip header is GZIP unless its first record also reads as
    an uncompressed record (a record length whose low bytes happen to spell the header).
    Files that are neither (corrupt, truncated) come back as what their first bytes say,
    so ``verify`` reports them record by record. The length's CRC is checked here first:
    it rules out nearly every GZIP file without asking TensorFlow to fail a read (~20 ms
    a file, which a pattern of a thousand shards would pay at every start).
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(12)  # a TFRecord frame starts with u64 length, u32 masked CRC-32C
    if head[: len(_GZIP_MAGIC)] != _GZIP_MAGIC:
        return NONE
    if len(head) < 12 or struct.unpack("<I", head[8:])[0] != _masked_crc32c(head[:8]):
        return GZIP  # the uncompressed reader would reject this length
    try:
        next(iter(tf.data.TFRecordDataset(path, compression_type=NONE)))
    except (tf.errors.OpError, StopIteration):
        return GZIP
    return NONE


def resolve(files, compression):
    """The concrete compression of ``files`` (a path or a list of paths).

    ``"auto"`` detects it from the first file and raises, naming both files, if another
    file of the list is compressed differently (one ``TFRecordDataset`` reads them all).
    """
    check(compression)
    if compression != AUTO:
        return compression
    files = [files] if isinstance(files, str) else list(files)
    found = detect(files[0])
    for path in files[1:]:
        other = detect(path)
        if other != found:
            raise ValueError(
                f"TFRecord files mix compressions: {files[0]} is "
                f"{found or 'uncompressed'}, {path} is {other or 'uncompressed'}. "
                "Convert them alike or pass compression= explicitly."
            )
    return found
