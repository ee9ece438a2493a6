"""Parity assertions shared by the topology, application and model tests."""

import numpy as np


def outputs(model, x):
    y = model(x, training=False)
    return [np.asarray(t) for t in (y if isinstance(y, (list, tuple)) else [y])]


def max_rel_error(a_list, b_list):
    errs = []
    for a, b in zip(a_list, b_list):
        assert a.shape == b.shape, f"output shapes differ: {a.shape} vs {b.shape}"
        errs.append(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12)))
    return max(errs)


def sample_input(model, batch=2, seed=0):
    shape = [batch] + [int(d) for d in model.inputs[0].shape[1:]]
    return np.random.default_rng(seed).uniform(0, 1, shape).astype("float32")


def prune_with_parity(model, ratio, x=None, read=outputs, **wrap_options):
    """The parity contract: `tfc.wrap(model, **wrap_options)` computes what `model` does
    (<= 1e-6 relative), and after `tfc.prune(ratio=ratio)` the stripped model computes what
    the masked one does (<= 1e-4). Returns `(masked, compact, x)`; `x` defaults to
    `sample_input(model)`; `read(model, x)` gives a model's outputs as a list of arrays
    (default `outputs`; keras_hub backbones return dicts)."""
    import tfcompress as tfc

    x = sample_input(model) if x is None else x
    masked = tfc.wrap(model, **wrap_options)
    assert max_rel_error(read(model, x), read(masked, x)) <= 1e-6
    tfc.prune(masked, ratio=ratio)
    compact = tfc.strip(masked)
    assert max_rel_error(read(masked, x), read(compact, x)) <= 1e-4
    return masked, compact, x


def taylor_fit_with_parity(model, x, y, step):
    """Taylor pruning inside `fit` (one 50 % event at `step`), then the
    contract: at least 45 % of the channels off, the stripped model within 1e-4 of the
    masked one. Returns `(masked, compact)`."""
    import tfcompress as tfc
    from tfcompress import callbacks as cb
    from tfcompress import schedules

    from .pruning_models import compile_model

    masked = compile_model(tfc.wrap(model, "taylor"))
    callback = cb.StructuredPruning(schedules.OneShot(0.5, step=step), method="taylor")
    masked.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    assert tfc.pruners.mask_stats(masked)["channel_sparsity"] >= 0.45
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x[:4]), outputs(compact, x[:4])) <= 1e-4
    return masked, compact
