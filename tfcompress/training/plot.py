"""The plots a run writes: the compression plot (task metric against parameters, as in
the seeds' figures) and the Deep Compression stages (accuracy against storage ratio)."""

from tfcompress.atomic import atomic_path


def compression_plot(
    path,
    baseline,
    compressed,
    sweep=(),
    metric="test accuracy",
    title=None,
    sweep_label="pruned one-shot, no fine-tuning",
):
    """Writes a PNG of `metric` against (nonzero) parameters, atomically.

    Args:
        path: the PNG to write.
        baseline: `(params, value)` of the uncompressed model.
        compressed: `{label: (params, value)}` of compressed-and-fine-tuned models.
        sweep: `[(params, value), ...]` of one-shot pruned models without fine-tuning.
        metric: the y axis label: what is measured, on which data (e.g. "test accuracy,
            Fashion-MNIST (10,000 test images)").
        title: default: "<metric> against parameters".
        sweep_label: the legend of the sweep.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    if sweep:
        points = sorted(sweep, reverse=True)
        ax.plot(
            [baseline[0], *(p for p, _ in points)],
            [baseline[1], *(v for _, v in points)],
            "o--",
            color="tab:gray",
            label=sweep_label,
        )
    ax.plot(*baseline, "s", color="tab:blue", markersize=9, label="baseline")
    markers = iter("*^vDP")
    for label, (params, value) in compressed.items():
        ax.plot(params, value, next(markers, "o"), markersize=13, label=label)
        ax.annotate(
            f"{baseline[0] / max(params, 1):.1f}x fewer",
            (params, value),
            textcoords="offset points",
            xytext=(8, -14),
        )
    ax.set_xscale("log")
    ax.set_xlabel("non-zero parameters (log scale)")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} against parameters", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    # below the axes, so that no point or curve is under it
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    return _save(fig, path, bbox_inches="tight")


def _save(fig, path, **savefig):
    """Lays `fig` out, writes it to `path` atomically and closes it; returns `path`."""
    from matplotlib import pyplot as plt

    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, **savefig)
    finally:
        plt.close(fig)
    return path


def stages_plot(path, stages, ylabel, title):
    """Writes a PNG of accuracy (%) against storage ratio, one point per stage, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    ratios = [s["ratio"] for s in stages]
    accs = [100 * s["accuracy"] for s in stages]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.plot(ratios, accs, "o-")
    for i, (s, x, y) in enumerate(zip(stages, ratios, accs, strict=True)):
        below = (-12, -14) if i % 2 else (5, 5)  # neighbours at one accuracy stay apart
        ax.annotate(f"{s['name']} {x:.1f}x", (x, y), textcoords="offset points", xytext=below)
    ax.set_xscale("log")
    ax.set_xlabel("storage ratio (dense float32 bytes / stored bytes)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}: Deep Compression stages")
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)
