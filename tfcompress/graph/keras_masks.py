"""Keras masks flowing into composite layers that `trace` sees through.

A Keras mask (which steps of a sequence are padding: `Embedding(mask_zero=True)`,
`Masking`) is not a tensor of the functional graph: Keras attaches it to the tensors a
layer returns while the model runs, and a layer's call may read it from its input (keras_hub's
`TransformerEncoder` merges it into its attention mask by hand). The functional model of a
composite's parts (`decompose`) is traced from fresh inputs that carry none, so it may not
do what the layer does with it: seen through, the layers after it would attend to the
padding, silently.

`MaskFlow` finds which inputs of a model's composite layers carry a mask when the model
runs (one run of the model on zeros, only when something in it can make a mask), and
`drops_input_mask` runs such a layer and its parts once on the same masked inputs to tell
whether the parts do what the layer does.
"""

import keras
import numpy as np

from tfcompress.graph.sublayers import sublayers


def may_make_masks(model):
    """Whether any layer of `model` (at any depth) can make a Keras mask: an embedding
    with `mask_zero`, a `Masking`, or a layer outside Keras that computes masks of its
    own. Without one, no tensor of the model carries a mask and nothing is run."""
    for layer in sublayers(model):
        if getattr(layer, "mask_zero", False) or isinstance(layer, keras.layers.Masking):
            return True
        compute_mask = type(layer).compute_mask
        if compute_mask is not keras.layers.Layer.compute_mask and not (
            compute_mask.__module__ or ""
        ).startswith("keras."):
            return True
    return False


def _sample(shape, dtype, seed):
    """A tensor of `shape` (unknown sizes 4, so a mask can hold both values): normal
    floats, or ones (token ids of no padding) for other dtypes."""
    shape = [4 if d is None else d for d in shape]
    if "float" in str(dtype):
        values = np.random.default_rng(seed).standard_normal(shape)
        return keras.ops.convert_to_tensor(values.astype(str(dtype)))
    return keras.ops.ones(shape, dtype)


def _with_mask(x):
    """`x` carrying a Keras mask over its first two axes (the second half of each
    sequence padding)."""
    steps = int(x.shape[1])
    mask = np.broadcast_to(np.arange(steps) < max(1, steps // 2), tuple(x.shape[:2]))
    x._keras_mask = keras.ops.convert_to_tensor(mask)  # read back by get_keras_mask
    return x


def mask_of(x):
    """The Keras mask a computed tensor carries, or None (Keras keeps it as the tensor's
    `_keras_mask`, which `keras.src.backend.get_keras_mask` reads)."""
    return getattr(x, "_keras_mask", None)


def run_both(layer, node, parts, samples):
    """`(outputs of layer, outputs of parts)`, flat, on `samples` (one per input of
    `node`, the call of `layer` that `parts` computes), or None when either call raises."""
    try:
        args, kwargs = node.arguments.fill_in(
            {id(t): x for t, x in zip(node.input_tensors, samples)}
        )
        return keras.tree.flatten(layer(*args, **kwargs)), keras.tree.flatten(parts(samples))
    except Exception:  # noqa: BLE001 - whatever the samples make the layer raise
        return None


class MaskFlow:
    """Which tensors of the functional models `trace` visits carry a Keras mask when the
    model runs (masks exist whatever the values: the model runs on zeros), nested models
    and composites with the masks of the tensors they are called on.

    Each tensor is found by a run of the part of its model that computes it, alone: a
    consumer run as well may take the mask off the very tensor object it was given
    (Keras's `MultiHeadAttention` clears its inputs' masks)."""

    def __init__(self):
        self._masked = {}  # id(tensor) -> whether it carries a mask
        self._input_masks = {}  # id(functional) -> [bool] per input

    def enter(self, inner, node, outer):
        """`inner` (a nested model or a composite's parts) is called at `node` of `outer`."""
        self._input_masks[id(inner)] = self.carries(outer, node.input_tensors)

    def carries(self, fn, tensors):
        """`[bool]`: whether each of `tensors` (of functional `fn`) carries a mask."""
        for t in tensors:
            if id(t) not in self._masked:
                self._masked[id(t)] = self._run(fn, t)
        return [self._masked[id(t)] for t in tensors]

    def _run(self, fn, tensor):
        masks_in = self._input_masks.get(id(fn), [False] * len(fn.inputs))
        samples = [
            keras.ops.zeros([2 if d is None else d for d in t.shape], t.dtype) for t in fn.inputs
        ]
        masks = [
            keras.ops.ones(x.shape[:2], "bool") if m and len(x.shape) >= 2 else None
            for x, m in zip(samples, masks_in)
        ]
        try:
            probe = keras.Model(fn.inputs, tensor)
            if any(m is not None for m in masks):
                out = probe(samples, mask=masks)
            else:
                out = probe(samples)
        except Exception:  # noqa: BLE001 - a model zeros make raise: no mask known
            return False
        return mask_of(out) is not None


def drops_input_mask(layer, node, parts, masked):
    """True when `layer`, its inputs carrying Keras masks where `masked` says, computes
    other outputs (or output masks) than `parts`, its functional model, on the same
    inputs: one run of each on normal samples, half of each sequence padding. A call that
    fails on them is not decided (False)."""
    samples = [
        _sample(t.shape, t.dtype, seed)
        for seed, t in enumerate(node.input_tensors)
    ]
    samples = [
        _with_mask(x) if m and len(x.shape) >= 2 else x for x, m in zip(samples, masked)
    ]
    outputs = run_both(layer, node, parts, samples)
    if outputs is None:
        return False
    for a, b in zip(*outputs):
        if (mask_of(a) is None) != (mask_of(b) is None):
            return True
        a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        if a.shape != b.shape or np.max(np.abs(a - b), initial=0.0) > 1e-4 * max(
            1.0, float(np.max(np.abs(a), initial=0.0))
        ):
            return True
    return False
