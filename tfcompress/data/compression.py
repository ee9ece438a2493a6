"""TFRecord file compression: the values readers accept, and ``"auto"`` detection.

Shards are written GZIP-compressed or uncompressed (``tfrecords_tools --compression``);
readers default to ``"auto"`` and look at each file, so a reader never needs to be told
how the converter was run.
"""

import tensorflow as tf

AUTO = "auto"
GZIP = "GZIP"
NONE = ""
_GZIP_MAGIC = b"\x1f\x8b\x08"  # gzip header: magic bytes, then method 8 (deflate)


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
    an uncompressed record (a record length whose low bytes happen to spell the header;
    the reader then checks the length's CRC). Files that are neither (corrupt, truncated)
    come back as what their first bytes say, so ``verify`` reports them record by record.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(len(_GZIP_MAGIC))
    if head != _GZIP_MAGIC:
        return NONE
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
