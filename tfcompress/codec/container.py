"""The compressed file: magic, version, a JSON header, then the parts, each checksummed.

Layout (little-endian):

    8 bytes  MAGIC  b"TFCDEEP\\x00"
    u16      format version (`VERSION`)
    u32      header length H
    u32      CRC32C of the header
    H bytes  header: zlib-compressed UTF-8 JSON,
             {..., "parts": [{"name", "offset", "length", "crc32c"}]}
    ...      the parts, back to back; offsets count from the end of the header

Every part carries its own CRC32C, so a damaged file names the part it damaged; a file cut
short names the first part it cuts. Reading checks everything before anything is decoded:
a damaged file raises `CodecFileError`, never yields a wrong model.
"""

import json
import os
import struct
import zlib

import google_crc32c

from tfcompress.atomic import atomic_write_bytes
from tfcompress.numbers import is_int

MAGIC = b"TFCDEEP\x00"
VERSION = 1
_PREAMBLE = struct.Struct("<8sHII")


class CodecFileError(ValueError):
    """A compressed file that cannot be read; the message names the file and the part."""


def crc32c(data):
    return google_crc32c.value(bytes(data))


def write(path, header, parts):
    """Writes `header` (a JSON-able dict, without "parts") and `parts` (a list of
    `(name, bytes)`) to `path` atomically; returns the number of bytes written."""
    listing, offset = [], 0
    for name, data in parts:
        listing.append(
            {"name": name, "offset": offset, "length": len(data), "crc32c": crc32c(data)}
        )
        offset += len(data)
    names = [p["name"] for p in listing]
    if len(set(names)) != len(names):
        raise ValueError(f"Part names must be unique. Received: {names}")
    text = json.dumps({**header, "parts": listing}, separators=(",", ":")).encode("utf-8")
    text = zlib.compress(text, 9)
    blob = b"".join(
        [_PREAMBLE.pack(MAGIC, VERSION, len(text), crc32c(text)), text]
        + [bytes(data) for _, data in parts]
    )
    atomic_write_bytes(path, blob)
    return len(blob)


def read(path):
    """`(header, {part name: bytes})` of the file at `path`, every check passed."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        return parse(path, f.read())


def parse(path, blob):
    """`read` of the bytes `blob` of the file at `path` (named in the errors)."""
    header, start = read_header(path, blob)
    check_size(path, header, start, len(blob))
    parts = {}
    for part in header["parts"]:
        name, begin = part["name"], start + part["offset"]
        data = blob[begin : begin + part["length"]]
        if crc32c(data) != part["crc32c"]:
            raise CodecFileError(
                f"{path}: part {name!r} is corrupted: its CRC32C is {crc32c(data):#010x}, "
                f"the header says {part['crc32c']:#010x}."
            )
        parts[name] = data
    return header, parts


def read_header(path, blob):
    """`(header, offset of the first part)`; checks magic, version and the header CRC."""
    if len(blob) < _PREAMBLE.size:
        raise CodecFileError(
            f"{path}: the file is truncated: {len(blob)} bytes, shorter than the "
            f"{_PREAMBLE.size}-byte preamble (magic, version, header length, header CRC)."
        )
    magic, version, length, checksum = _PREAMBLE.unpack_from(blob)
    if magic != MAGIC:
        raise CodecFileError(
            f"{path}: not a tfcompress compressed file: it starts with {magic!r}, not {MAGIC!r}."
        )
    if version < 1:
        raise CodecFileError(
            f"{path}: part 'preamble' is corrupted: format version {version} does not exist "
            f"(versions start at 1)."
        )
    if version > VERSION:
        raise CodecFileError(
            f"{path}: file format version {version} is newer than this tfcompress reads "
            f"(version {VERSION}). Upgrade tfcompress to read it."
        )
    start = _PREAMBLE.size + length
    if start > len(blob):
        raise CodecFileError(
            f"{path}: the file is truncated: part 'header' needs bytes [{_PREAMBLE.size}, "
            f"{start}) but the file has {len(blob)} bytes."
        )
    text = blob[_PREAMBLE.size : start]
    if crc32c(text) != checksum:
        raise CodecFileError(
            f"{path}: part 'header' is corrupted: its CRC32C is {crc32c(text):#010x}, "
            f"the preamble says {checksum:#010x}."
        )
    try:
        header = json.loads(inflate(text).decode("utf-8"))
        _check_listing(header)
    except (zlib.error, UnicodeDecodeError, ValueError) as e:
        raise CodecFileError(
            f"{path}: part 'header' does not describe the parts: {type(e).__name__}: {e}"
        ) from e
    return header, start


# The most bytes a zlib-compressed JSON part (header, architecture) may inflate to: real
# ones are kilobytes; deflate expands up to ~1000x, so a crafted part could ask for GBs.
MAX_INFLATED_BYTES = 64 * 2**20


def inflate(data):
    """`zlib.decompress(data)`, refusing (ValueError) output past `MAX_INFLATED_BYTES`."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_INFLATED_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"it inflates to more than {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _check_listing(header):
    """Raises ValueError unless `header` is a dict listing its parts as dicts of a unique
    non-empty "name", and "offset", "length" and "crc32c" ints in range."""
    if not isinstance(header, dict) or not isinstance(header.get("parts"), list):
        raise ValueError(f"the header is no dict with a list of parts: {str(header)[:80]}")
    names = set()
    for i, part in enumerate(header["parts"]):
        if not isinstance(part, dict) or not isinstance(part.get("name"), str) or not part["name"]:
            raise ValueError(f"parts[{i}] has no name: {str(part)[:80]}")
        for key, high in (("offset", None), ("length", None), ("crc32c", 2**32)):
            value = part.get(key)
            if not is_int(value) or value < 0 or (high is not None and value >= high):
                raise ValueError(
                    f"part {part['name']!r}: {key} must be an int in [0, {high or 'inf'}). "
                    f"Received: {key}={value!r}"
                )
        if part["name"] in names:
            raise ValueError(f"part {part['name']!r} is listed twice")
        names.add(part["name"])


def check_size(path, header, start, size):
    """Raises naming `path` unless a file of `size` bytes holds exactly the parts `header`
    lists after the header's end `start`: the first part it cuts, or the bytes past the
    last part."""
    for part in header["parts"]:
        begin = start + part["offset"]
        end = begin + part["length"]
        if end > size:
            raise CodecFileError(
                f"{path}: the file is truncated: part {part['name']!r} needs bytes "
                f"[{begin}, {end}) but the file has {size} bytes."
            )
    expected = start + sum(p["length"] for p in header["parts"])
    if expected != size:
        raise CodecFileError(
            f"{path}: {size - expected} bytes follow the last part (expected {expected} bytes "
            f"in all, found {size})."
        )
