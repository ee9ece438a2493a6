"""Before/after compression report: parameters, MACs and output shapes per layer."""

import dataclasses
import json

from tfcompress.metrics.complexity import layer_stats


@dataclasses.dataclass
class Report:
    """Per-layer rows of the original and compressed model, and the totals.

    `compression_ratio` is ACoSP's 1 / (1 - weight sparsity), with sparsity the fraction
    of the original parameters that are gone (removed or zero); `mac_ratio` is
    original MACs / compressed MACs.
    """

    before: list
    after: list

    def totals(self):
        b_params = sum(r.params for r in self.before)
        a_params = sum(r.params for r in self.after)
        a_nonzero = sum(r.nonzero_params for r in self.after)
        b_macs = sum(r.macs for r in self.before)
        a_macs = sum(r.macs for r in self.after)
        sparsity = 1.0 - a_nonzero / b_params if b_params else 0.0
        return {
            "params_before": b_params,
            "params_after": a_params,
            "nonzero_params_after": a_nonzero,
            "weight_sparsity": sparsity,
            "compression_ratio": 1.0 / (1.0 - sparsity) if sparsity < 1 else float("inf"),
            "macs_before": b_macs,
            "macs_after": a_macs,
            "mac_ratio": b_macs / a_macs if a_macs else float("inf"),
        }

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
        changed); then the totals."""
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
            f"params {t['params_before']:,} -> {t['nonzero_params_after']:,} nonzero "
            f"({t['compression_ratio']:.2f}x), MACs {t['macs_before']:,} -> "
            f"{t['macs_after']:,} ({t['mac_ratio']:.2f}x)"
        )
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def report(original, compressed):
    """Compares two models (e.g. the original and `tfcompress.strip(masked)`)."""
    return Report(before=layer_stats(original), after=layer_stats(compressed))
