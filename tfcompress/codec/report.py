"""The bytes of a compressed file, per layer and per part, as the paper's Tables 2-5.

Read from the file's header (checked by `header.check`), after the checks `decode` makes
first (`container.parse`: the header, the file's length against its parts, every part's
CRC32C): a damaged file is refused naming the part, but nothing is decoded. The CRCs cost
little (~30 us of ~0.3 ms for LeNet-300-100's 36 KB file). The storage ratio is the bytes
of all weights as dense float32 over the bytes of the file.
"""

import dataclasses
import os

import numpy as np

from tfcompress.codec import container
from tfcompress.codec.header import check as check_header
from tfcompress.codec.schema import ARCHITECTURE, part_name

KINDS = ("weights", "indices", "codebook", "raw")  # the byte columns of a layer


@dataclasses.dataclass(frozen=True)
class LayerBytes:
    """One layer: its parameter count, surviving shared weights, and bytes per part kind
    (weights: Huffman-coded codebook indices; indices: Huffman-coded relative indices;
    codebook: float32 centroids; raw: biases and unshared weights)."""

    name: str
    params: int
    shared: int  # parameters in shared kernels
    count: int  # surviving weights of the shared kernels
    entries: int  # stored entries: the surviving weights and the filler entries
    bits: int | None
    index_bits: int | None
    weight_code_bits: int
    index_code_bits: int
    fixed_bits: int  # weights and indices at their fixed widths, before Huffman
    bytes: dict

    @property
    def total(self):
        return sum(self.bytes.values())

    @property
    def dense_bytes(self):
        return 4 * self.params

    @property
    def fixed_bytes(self):
        """The layer's bytes before Huffman coding (the paper's P+Q): each entry at its
        fixed widths, plus codebook and raw weights."""
        return -(-self.fixed_bits // 8) + self.bytes["codebook"] + self.bytes["raw"]

    def as_dict(self):
        return {
            **dataclasses.asdict(self),
            "total": self.total,
            "fixed_bytes": self.fixed_bytes,
        }


@dataclasses.dataclass(frozen=True)
class Report:
    path: str
    layers: tuple
    header_bytes: int  # preamble and JSON header
    architecture_bytes: int
    file_bytes: int

    @property
    def dense_bytes(self):
        """Bytes of every weight of the model as dense float32."""
        return sum(layer.dense_bytes for layer in self.layers)

    @property
    def ratio(self):
        """Storage ratio: dense float32 bytes / file bytes."""
        return self.dense_bytes / self.file_bytes

    @property
    def weights_ratio(self):
        """The paper's accounting: dense float32 bytes / the bytes of the layers' parts
        (without header and architecture)."""
        return self.dense_bytes / max(1, sum(layer.total for layer in self.layers))

    @property
    def fixed_ratio(self):
        """As `weights_ratio`, before Huffman coding (fixed-width entries: the paper's P+Q)."""
        return self.dense_bytes / max(1, sum(layer.fixed_bytes for layer in self.layers))

    def as_dict(self):
        return {
            "path": self.path,
            "layers": [layer.as_dict() for layer in self.layers],
            "header_bytes": self.header_bytes,
            "architecture_bytes": self.architecture_bytes,
            "file_bytes": self.file_bytes,
            "dense_bytes": self.dense_bytes,
            "ratio": self.ratio,
            "weights_ratio": self.weights_ratio,
            "fixed_ratio": self.fixed_ratio,
        }

    def format(self):
        """A text table (the paper's Tables 2-5): per layer its density, the bits of a
        codebook index and of a relative index at fixed width and Huffman-coded (per
        surviving weight, fillers included), bytes per part, and its compression rate
        before (P+Q) and after (P+Q+H) Huffman coding."""
        head = (
            f"{'layer':<16}{'params':>9}{'kept%':>7}{'bits':>5}{'w.bits':>7}{'ibits':>6}"
            f"{'i.bits':>7}"
            + "".join(f"{k:>9}" for k in KINDS)
            + f"{'total':>9}{'P+Q':>8}{'P+Q+H':>8}"
        )
        lines = [head]
        for r in self.layers:
            kept = 100.0 * r.count / r.shared if r.shared else float("nan")
            wbits = r.weight_code_bits / r.count if r.count else float("nan")
            ibits = r.index_code_bits / r.count if r.count else float("nan")
            lines.append(
                f"{r.name:<16}{r.params:>9}{kept:>7.1f}{r.bits or '-':>5}{wbits:>7.2f}"
                f"{r.index_bits or '-':>6}{ibits:>7.2f}"
                + "".join(f"{r.bytes[k]:>9}" for k in KINDS)
                + f"{r.total:>9}{r.dense_bytes / max(1, r.fixed_bytes):>7.1f}x"
                + f"{r.dense_bytes / max(1, r.total):>7.1f}x"
            )
        lines.append(f"header {self.header_bytes} B, architecture {self.architecture_bytes} B")
        lines.append(
            f"file {self.file_bytes} B; dense float32 {self.dense_bytes} B; ratio "
            f"{self.ratio:.1f}x ({self.weights_ratio:.1f}x without header and architecture; "
            f"{self.fixed_ratio:.1f}x so before Huffman coding)"
        )
        return "\n".join(lines)


def _layer_bytes(entry, sizes):
    bytes_, params, shared, count, entries, fixed = dict.fromkeys(KINDS, 0), 0, 0, 0, 0, 0
    bits = index_bits = None
    weight_code_bits = index_code_bits = 0
    for w in entry["weights"]:
        size = int(np.prod(w["shape"], dtype=np.int64))
        params += size
        if w["storage"] == "raw":
            bytes_["raw"] += sizes[part_name(entry["name"], w["name"])]
            continue
        for kind in ("weights", "indices", "codebook"):
            bytes_[kind] += sizes[part_name(entry["name"], w["name"], kind)]
        shared += size
        count += w["count"]
        entries += w["entries"]
        bits, index_bits = w["bits"], w["index_bits"]
        weight_code_bits += w["weight_code_bits"]
        index_code_bits += w["index_code_bits"]
        fixed += w["entries"] * (w["bits"] + w["index_bits"])
    return LayerBytes(
        name=entry["name"],
        params=params,
        shared=shared,
        count=count,
        entries=entries,
        bits=bits,
        index_bits=index_bits,
        weight_code_bits=weight_code_bits,
        index_code_bits=index_code_bits,
        fixed_bits=fixed,
        bytes=bytes_,
    )


def report(path):
    """The `Report` of the compressed file at `path`; raises `CodecFileError` naming the
    file and the part if it is damaged (any part's CRC32C), cut short or crafted."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        blob = f.read()
    header, parts = container.parse(path, blob)
    check_header(path, header, len(blob))
    sizes = {name: len(data) for name, data in parts.items()}
    start = len(blob) - sum(sizes.values())  # parse checked: the parts fill the rest
    return Report(
        path=path,
        layers=tuple(_layer_bytes(entry, sizes) for entry in header["layers"]),
        header_bytes=start,
        architecture_bytes=sizes[ARCHITECTURE],
        file_bytes=len(blob),
    )
