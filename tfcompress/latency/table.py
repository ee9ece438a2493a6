"""A cost table: the latency of each conv/dense layer of one model as a function of the
channel counts it keeps, as plain data (JSON round trip).

A layer's cost is tabulated on a grid of kept channel counts along the axes that pruning
can change ("in": the channels it reads, "out": the channels it makes; a depthwise conv
has only "in", its output follows) and interpolated linearly in between. Kernels work on
blocks of `multiple` channels (8 float32 lanes for oneDNN / XNNPACK on AVX2), so a count
off the multiple is priced as the next multiple up: 57 channels cost what 64 cost. Below
the smallest grid point a layer costs what it costs there (a floor: narrower layers are
rarely faster). The rest of the network is `base_ms`, a constant (the call itself, per-op
dispatch), plus `scaled_ms`, which shrinks with the kept fraction of the activation
elements (BatchNorm, ReLU, adds, pooling: elementwise work). `layer_scale` multiplies
every layer's cost: a layer timed alone can cost more (or less) than it does inside the
model (at batch 1 the isolated calls of MobileNetV2's layers summed to 2.3x the whole
model), and a measured table fits it to whole-model timings
(`tfcompress.latency.calibrate`).

A table is measured (`tfcompress.latency.measure_cost_table`) or written by hand:

    CostTable.from_dict({"multiple": 4, "base_ms": 1.0, "layers": {
        "conv": {"axes": ["out"], "grid": [[4, 8, 16]], "ms": [0.5, 1.0, 2.0]}}})
"""

import dataclasses
import json
import math

import numpy as np

from tfcompress.numbers import check_count, is_int, is_number

AXES = ("in", "out")


def _nested_tuple(x):
    return tuple(_nested_tuple(v) for v in x) if isinstance(x, (list, tuple)) else float(x)


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """Milliseconds of one layer on a grid of kept channel counts.

    Args:
        axes: the axes the grid spans, a subset of ("in", "out") in that order.
        grid: one ascending tuple of channel counts per axis (the last is the full width).
        ms: the latency at each grid point, nested like `grid` (a number for no axes).
    """

    axes: tuple
    grid: tuple
    ms: object

    def __post_init__(self):
        axes = tuple(self.axes)
        if not set(axes) <= set(AXES) or len(set(axes)) != len(axes):
            raise ValueError(f"axes must be a subset of {AXES}. Received: axes={self.axes!r}")
        grid = tuple(tuple(g) for g in self.grid)
        if len(grid) != len(axes):
            raise ValueError(
                f"grid must hold one list of channel counts per axis ({len(axes)}). "
                f"Received: grid={self.grid!r}"
            )
        for g in grid:  # integers: int() would cut a count of 8.7 to 8
            if (not g or not all(is_int(c) for c in g) or g[0] < 1
                    or any(b <= a for a, b in zip(g, g[1:]))):
                raise ValueError(
                    "Each grid axis must be ascending integer channel counts >= 1. "
                    f"Received: grid={self.grid!r}"
                )
        grid = tuple(tuple(int(c) for c in g) for g in grid)
        ms = np.asarray(self.ms, np.float64)
        if ms.shape != tuple(len(g) for g in grid) or not np.isfinite(ms).all() or (ms < 0).any():
            raise ValueError(
                f"ms must be finite latencies >= 0 of shape {tuple(len(g) for g in grid)} "
                f"(one per grid point). Received: ms={self.ms!r}"
            )
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "ms", _nested_tuple(ms.tolist()))

    def full(self, axis):
        """The full width along `axis` (the last grid point), or None if it is not an axis."""
        return self.grid[self.axes.index(axis)][-1] if axis in self.axes else None

    def cost(self, counts, multiple=1):
        """Milliseconds at `counts` (`{axis: kept channels}`; axes not in the table are
        ignored), counts rounded up to `multiple` (at most the full width)."""
        ms = np.asarray(self.ms, np.float64)
        for axis, g in zip(self.axes, self.grid):
            c = min(g[-1], multiple * math.ceil(counts[axis] / multiple))
            ms = _interp_first_axis(ms, g, c)
        return float(ms)

    def to_dict(self):
        return {"axes": list(self.axes), "grid": [list(g) for g in self.grid],
                "ms": np.asarray(self.ms).tolist()}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or set(d) != {"axes", "grid", "ms"}:
            raise ValueError(
                f"A layer cost is a dict of axes, grid and ms. Received: {d!r}")
        return cls(axes=tuple(d["axes"]), grid=tuple(tuple(g) for g in d["grid"]), ms=d["ms"])


