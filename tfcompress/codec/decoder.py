"""`decode`: the compressed file back into a Keras model of plain layers.

The model is rebuilt from the architecture stored in the file; each shared kernel is
`codebook[symbol]` at its surviving positions and +0.0 elsewhere, which is bit for bit
what `strip_shared` gives (or, with `shared=True`, a `SharedWeights` layer holding the
codebook, index map and mask). Every part is checked (`container.parse`, `header.check`) and
the architecture's weight shapes compared with the header's before any is decoded or
allocated, and a part that does not decode to what the header describes raises naming it.
"""

import contextlib
import copy
import json
import os
import zlib

import keras
import numpy as np
from keras.src.backend.common import global_state  # only in `unallocated`: no public API

from tfcompress.codec import container, huffman
from tfcompress.codec.container import CodecFileError
from tfcompress.codec.header import check as check_header
from tfcompress.codec.relative import from_relative
from tfcompress.codec.schema import (
    ARCHITECTURE,
    part_name,
    raw_dtype,
    weight_names,
    without_compile,
)
from tfcompress.graph.rules import unwrap
from tfcompress.graph.trace import layers_of
from tfcompress.messages import first_line
from tfcompress.sharing.layer import SharedWeights
from tfcompress.sharing.model import copy_graph, wrapper_name
from tfcompress.surgery.rebuild import clone_fix, clone_layer


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
    # header.check made the part hold exactly the shape's values
    return np.frombuffer(parts[key], dtype=raw_dtype(entry["dtype"])).reshape(entry["shape"])


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
    with open(path, "rb") as f:
        blob = f.read()
    header, parts = container.parse(path, blob)
    check_header(path, header, len(blob))
    found = {}
    model = _rebuild(path, header, parts, found)
    return _reshare(model, found) if shared else model


def _reshare(model, found):
    """A copy of `model` with the layers in `found` wrapped in `SharedWeights` holding
    the decoded codebooks, indices and masks."""
    plans = {}

    def clone(layer):
        new = clone_layer(layer)
        plans[layer.name] = (layer, new)
        if layer.name not in found:
            return new
        entry = found[layer.name][0]
        return SharedWeights(
            new, bits=entry["bits"], weight_name=entry["name"], name=wrapper_name(layer.name)
        )

    wrapped = copy_graph(model, clone, inline_models=False)
    wrappers = {w.layer.name: w for w in wrapped.layers if isinstance(w, SharedWeights)}
    for name, (layer, new) in plans.items():
        new.set_weights(layer.get_weights())
        if name in found:
            _, codebook, indices, mask = found[name]
            wrappers[name].codebook.assign(codebook)
            wrappers[name].indices.assign(indices)
            wrappers[name].mask.assign(mask)
    return wrapped


def _config(path, parts):
    """The Keras config the architecture part holds (zlib-compressed JSON), without the
    compile config files written before 2026-12 kept (the decoded model is uncompiled)."""
    if ARCHITECTURE not in parts:
        raise CodecFileError(f"{path}: part {ARCHITECTURE!r} is not in the file.")
    try:
        config = json.loads(container.inflate(parts[ARCHITECTURE]).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError) as e:
        raise CodecFileError(f"{path}: part {ARCHITECTURE!r} does not decode: {e}") from e
    return without_compile(config)


def _architecture(path, config):
    """The model `config` describes; raises naming the part for anything else (an unknown
    class, a Lambda's code in safe mode, a layer, a bad field)."""
    try:
        # Keras pops the entries it reads: each build deserializes a copy
        model = keras.saving.deserialize_keras_object(copy.deepcopy(config), safe_mode=True)
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


