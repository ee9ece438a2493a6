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
