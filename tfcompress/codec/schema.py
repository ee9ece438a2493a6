"""The names the encoder, decoder and report share: format tag, part names, defaults."""

import ml_dtypes
import numpy as np

FORMAT = "tfcompress.deep_compression"
ARCHITECTURE = "architecture"  # the Keras config of the plain model, zlib-compressed JSON
DEFAULT_INDEX_BITS = {"conv": 8, "dense": 4}  # the paper's relative-index widths
SHARED_KINDS = ("codebook", "weights", "indices")  # the parts of one shared kernel
# dtypes NumPy's dtype string does not name ("<V2" is any two-byte blob): stored by name
NAMED_DTYPES = {"bfloat16": np.dtype(ml_dtypes.bfloat16)}
RAW_KINDS = "biuf"  # a raw weight is bool, int, unsigned or float


def part_name(layer, weight, kind=None):
    """`layer/weight` (a raw weight) or `layer/weight/kind` (one of `SHARED_KINDS`), the
    weight named as `weight_names` names it."""
    return f"{layer}/{weight}" if kind is None else f"{layer}/{weight}/{kind}"


def without_compile(config):
    """A model's Keras `config` without its compile config (optimizer, loss, metrics): the
    file holds the architecture only, so the same weights give the same bytes."""
    if isinstance(config, dict):
        config = {k: v for k, v in config.items() if k != "compile_config"}
    return config


def weight_names(layer):
    """The names of `layer`'s weights in the file: their own names ("kernel", "bias") when
    they differ, else their paths inside the layer ("query/kernel" of a
    MultiHeadAttention, "dense/kernel" of a nested model): the path after the layer's own
    name, which a Sequential model puts after its own ("seq/mha/query/kernel")."""
    names = [w.name for w in layer.weights]
    if len(set(names)) == len(names):
        return names
    out = []
    for w in layer.weights:
        steps = w.path.split("/")
        inside = layer.name in steps[:-1]
        out.append("/".join(steps[steps.index(layer.name) + 1 :]) if inside else w.path)
    return out


def raw_dtype_name(dtype, what):
    """The header's name of a raw weight's dtype: its little-endian NumPy string ("<f4"),
    or its name for one of `NAMED_DTYPES`; raises naming `what` for any other."""
    dtype = np.dtype(dtype)
    for name, named in NAMED_DTYPES.items():
        if dtype == named:
            return name
    if dtype.kind not in RAW_KINDS:
        raise ValueError(f"{what} has dtype {dtype}, which a compressed file cannot store.")
    return dtype.newbyteorder("<").str


def raw_dtype(name):
    """The NumPy dtype of a header's raw dtype `name` (as `raw_dtype_name` writes it);
    raises ValueError for any other."""
    if not isinstance(name, str):
        raise ValueError(f"dtype {name!r} is not a raw weight's dtype")
    if name in NAMED_DTYPES:
        return NAMED_DTYPES[name]
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in RAW_KINDS or name != raw_dtype_name(dtype, name):
        raise ValueError(f"dtype {name!r} is not a raw weight's dtype")
    return dtype
