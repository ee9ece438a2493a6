"""`check`: every field of a compressed file's header, its type and range, in one place.

A CRC is no signature: a crafted file can hold any JSON header with valid checksums. The
decoder and the report read the header only after `check` (and `container.read_header`,
which checks the parts listing) passed, so a field of the wrong type or range raises
`CodecFileError` naming the file, the part 'header' and the field, never a raw
`KeyError`, `TypeError` or `IndexError` from deeper down.
"""

from tfcompress.codec.container import CodecFileError
from tfcompress.codec.schema import FORMAT, SHARED_KINDS, part_name, raw_dtype
from tfcompress.numbers import is_int
from tfcompress.sharing.kmeans import MAX_BITS

STORAGES = ("shared", "raw")
# A kernel's pruned positions cost no byte, so a file bounds its parameters only loosely:
# a header may declare at most this many per byte of the file (Deep Compression's LeNets
# hold ~10 per byte, a layer pruned to 0.1 % ~1,000): a 300-byte file cannot make decode
# allocate gigabytes.
PARAMS_PER_BYTE = 2**12
COUNTS = ("count", "entries", "weight_code_bits", "index_code_bits")  # ints >= 0


class _Invalid(ValueError):
    """One field of the header is wrong: `where` it is, `what` it must be, its value."""

    def __init__(self, where, what, value):
        text = repr(value)
        text = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"{where} {what}. Received: {text}")


def _get(entry, key, where, what, valid):
    value = entry.get(key) if isinstance(entry, dict) else None
    if not valid(value):
        raise _Invalid(f"{where}{key!r}", f"must be {what}", value)
    return value


def _count(value):
    return is_int(value) and value >= 0


def _bits(value):
    return is_int(value) and 1 <= value <= MAX_BITS


def _name(value):
    return isinstance(value, str) and value != ""


def _check_weight(layer, w, where, sizes):
    """Checks the weight entry `w` of `layer`; returns `(name, size)`."""
    name = _get(w, "name", where, "a non-empty string", _name)
    where = f"layer {layer!r} weight {name!r}: "
    storage = _get(w, "storage", where, f"one of {list(STORAGES)}", STORAGES.__contains__)
    shape = _get(w, "shape", where, "a list of ints >= 0",
                 lambda s: isinstance(s, list) and all(map(_count, s)))  # fmt: skip
    size = 1
    for dim in shape:
        size *= dim
    needed = {}
    if storage == "raw":
        try:
            dtype = raw_dtype(w.get("dtype"))
        except ValueError as e:
            raise _Invalid(f"{where}'dtype'", "must be a raw weight's dtype", w.get("dtype")) from e
        needed[part_name(layer, name)] = size * dtype.itemsize
    else:
        bits = _get(w, "bits", where, f"an int in [1, {MAX_BITS}]", _bits)
        _get(w, "index_bits", where, f"an int in [1, {MAX_BITS}]", _bits)
        count, entries, weight_bits, index_bits = (
            _get(w, key, where, "an int >= 0", _count) for key in COUNTS
        )
        if not count <= min(entries, size):
            raise _Invalid(f"{where}'count'", f"must be at most 'entries' ({entries}) and "
                           f"the kernel's size ({size})", count)  # fmt: skip
        if not entries <= min(weight_bits, index_bits):  # each code takes a bit at least
            raise _Invalid(f"{where}'entries'", "must be at most the code bits "
                           f"({weight_bits}, {index_bits})", entries)  # fmt: skip
        needed[part_name(layer, name, "codebook")] = 4 * 2**bits
        for kind in SHARED_KINDS[1:]:
            needed[part_name(layer, name, kind)] = None  # a Huffman stream: any length
    for key, length in needed.items():
        if key not in sizes:
            raise _Invalid(f"{where}part {key!r}", "must be listed in the header's parts", None)
        if length is not None and sizes[key] != length:
            raise _Invalid(f"{where}part {key!r}", f"must hold {length} bytes (shape "
                           f"{shape}, storage {storage!r})", sizes[key])  # fmt: skip
    return name, size


def check(path, header, file_bytes):
    """Raises `CodecFileError` naming `path` unless `header` (its parts listing checked by
    `container.read_header`) is of this format and each layer entry lists its weights'
    names, storage, shapes, dtypes, bits and counts within range, each with the parts it
    needs listed at the size it needs (a raw weight's bytes, a codebook's 4 bytes per
    centroid), and all their parameters are at most `PARAMS_PER_BYTE` per byte of the
    file (`file_bytes` long)."""
    if header.get("format") != FORMAT:
        raise CodecFileError(
            f"{path}: the header's format is {header.get('format')!r}, not {FORMAT!r}."
        )
    sizes = {p["name"]: p["length"] for p in header["parts"]}
    try:
        layers = _get(header, "layers", "", "a list", lambda v: isinstance(v, list))
        seen, params = set(), 0
        for i, entry in enumerate(layers):
            layer = _get(entry, "name", f"layers[{i}] ", "a non-empty string", _name)
            if layer in seen:
                raise _Invalid(f"layers[{i}] 'name'", "must be unique", layer)
            seen.add(layer)
            where = f"layer {layer!r}: "
            weights = _get(entry, "weights", where, "a non-empty list",
                           lambda v: isinstance(v, list) and v)  # fmt: skip
            checked = [_check_weight(layer, w, f"{where}weights[{j}] ", sizes)
                       for j, w in enumerate(weights)]  # fmt: skip
            names = [name for name, _ in checked]
            if len(set(names)) != len(names):
                raise _Invalid(f"{where}'weights'", "must have unique names", names)
            params += sum(size for _, size in checked)
        if params > PARAMS_PER_BYTE * file_bytes:
            raise _Invalid("'layers'", f"must declare at most {PARAMS_PER_BYTE} parameters "
                           f"per byte of the file ({file_bytes} bytes)", params)  # fmt: skip
    except _Invalid as e:
        raise CodecFileError(f"{path}: part 'header' is invalid: {e}") from e