def _interp_first_axis(ms, grid, c):
    """`ms` along its first axis interpolated at count `c` (clamped to the grid)."""
    i = int(np.searchsorted(grid, c))
    if i == 0:
        return ms[0]
    if i >= len(grid):
        return ms[-1]
    lo, hi = grid[i - 1], grid[i]
    t = (c - lo) / (hi - lo)
    return (1 - t) * ms[i - 1] + t * ms[i]


@dataclasses.dataclass(frozen=True)
class CostTable:
    """The cost of each modelled layer of one model on one machine, plus the rest.

    Args:
        layers: `{layer name: LayerCost}`.
        base_ms: the latency of everything the layers do not cover that pruning does not
            shrink (>= 0).
        scaled_ms: the latency the layers do not cover that shrinks in proportion to the
            kept activation elements of the model's tensors (>= 0).
        multiple: the channel multiple the kernels run well; counts are priced rounded
            up to it, and a latency budget keeps multiples of it.
        layer_scale: what a layer costs inside the model per millisecond it cost alone
            (>= 0; 1 for a table written by hand).
        batch_size: the batch the table was measured at (None: written by hand).
        machine: the machine key it was measured on (`tfcompress.latency.machine_key`).
        signature: the model signature it belongs to (`tfcompress.latency.model_signature`).
        repeats: the timed calls per grid point it was measured with, and
        fit_seconds: the seconds (at least) its whole-model fit timed for (`rest="fit"`);
            `measure_cost_table` reuses a cached table only if it was measured at least as
            carefully as asked. None: written by hand (or cached before they were kept).
    """

    layers: dict
    base_ms: float = 0.0
    multiple: int = 8
    scaled_ms: float = 0.0
    layer_scale: float = 1.0
    batch_size: int = None
    machine: dict = None
    signature: str = None
    repeats: int = None
    fit_seconds: float = None

    def __post_init__(self):
        if not isinstance(self.layers, dict) or not all(
            isinstance(v, LayerCost) for v in self.layers.values()
        ):
            raise TypeError(
                "layers must be a dict of layer name -> LayerCost. "
                f"Received: layers={self.layers!r}"
            )
        for name in ("base_ms", "scaled_ms", "layer_scale"):
            value = getattr(self, name)
            if not is_number(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0. Received: {name}={value!r}")
        check_count("multiple", self.multiple)
        check_count("batch_size", self.batch_size, none=True)
        check_count("repeats", self.repeats, none=True)
        s = self.fit_seconds
        if s is not None and (not is_number(s) or s < 0):
            raise ValueError(
                f"fit_seconds must be a number >= 0 or None. Received: fit_seconds={s!r}")

    def layer_ms(self, name, counts):
        """Milliseconds of layer `name` keeping `counts` (`{"in": n, "out": m}`; counts
        not given: the full width), inside the model (`layer_scale` applied)."""
        layer = self.layers[name]
        counts = {a: counts.get(a, layer.full(a)) for a in layer.axes}
        return self.layer_scale * layer.cost(counts, self.multiple)

    def full_ms(self):
        """The predicted latency of the unpruned model."""
        return self.base_ms + self.scaled_ms + sum(self.layer_ms(n, {}) for n in self.layers)

    def to_dict(self):
        return {
            "layers": {name: c.to_dict() for name, c in sorted(self.layers.items())},
            "base_ms": float(self.base_ms),
            "scaled_ms": float(self.scaled_ms),
            "layer_scale": float(self.layer_scale),
            "multiple": self.multiple,
            "batch_size": self.batch_size,
            "machine": self.machine,
            "signature": self.signature,
            "repeats": self.repeats,
            "fit_seconds": None if self.fit_seconds is None else float(self.fit_seconds),
        }

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise TypeError(f"A cost table is a dict of its fields. Received: {d!r}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown cost table fields {sorted(unknown)}. Received: {d!r}")
        if not isinstance(d.get("layers", {}), dict):
            raise TypeError(
                "layers must be a dict of layer name -> LayerCost fields. "
                f"Received: layers={d['layers']!r}")
        layers = {name: LayerCost.from_dict(c) for name, c in d.get("layers", {}).items()}
        return cls(**{**d, "layers": layers})

    def to_json(self):
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))
