"""`decode`: the compressed file back into a Keras model of plain layers.

The model is rebuilt from the architecture stored in the file; each shared kernel is
`codebook[symbol]` at its surviving positions and +0.0 elsewhere, which is bit for bit
what `strip_shared` gives. Every part is checked (`container.read`) before any is decoded,
and a part that does not decode to what the header describes raises naming it.
"""

import json
import os
import zlib

import keras
import numpy as np

from tfcompress.codec import container, huffman
from tfcompress.codec.container import CodecFileError
from tfcompress.codec.relative import from_relative
from tfcompress.codec.schema import ARCHITECTURE, FORMAT, part_name


def _decode_shared(path, layer, entry, parts):
    shape = tuple(entry["shape"])
    size = int(np.prod(shape, dtype=np.int64))
    key = part_name(layer, entry["name"], "codebook")
    codebook = np.frombuffer(parts[key], dtype="<f4").astype(np.float32)
    if codebook.size != 2 ** entry["bits"]:
        raise CodecFileError(
            f"{path}: part {key!r} holds {codebook.size} centroids; the header says "
            f"{2 ** entry['bits']} ({entry['bits']} bits)."
        )
    key = part_name(layer, entry["name"], "weights")
    try:
        symbols = huffman.decode(parts[key], entry["entries"], entry["weight_code_bits"])
        key = part_name(layer, entry["name"], "indices")
        runs = huffman.decode(parts[key], entry["entries"], entry["index_code_bits"])
        if runs.size and runs.max() >= 2 ** entry["index_bits"]:
            raise ValueError(f"a relative index exceeds {entry['index_bits']} bits")
        positions, symbols = from_relative(runs, symbols, codebook.size, size)
    except ValueError as e:
        raise CodecFileError(f"{path}: part {key!r} does not decode: {e}") from e
    if positions.size != entry["count"]:
        raise CodecFileError(
            f"{path}: part {part_name(layer, entry['name'], 'weights')!r} holds "
            f"{positions.size} weights; the header says {entry['count']}."
        )
    kernel = np.zeros(size, dtype=np.float32)
    kernel[positions] = codebook[symbols]
    return kernel.reshape(shape)


def _decode_raw(path, layer, entry, parts):
    key = part_name(layer, entry["name"])
    dtype = np.dtype(entry["dtype"])
    size = int(np.prod(entry["shape"], dtype=np.int64))
    if len(parts[key]) != size * dtype.itemsize:
        raise CodecFileError(
            f"{path}: part {key!r} has {len(parts[key])} bytes; shape {entry['shape']} of "
            f"{dtype.name} needs {size * dtype.itemsize}."
        )
    return np.frombuffer(parts[key], dtype=dtype).reshape(entry["shape"])


_DECODERS = {"shared": _decode_shared, "raw": _decode_raw}


def decode(path):
    """The plain Keras model stored in the compressed file at `path` (see `encode`)."""
    path = os.fspath(path)
    header, parts = container.read(path)
    try:
        return _rebuild(path, header, parts)
    except (KeyError, TypeError) as e:  # a header written by hand, its CRC valid
        raise CodecFileError(
            f"{path}: part 'header' lacks or garbles an entry: {type(e).__name__}: {e}"
        ) from e


def _rebuild(path, header, parts):
    if header.get("format") != FORMAT:
        raise CodecFileError(
            f"{path}: the header's format is {header.get('format')!r}, not {FORMAT!r}."
        )
    try:
        config = json.loads(zlib.decompress(parts[ARCHITECTURE]).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError) as e:
        raise CodecFileError(f"{path}: part {ARCHITECTURE!r} does not decode: {e}") from e
    model = keras.saving.deserialize_keras_object(config)
    stored = {entry["name"]: entry for entry in header["layers"]}
    for layer in model.layers:
        if not layer.weights:
            continue
        entry = stored.pop(layer.name, None)
        names = [w.name for w in layer.weights]
        held = None if entry is None else [w["name"] for w in entry["weights"]]
        if held != names:
            raise CodecFileError(
                f"{path}: layer '{layer.name}' of the architecture has weights {names}; the "
                f"file holds {held}."
            )
        values = [_DECODERS[w["storage"]](path, layer.name, w, parts) for w in entry["weights"]]
        for w, value in zip(layer.weights, values):
            if tuple(w.shape) != value.shape:
                raise CodecFileError(
                    f"{path}: weight {part_name(layer.name, w.name)!r} has shape "
                    f"{value.shape} in the file; the architecture's is {tuple(w.shape)}."
                )
        layer.set_weights(values)
    if stored:
        raise CodecFileError(
            f"{path}: the file holds weights of layers the architecture lacks: {sorted(stored)}."
        )
    return model