def check_decodable(model, reason):
    """Raises a ValueError naming the first layer or `keras.ops` operation of `model`
    (nested models' included; a tfcompress wrapper's layer, as the file holds it) that
    Keras cannot re-create from its config as `decode` does, and why: a Python lambda
    in safe mode, an unregistered class or function, an incomplete get_config. `reason`
    says who does it ("decode does to read the file"). Nothing is built, no weight allocated."""
    for operation in layers_of(model, operations=True):
        if isinstance(operation, keras.Model):
            continue  # its layers and operations follow, each checked on its own
        operation = unwrap(operation)  # the file holds the wrapped layer
        config = keras.saving.serialize_keras_object(operation)
        config.pop("build_config", None)  # (building would allocate the weights)
        try:
            keras.saving.deserialize_keras_object(copy.deepcopy(config), safe_mode=True)
        except Exception as e:  # noqa: BLE001 - re-raised naming the layer
            kind = "layer" if isinstance(operation, keras.layers.Layer) else "keras.ops operation"
            raise ValueError(
                f"Model '{model.name}': {kind} '{operation.name}' "
                f"({type(operation).__name__}) cannot be re-created from its config, which "
                f"{reason}: {first_line(e).split('. ')[0].rstrip('.')}. {clone_fix(config, e)}"
            ) from e


# Keras's list of the variables made in a StatelessScope and not allocated yet
# (keras/src/backend/common/variables.py, Keras 3.15: `register_uninitialized_variable`,
# `initialize_all_variables`).
_PENDING = "uninitialized_variables"


@contextlib.contextmanager
def unallocated():
    """A scope whose Keras variables get their shapes but are never allocated, then or
    later (a probe of a model to drop).

    Keras has no public way to do this. A `keras.StatelessScope(initialize_variables=False)`
    leaves the variables made inside it unallocated, but appends them to a thread-global
    list (`global_state` attribute "uninitialized_variables") whose every variable the next
    top-level `StatelessScope` to close allocates (with its initializer), wherever that
    scope is: the probe's weights would be allocated then. So the list is put back as it
    was before the scope (the variables listed before stay listed). It depends on that
    list's name and role; tests/test_codec.py's
    `test_unallocated_relies_on_keras_deferring_a_stateless_scopes_variables` fails,
    saying so, if Keras changes them."""
    pending = list(global_state.get_global_attribute(_PENDING) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute(_PENDING, pending)


def _weight_shapes(path, config):
    """`{layer name: [(weight name, shape)]}` of the layers with weights of the model
    `config` describes, no weight allocated (a probe built in `unallocated`, dropped)."""
    with unallocated():
        probe = _architecture(path, config)
    return {
        layer.name: [(n, tuple(w.shape)) for n, w in zip(weight_names(layer), layer.weights)]
        for layer in probe.layers
        if layer.weights
    }


def _check_shapes(path, header, shapes):
    """Raises unless the header lists the weights `shapes` (`_weight_shapes`) names, each
    of the architecture's shape."""
    stored = {entry["name"]: entry for entry in header["layers"]}
    for layer, weights in shapes.items():
        entry = stored.pop(layer, None)
        names = [name for name, _ in weights]
        held = None if entry is None else [w["name"] for w in entry["weights"]]
        if held != names:
            raise CodecFileError(
                f"{path}: layer '{layer}' of the architecture has weights {names}; the "
                f"file holds {held}."
            )
        for (name, shape), w in zip(weights, entry["weights"]):
            if tuple(w["shape"]) != shape:
                raise CodecFileError(
                    f"{path}: weight {part_name(layer, name)!r} has shape "
                    f"{tuple(w['shape'])} in the file; the architecture's is {shape}."
                )
    if stored:
        raise CodecFileError(
            f"{path}: the file holds weights of layers the architecture lacks: {sorted(stored)}."
        )


def _rebuild(path, header, parts, found):
    """The model of the file: the architecture's weights are compared with the header's
    before any is decoded or allocated (a small file cannot make this allocate a model its
    bytes do not hold: `header.check` bounds the header's parameters by the file's size)."""
    config = _config(path, parts)
    _check_shapes(path, header, _weight_shapes(path, config))
    values = {
        entry["name"]: [
            _DECODERS[w["storage"]](path, entry["name"], w, parts, found)
            for w in entry["weights"]
        ]
        for entry in header["layers"]
    }
    model = _architecture(path, config)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(values[layer.name])
    return model
