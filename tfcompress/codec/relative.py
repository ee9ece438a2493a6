"""Sparse weights as relative indices with filler entries (Han et al. 2016, Sec. 4, Fig. 2).

The surviving positions of a kernel, in flat (C) order -- CSR of the kernel seen as
[prod(shape[:-1]), shape[-1]] with the rows run together, so no row pointers are needed --
are stored as the number of zeros skipped since the previous entry (the first entry counts
from position 0). A run is stored in `index_bits` bits, so it holds 0 .. 2**index_bits - 1;
a longer run is split by filler entries, each placed after 2**index_bits - 1 zeros, as the
paper's Fig. 2 does. A filler's weight symbol is `filler`, a symbol reserved beyond the
codebook (codebook size k -> filler k): a filler is never mistaken for a weight, even a
centroid of value zero.
"""

import numpy as np


def to_relative(positions, symbols, index_bits, filler):
    """`(runs, symbols)` with fillers inserted for the sorted flat `positions` of the
    surviving weights and their codebook `symbols`."""
    positions = np.asarray(positions, dtype=np.int64)
    symbols = np.asarray(symbols, dtype=np.int64)
    if positions.shape != symbols.shape or positions.ndim != 1:
        raise ValueError(
            f"positions and symbols must be 1-D of one length. Received: {positions.shape} "
            f"and {symbols.shape}"
        )
    if positions.size and np.any(np.diff(positions) <= 0):
        raise ValueError("positions must be strictly increasing")
    span = 2 ** int(index_bits)
    runs = np.diff(positions, prepend=-1) - 1
    fillers = runs // span
    entries = fillers + 1
    total = int(entries.sum())
    out_runs = np.full(total, span - 1, dtype=np.int64)
    out_symbols = np.full(total, filler, dtype=np.int64)
    last = np.cumsum(entries) - 1  # each weight is the last entry of its group
    out_runs[last] = runs - fillers * span
    out_symbols[last] = symbols
    return out_runs, out_symbols


def from_relative(runs, symbols, filler, size):
    """`(positions, symbols)` of the weights a `to_relative` stream holds, fillers dropped;
    raises if a position falls outside a kernel of `size` entries."""
    runs = np.asarray(runs, dtype=np.int64)
    symbols = np.asarray(symbols, dtype=np.int64)
    if runs.shape != symbols.shape:
        raise ValueError(f"{runs.size} relative indices for {symbols.size} weights")
    positions = np.cumsum(runs + 1) - 1
    if positions.size and positions[-1] >= size:
        raise ValueError(f"The relative indices reach position {positions[-1]} of {size}")
    real = symbols != filler
    return positions[real], symbols[real]
