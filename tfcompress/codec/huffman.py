"""Canonical Huffman coding of small-integer symbols (Han et al. 2016, Sec. 4).

Only the code lengths are stored, not the tree: canonical codes are assigned in order of
(length, symbol), so the lengths alone rebuild them. A stream is
`[table][bits]`: the table is the lengths (see `pack_lengths`), the bits are the codes
packed most significant bit first, the last byte padded with zeros. Encoding and decoding
are vectorised with NumPy; decoding walks the precomputed (symbol, length) at each bit
position, one Python step per symbol.
"""

import heapq
import struct

import numpy as np

MAX_LENGTH = 57  # codes are read through 64-bit windows


class HuffmanError(ValueError):
    """A Huffman stream that cannot be decoded."""


def code_lengths(counts):
    """Huffman code length of each symbol (0 for symbols that never occur); a lone symbol
    gets length 1. `counts` is a 1-D array of symbol frequencies."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = np.flatnonzero(counts)
    if used.size == 1:
        lengths[used] = 1
    if used.size <= 1:
        return lengths
    # heap of (count, tie-break, symbols under the node)
    heap = [(int(counts[s]), i, [int(s)]) for i, s in enumerate(used)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        merged = s1 + s2
        lengths[merged] += 1
        heapq.heappush(heap, (c1 + c2, tie, merged))
        tie += 1
    if lengths.max() > MAX_LENGTH:
        raise HuffmanError(f"A Huffman code is longer than {MAX_LENGTH} bits: {lengths.max()}")
    return lengths


def canonical_codes(lengths):
    """The canonical code (an int) of each symbol with a non-zero length."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint64)
    code, previous = 0, 0
    for s in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - previous
        previous = int(lengths[s])
        codes[s] = code
        code += 1
    return codes


def pack_lengths(lengths):
    """The lengths table: `u32 alphabet size, u8 layout`, then either one u8 length per
    symbol (layout 0) or `u32 count` and (u32 symbol, u8 length) pairs of the used symbols
    (layout 1), whichever is smaller."""
    lengths = np.asarray(lengths, dtype=np.int64)
    used = np.flatnonzero(lengths)
    dense = lengths.size
    sparse = 4 + 5 * used.size
    if dense <= sparse:
        return struct.pack("<IB", lengths.size, 0) + lengths.astype(np.uint8).tobytes()
    pairs = np.zeros(used.size, dtype=[("s", "<u4"), ("l", "u1")])
    pairs["s"], pairs["l"] = used, lengths[used]
    return struct.pack("<IBI", lengths.size, 1, used.size) + pairs.tobytes()


def unpack_lengths(data, alphabet_size):
    """`(lengths, bytes read)` of a table `pack_lengths` wrote at the start of `data` for
    symbols in [0, alphabet_size); a table of another alphabet is refused before anything
    is allocated."""
    if len(data) < 5:
        raise HuffmanError(f"The code-lengths table is cut: {len(data)} bytes")
    size, layout = struct.unpack_from("<IB", data)
    if size != alphabet_size:
        raise HuffmanError(
            f"The code-lengths table is of {size} symbols; the alphabet has {alphabet_size}"
        )
    if layout == 0:
        end = 5 + size
        if len(data) < end:
            raise HuffmanError(f"The code-lengths table is cut: {len(data)} of {end} bytes")
        return np.frombuffer(data[5:end], dtype=np.uint8).astype(np.int64), end
    if layout != 1 or len(data) < 9:
        raise HuffmanError(f"Unknown or cut code-lengths table (layout {layout})")
    (count,) = struct.unpack_from("<I", data, 5)
    end = 9 + 5 * count
    if len(data) < end:
        raise HuffmanError(f"The code-lengths table is cut: {len(data)} of {end} bytes")
    pairs = np.frombuffer(data[9:end], dtype=[("s", "<u4"), ("l", "u1")])
    lengths = np.zeros(size, dtype=np.int64)
    if count and pairs["s"].max() >= size:
        raise HuffmanError(f"The code-lengths table names symbol {pairs['s'].max()} >= {size}")
    lengths[pairs["s"]] = pairs["l"]
    return lengths, end


def encode(symbols, alphabet_size):
    """`(stream bytes, number of code bits)` of `symbols` (ints in [0, alphabet_size))."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise ValueError(
            f"Symbols must lie in [0, {alphabet_size}). Received: [{symbols.min()}, "
            f"{symbols.max()}]"
        )
    lengths = code_lengths(np.bincount(symbols, minlength=alphabet_size))
    codes = canonical_codes(lengths)
    table = pack_lengths(lengths)
    if symbols.size == 0:
        return table, 0
    n, c = lengths[symbols], codes[symbols]
    width = int(n.max())
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)  # the bits of a code, MSB first
    bits = ((c[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    keep = np.arange(width)[None, :] >= (width - n)[:, None]  # right-aligned: drop leading pad
    bits = bits[keep]
    return table + np.packbits(bits).tobytes(), int(bits.size)


def decode(stream, count, nbits, alphabet_size):
    """The `count` symbols of a stream `encode(symbols, alphabet_size)` wrote holding
    `nbits` code bits."""
    lengths, start = unpack_lengths(stream, alphabet_size)
    payload = np.frombuffer(stream[start:], dtype=np.uint8)
    if payload.size != (nbits + 7) // 8:
        raise HuffmanError(f"The code bits take {payload.size} bytes; expected {(nbits + 7) // 8}")
    if count == 0:
        if nbits:
            raise HuffmanError(f"No symbols but {nbits} code bits")
        return np.zeros(0, dtype=np.int64)
    if count > nbits:  # every code is at least one bit long
        raise HuffmanError(f"{count} symbols cannot fit in {nbits} code bits")
    used = np.flatnonzero(lengths)
    if used.size == 0:
        raise HuffmanError(f"{count} symbols but an empty code")
    kraft = np.sum(np.ldexp(1.0, -lengths[used]))
    if kraft > 1.0:
        raise HuffmanError(f"The code lengths are not a prefix code (Kraft sum {kraft})")
    width = int(lengths.max())
    bits = np.unpackbits(payload)[:nbits].astype(np.uint64)
    bits = np.concatenate([bits, np.zeros(width, dtype=np.uint64)])
    windows = np.zeros(nbits, dtype=np.uint64)  # the next `width` bits at each position
    for j in range(width):
        windows = (windows << np.uint64(1)) | bits[j : j + nbits]
    ranked = np.array(sorted(used, key=lambda s: (lengths[s], s)), dtype=np.int64)
    ranked_lengths = lengths[ranked]
    codes = canonical_codes(lengths)[ranked]
    # the last left-aligned code of each length + 1: a window is of the first length whose
    # limit exceeds it
    limits = (codes + np.uint64(1)) << (np.uint64(width) - ranked_lengths.astype(np.uint64))
    rank = np.searchsorted(limits, windows, side="right")
    valid = rank < ranked.size
    rank = np.minimum(rank, ranked.size - 1)
    at_symbol = ranked[rank].tolist()
    at_length = np.where(valid, ranked_lengths[rank], 0).tolist()
    out = [0] * count
    position = 0
    for i in range(count):
        if position >= nbits or at_length[position] == 0:
            raise HuffmanError(f"The code bits end or break after {i} of {count} symbols")
        out[i] = at_symbol[position]
        position += at_length[position]
    if position != nbits:
        raise HuffmanError(f"{nbits - position} code bits left over after {count} symbols")
    return np.asarray(out, dtype=np.int64)
