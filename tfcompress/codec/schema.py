"""The names the encoder, decoder and report share: format tag, part names, defaults."""

FORMAT = "tfcompress.deep_compression"
ARCHITECTURE = "architecture"  # the Keras config of the plain model, zlib-compressed JSON
DEFAULT_INDEX_BITS = {"conv": 8, "dense": 4}  # the paper's relative-index widths
SHARED_KINDS = ("codebook", "weights", "indices")  # the parts of one shared kernel


def part_name(layer, weight, kind=None):
    """`layer/weight` (a raw weight) or `layer/weight/kind` (one of `SHARED_KINDS`)."""
    return f"{layer}/{weight}" if kind is None else f"{layer}/{weight}/{kind}"
