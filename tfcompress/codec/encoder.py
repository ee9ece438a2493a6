"""`encode`: a weight-shared model into the compressed file (Han et al. 2016, Sec. 4).

Each `SharedWeights` kernel becomes three parts: its codebook (raw float32), its
weights (the codebook index of each surviving weight and filler, Huffman-coded) and its
indices (the relative indices, Huffman-coded; see `relative`). Every other weight (biases,
unshared kernels, BatchNorm statistics) is stored raw in its own dtype (`schema.raw_dtype_name`;
a shared kernel's codebook is float32, exact for float16 and bfloat16 layers), and the
architecture (the Keras config of `strip_shared(model)`, without its compile config) as
zlib-compressed JSON.
"""

import json
import zlib

import keras
import numpy as np

from tfcompress.codec import container, huffman
from tfcompress.codec.decoder import check_decodable
from tfcompress.codec.relative import to_relative
from tfcompress.codec.report import report
from tfcompress.codec.schema import (
    ARCHITECTURE,
    DEFAULT_INDEX_BITS,
    FORMAT,
    part_name,
    raw_dtype,
    raw_dtype_name,
    weight_names,
    without_compile,
)
from tfcompress.sharing.kmeans import check_bits
from tfcompress.sharing.layer import SharedWeights
from tfcompress.sharing.model import kind_of, strip_shared


def resolve_index_bits(kinds, index_bits):
    """`{layer name: relative-index bits}` of the shared layers `kinds` (`{name: "conv" or
    "dense"}`): `index_bits` None (the paper's widths, `DEFAULT_INDEX_BITS`), an int for
    all, or a dict {name: bits} for the layers it names; raises naming a bad name or value
    (callers check it before any training)."""
    names = sorted(kinds)
    if isinstance(index_bits, dict):
        unknown = sorted(set(index_bits) - set(names))
        if unknown:
            raise ValueError(
                f"index_bits names no shared layer: {unknown}. The shared layers are "
                f"{names}. Received: index_bits={index_bits}"
            )
        chosen = {n: check_bits(b, f"index_bits[{n!r}]") for n, b in index_bits.items()}
    elif index_bits is not None:
        bits = check_bits(index_bits, "index_bits")
        chosen = {n: bits for n in names}
    else:
        chosen = {}
    return {n: chosen.get(n, DEFAULT_INDEX_BITS[kinds[n] or "conv"]) for n in names}


def _index_bits(shared, index_bits):
    return resolve_index_bits({n: kind_of(w.layer) for n, w in shared.items()}, index_bits)


def _encode_shared(wrapper, layer_name, index_bits, parts):
    codebook = keras.ops.convert_to_numpy(wrapper.codebook).astype("<f4")
    indices, mask = wrapper.surviving_indices()
    positions = np.flatnonzero(mask.ravel())
    symbols = indices.ravel()[positions].astype(np.int64)
    k = codebook.size
    runs, entries = to_relative(positions, symbols, index_bits, filler=k)
    weights, weight_bits = huffman.encode(entries, k + 1)
    relative, relative_bits = huffman.encode(runs, 2**index_bits)
    name = wrapper.weight_name
    parts += [
        (part_name(layer_name, name, "codebook"), codebook.tobytes()),
        (part_name(layer_name, name, "weights"), weights),
        (part_name(layer_name, name, "indices"), relative),
    ]
    return {
        "name": name,
        "storage": "shared",
        "shape": list(wrapper.kernel.shape),
        "dtype": "float32",
        "bits": wrapper.bits,
        "index_bits": index_bits,
        "count": int(positions.size),
        "entries": int(runs.size),
        "weight_code_bits": weight_bits,
        "index_code_bits": relative_bits,
    }


def _encode_raw(layer_name, weight_name, value, parts):
    value = np.asarray(value)
    name = part_name(layer_name, weight_name)
    dtype = raw_dtype_name(value.dtype, f"Weight {name!r}")
    parts.append((name, value.astype(raw_dtype(dtype)).tobytes()))
    return {"name": weight_name, "storage": "raw", "shape": list(value.shape), "dtype": dtype}


def encode(model, path, *, index_bits=None):
    """Writes `model` (with `SharedWeights` layers, see `tfcompress.sharing`) to `path`
    atomically and returns the file's `Report`.

    Args:
        model: a functional or Sequential model; its `SharedWeights` kernels are stored
            sparse and Huffman-coded, every other weight raw. A layer or operation Keras
            cannot re-create from its config (a Lambda's Python lambda in safe mode, an
            unregistered class) is refused, naming it, before anything is written.
        path: the file to write.
        index_bits: relative-index width: None (conv 8 bits, dense 4, as the paper), an
            int for every shared layer, or a dict {wrapped layer name: bits}.
    """
    shared = {layer.layer.name: layer for layer in model.layers if isinstance(layer, SharedWeights)}
    widths = _index_bits(shared, index_bits)
    plain = strip_shared(model)
    check_decodable(plain, "decode does to read the file")
    config = without_compile(keras.saving.serialize_keras_object(plain))
    parts = [(ARCHITECTURE, zlib.compress(json.dumps(config).encode("utf-8"), 9))]
    layers = []
    for layer in plain.layers:
        if not layer.weights:
            continue
        wrapper = shared.get(layer.name)
        entries = []
        for w, name, value in zip(layer.weights, weight_names(layer), layer.get_weights()):
            if wrapper is not None and w.name == wrapper.weight_name:
                entries.append(_encode_shared(wrapper, layer.name, widths[layer.name], parts))
            else:
                entries.append(_encode_raw(layer.name, name, value, parts))
        layers.append({"name": layer.name, "weights": entries})
    header = {
        "format": FORMAT,
        "model": model.name,
        "keras_version": keras.__version__,
        "layers": layers,
    }
    container.write(path, header, parts)
    return report(path)
