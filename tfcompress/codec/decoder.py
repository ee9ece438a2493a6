"""`decode`: the compressed file back into a Keras model of plain layers.

The model is rebuilt from the architecture stored in the file; each shared kernel is
`codebook[symbol]` at its surviving positions and +0.0 elsewhere, which is bit for bit
what `strip_shared` gives (or, with `shared=True`, a `SharedWeights` layer holding the
codebook, index map and mask). Every part is checked (`container.read`) before any is decoded,
and a part that does not decode to what the header describes raises naming it.
"""

import json
import os
import zlib

import keras
import numpy as np

from tfcompress.codec import container, huffman
from tfcompress.codec.container import CodecFileError
from tfcompress.codec.header import check as check_header
from tfcompress.codec.relative import from_relative
from tfcompress.codec.schema import ARCHITECTURE, part_name, raw_dtype
from tfcompress.sharing.layer import SharedWeights
from tfcompress.sharing.model import wrapper_name


def _decode_shared(path, layer, entry, parts, found):
    shape = tuple(entry["shape"])
    size = int(np.prod(shape, dtype=np.int64))
    # header.check made the codebook 2**bits float32 values
    codebook = np.frombuffer(parts[part_name(layer, entry["name"], "codebook")], dtype="<f4")
    codebook = codebook.astype(np.float32)
    key = part_name(layer, entry["name"], "weights")
    try:  # the alphabets bound the symbols: codebook indices and the filler, index widths
        symbols = huffman.decode(
            parts[key], entry["entries"], entry["weight_code_bits"], codebook.size + 1
        )
        key = part_name(layer, entry["name"], "indices")
        runs = huffman.decode(
            parts[key], entry["entries"], entry["index_code_bits"], 2 ** entry["index_bits"]
        )
        positions, symbols = from_relative(runs, symbols, codebook.size, size)
    except ValueError as e:
        raise CodecFileError(f"{path}: part {key!r} does not decode: {e}") from e
    if positions.size != entry["count"]:
        raise CodecFileError(
            f"{path}: part {part_name(layer, entry['name'], 'weights')!r} holds "
            f"{positions.size} weights; the header says {entry['count']}."
        )
    indices = np.zeros(size, dtype=np.int32)
    indices[positions] = symbols
    mask = np.zeros(size, dtype=np.float32)
    mask[positions] = 1.0
    found[layer] = (entry, codebook, indices.reshape(shape), mask.reshape(shape))
    kernel = np.zeros(size, dtype=np.float32)
    kernel[positions] = codebook[symbols]
    return kernel.reshape(shape)


def _decode_raw(path, layer, entry, parts, found):
    key = part_name(layer, entry["name"])
    dtype = raw_dtype(entry["dtype"])
    size = int(np.prod(entry["shape"], dtype=np.int64))
    if len(parts[key]) != size * dtype.itemsize:
        raise CodecFileError(
            f"{path}: part {key!r} has {len(parts[key])} bytes; shape {entry['shape']} of "
            f"{dtype.name} needs {size * dtype.itemsize}."
        )
    return np.frombuffer(parts[key], dtype=dtype).reshape(entry["shape"])


_DECODERS = {"shared": _decode_shared, "raw": _decode_raw}


def decode(path, *, shared=False):
    """The Keras model stored in the compressed file at `path` (see `encode`).

    Args:
        path: the file.
        shared: False: plain layers (`strip_shared` of the encoded model, bit for bit).
            True: the shared kernels wrapped in `SharedWeights` again, holding the file's
            codebooks, index maps and masks, ready for more centroid training (encoding
            it again writes the same parts).
    """
    path = os.fspath(path)
    header, parts = container.read(path)
    check_header(path, header)
    found = {}
    model = _rebuild(path, header, parts, found)
    return _reshare(model, found) if shared else model


def _reshare(model, found):
    """A copy of `model` with the layers in `found` wrapped in `SharedWeights` holding
    the decoded codebooks, indices and masks."""
    plans = {}

    def clone(layer):
        new = layer.__class__.from_config(layer.get_config())
        plans[layer.name] = (layer, new)
        if layer.name not in found:
            return new
        entry = found[layer.name][0]
        return SharedWeights(
            new, bits=entry["bits"], weight_name=entry["name"], name=wrapper_name(layer.name)
        )

    wrapped = keras.models.clone_model(model, clone_function=clone)
    wrappers = {w.layer.name: w for w in wrapped.layers if isinstance(w, SharedWeights)}
    for name, (layer, new) in plans.items():
        new.set_weights(layer.get_weights())
        if name in found:
            _, codebook, indices, mask = found[name]
            wrappers[name].codebook.assign(codebook)
            wrappers[name].indices.assign(indices)
            wrappers[name].mask.assign(mask)
    return wrapped


def _architecture(path, parts):
    """The model the architecture part describes; raises naming the part for anything
    else (not listed, not zlib JSON, an unknown class, a Lambda's code in safe mode)."""
    if ARCHITECTURE not in parts:
        raise CodecFileError(f"{path}: part {ARCHITECTURE!r} is not in the file.")
    try:
        config = json.loads(zlib.decompress(parts[ARCHITECTURE]).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError) as e:
        raise CodecFileError(f"{path}: part {ARCHITECTURE!r} does not decode: {e}") from e
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as e:  # whatever a crafted config makes Keras raise
        raise CodecFileError(
            f"{path}: part {ARCHITECTURE!r} does not describe a Keras model: "
            f"{type(e).__name__}: {e}"
        ) from e
    if not isinstance(model, keras.Model):
        raise CodecFileError(
            f"{path}: part {ARCHITECTURE!r} describes a {type(model).__name__}, not a Keras "
            "model."
        )
    return model


def _rebuild(path, header, parts, found):
    model = _architecture(path, parts)
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
        values = [
            _DECODERS[w["storage"]](path, layer.name, w, parts, found) for w in entry["weights"]
        ]
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
