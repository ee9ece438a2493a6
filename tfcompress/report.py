"""Before/after compression report: parameters, MACs and output shapes per layer.

A sequence model built for any length (`keras.Input((None, d))`) has layers whose MACs
depend on a length no shape holds: they are counted at `sequence_length` when given, else
at the length of the model's input when its shape holds one, else at 1 (MACs per token);
the report says which (`Report.length_note`)."""

import dataclasses
import json
import warnings

from tfcompress.graph.trace import layers_of, trace
from tfcompress.layers import ChannelMask
from tfcompress.metrics.complexity import layer_stats
from tfcompress.numbers import check_count


@dataclasses.dataclass
class Report:
    """Per-layer rows of the original and compressed model, and the totals.

    Totals: `params_ratio` is parameters before / after (the compact model's real count);
    `nonzero_ratio` nonzero weights before / after (element-wise pruning, which keeps the
    architecture); `compression_ratio` is ACoSP's 1 / (1 - weight sparsity), with sparsity
    the fraction of the original parameters the compression removed or set to zero
    (`zeroed_params`: per layer, the zeros the compressed layer holds beyond the
    original's, so weights that were zero already, such as fresh biases, BatchNorm betas
    and moving means, are not counted as compressed); `mac_ratio` is original MACs /
    compressed MACs. The report of a model with itself reads 1.00x and sparsity 0.
    """

    before: list
    after: list
    sequence_length: int | None = None  # None: every size was known
    length_source: str = ""  # "given", "model input" or "unknown" (counted per token)

    def length_note(self):
        """Where the MACs of layers on sequences of unknown length were counted, or ""."""
        if self.sequence_length is None:
            return ""
        if self.length_source == "unknown":
            return (
                "MACs per token (counted at sequence length 1: the length is unknown; pass "
                "sequence_length= to count at a length)"
            )
        where = "given" if self.length_source == "given" else "from the model's input shape"
        return f"MACs at sequence length {self.sequence_length} ({where})"

    def totals(self):
        b_params = sum(r.params for r in self.before)
        a_params = sum(r.params for r in self.after)
        b_nonzero = sum(r.nonzero_params for r in self.before)
        a_nonzero = sum(r.nonzero_params for r in self.after)
        b_macs = sum(r.macs for r in self.before)
        a_macs = sum(r.macs for r in self.after)
        zeroed = self.zeroed()
        kept = a_params - zeroed  # the compressed model's parameters not zeroed by it
        return {
            "params_before": b_params,
            "params_after": a_params,
            "params_ratio": _ratio(b_params, a_params),
            "nonzero_params_before": b_nonzero,
            "nonzero_params_after": a_nonzero,
            "nonzero_ratio": _ratio(b_nonzero, a_nonzero),
            "zeroed_params": zeroed,
            "weight_sparsity": 1.0 - kept / b_params if b_params else 0.0,
            "compression_ratio": _ratio(b_params, kept),
            "macs_before": b_macs,
            "macs_after": a_macs,
            "mac_ratio": _ratio(b_macs, a_macs),
            "sequence_length": self.sequence_length,
            "sequence_length_source": self.length_source or None,
            "macs_not_counted": self.uncounted(),
        }

    def zeroed(self):
        """Parameters the compression set to zero: over the paired layers, the zeros each
        compressed layer holds beyond its original's (a weight zero in both is not
        counted; a layer with channels removed holds no more zeros than before)."""
        return sum(
            max(0, (a.params - a.nonzero_params) - (b.params - b.nonzero_params))
            for b, a in self.pairs()
            if a is not None
        )

    def uncounted(self):
        """Names of the layers (of either model) whose MACs are not counted (an RNN of a
        cell of its own: `tfcompress.metrics.complexity.macs_counted`); [] when none."""
        return sorted({r.name for r in (*self.before, *self.after) if not r.macs_counted})

    def pairs(self):
        """``[(before row, after row or None)]``. When both models have the same layers in the
        same order (what ``strip`` makes: it renames only parts of composite layers that would
        share a name), rows pair by position; otherwise by name, each after-row used once."""
        if len(self.before) == len(self.after) and all(
            b.class_name == a.class_name for b, a in zip(self.before, self.after, strict=True)
        ):
            return list(zip(self.before, self.after, strict=True))
        by_name = {}
        for a in self.after:
            by_name.setdefault(a.name, []).append(a)
        return [(b, by_name[b.name].pop(0) if by_name.get(b.name) else None) for b in self.before]

    def rows(self):
        """One dict per layer of the original model: parameters (total, and nonzero),
        MACs and output shapes before and after (``None`` / 0 where the layer is gone)."""
        out = []
        for r, a in self.pairs():
            out.append({
                "layer": r.name,
                "class": r.class_name,
                "shape_before": list(r.output_shape),
                "shape_after": list(a.output_shape) if a else None,
                "params_before": r.params,
                "params_after": a.params if a else 0,
                "nonzero_params_before": r.nonzero_params,
                "nonzero_params_after": a.nonzero_params if a else 0,
                "macs_before": r.macs,
                "macs_after": a.macs if a else 0,
            })
        return out

    def to_json(self, indent=2):
        return json.dumps({"totals": self.totals(), "layers": self.rows()}, indent=indent)

    def table(self, only_changed=False):
        """Per layer: output shape after, nonzero parameters before > after, MACs before >
        after (``only_changed``: the layers where one of them, or the total parameter count,
        changed); then the totals: parameters, nonzero parameters and MACs before -> after
        with their ratios, and the compression ratio with the weight sparsity."""
        head = f"{'layer':32} {'class':20} {'shape':>22} {'nonzero params':>21} {'MACs':>25}"
        lines = [head, "-" * len(head)]
        keys = ("params", "nonzero_params", "macs", "shape")
        for row in self.rows():
            changed = any(row[f"{k}_before"] != row[f"{k}_after"] for k in keys)
            if only_changed and not changed:
                continue
            shape = "x".join(str(d) for d in (row["shape_after"] or [])[1:])
            lines.append(
                f"{row['layer'][:32]:32} {row['class'][:20]:20} {shape:>22} "
                f"{row['nonzero_params_before']:>10,}>{row['nonzero_params_after']:<10,}"
                f"{row['macs_before']:>12,}>{row['macs_after']:<12,}"
            )
        t = self.totals()
        lines.append("-" * len(head))
        lines.append(
            f"params {t['params_before']:,} -> {t['params_after']:,} ({t['params_ratio']:.2f}x), "
            f"nonzero {t['nonzero_params_before']:,} -> {t['nonzero_params_after']:,} "
            f"({t['nonzero_ratio']:.2f}x), MACs {t['macs_before']:,} -> {t['macs_after']:,} "
            f"({t['mac_ratio']:.2f}x)"
        )
        lines.append(
            f"compression {t['compression_ratio']:.2f}x, weight sparsity "
            f"{t['weight_sparsity']:.3f} ({t['params_before'] - t['params_after']:,} "
            f"parameters removed, {t['zeroed_params']:,} zeroed)"
        )
        if self.length_note():
            lines.append(self.length_note())
        if self.uncounted():
            lines.append(f"MACs not counted (an RNN of a cell of its own): {self.uncounted()}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def report(original, compressed, sequence_length=None):
    """Compares two models (e.g. the original and `tfcompress.strip(masked)`).

    A model with channels masked off (`tfcompress.wrap` + `prune`, not stripped) is
    refused: it still holds and computes every channel, so its parameters and MACs are
    the original's (its ratio read ~1x); `strip` it first. Weight masks (magnitude) are
    counted: their zeros are the nonzero parameters' difference.

    Args:
        sequence_length: the length MACs are counted at along axes of unknown size (a
            sequence model built for any length). Default: the length in the original
            model's input shape when it holds one, else 1 (MACs per token).
    """
    check_count("sequence_length", sequence_length, none=True)
    for name, model in (("original", original), ("compressed", compressed)):
        masked = [m.name for m in layers_of(model, ChannelMask) if not m.kept().all()]
        if masked:
            raise ValueError(
                f"report: {name} model '{model.name}' has channels masked off ({masked[:3]}) "
                "but still holds and computes them, so its parameters and MACs are the "
                "original's: compare `tfcompress.strip(masked)`, which removes them."
            )
    length, source = None, ""
    if _has_unknown_length(original) or _has_unknown_length(compressed):
        length, source = _sequence_length(original, sequence_length)
    result = Report(
        before=layer_stats(original, length),
        after=layer_stats(compressed, length),
        sequence_length=length,
        length_source=source,
    )
    _warn_unpaired(result, original, compressed)
    return result


def _warn_unpaired(result, original, compressed):
    """Warns when fewer than half the original's layers find a partner (two unrelated
    models: every row would read "layer gone", with nothing saying why)."""
    found = sum(a is not None for _, a in result.pairs())
    if found * 2 >= len(result.before):
        return
    warnings.warn(
        f"report: only {found} of the {len(result.before)} layers of the original model "
        f"'{original.name}' have a partner in the compressed model '{compressed.name}'. "
        "The report pairs layers by name (by position when both models hold the same "
        "layer classes in the same order), so the other rows read as gone: compare a "
        "model with its own compressed version (e.g. `tfcompress.strip(masked)`). The "
        "totals still compare the two whole models.",
        UserWarning,
        stacklevel=3,
    )


def _ratio(before, after):
    return before / after if after else float("inf")


def _has_unknown_length(model):
    """True when a tensor of `model` has an inner axis (not batch, not channels) of
    unknown size."""
    return any(len(shape) >= 3 and None in shape[1:-1] for shape in trace(model).shapes.values())


def _sequence_length(model, given):
    """`(length, source)`: `given`; else the first input's axis 1 when known; else 1."""
    if given is not None:
        return int(given), "given"
    for tensor in model.inputs:
        if len(tensor.shape) >= 2 and tensor.shape[1] is not None:
            return int(tensor.shape[1]), "model input"
    return 1, "unknown"
