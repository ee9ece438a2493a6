"""See through composite (subclassed) layers: a layer whose `call` is made of Keras layers
and `keras.ops` is re-run symbolically into a functional model of its parts.

`decompose(layer, node)` calls `layer.call` (not `layer(...)`: that would record one opaque
node) on fresh `keras.Input`s shaped like the call's inputs. Its sublayers and ops then
record functional nodes, and `keras.Model(inputs, outputs)` computes what the layer computes
with the same sublayer objects (the same weights). `trace` inlines that model as it inlines
nested models, so the dependency graph couples the parts by their own rules and the compact
model is made of the parts.

A layer that cannot be seen through is told apart with the reason (`Opaque`): it holds
weights of its own (a weight its `call` reads directly: it needs a rule), its `call` fails
on symbolic tensors (Python control flow on tensor values, TensorFlow ops), it branches
on `training` in Python (the functional model would freeze one branch), it reads
sublayer weights off the path from its inputs (they would be frozen as constants), or it
makes or reads a Keras mask (padding) that its parts drop (`keras_masks`).
"""

import dataclasses
import inspect

import keras
import numpy as np

from tfcompress.graph.dynamic_sizes import symbolic_sizes
from tfcompress.graph.keras_masks import drops_input_mask, mask_of, run_both
from tfcompress.graph.sublayers import sublayers
from tfcompress.messages import first_line


@dataclasses.dataclass(frozen=True)
class Opaque:
    """Why `layer` cannot be seen through (`reason`, a sentence naming the cause)."""

    layer: object
    reason: str


def own_variables(layer):
    """The variables `layer` holds itself, not through a sublayer (paths)."""
    inner = set()
    for sub in sublayers(layer):
        inner.update(id(v) for v in sub.variables)
    return [v.path for v in layer.variables if id(v) not in inner]


def decompose(layer, node, masked=()):
    """A functional `keras.Model` computing `node`'s call of `layer` from its parts, or an
    `Opaque` saying why there is none.

    The model's inputs are `node.input_tensors` in order (fresh `keras.Input`s of the same
    shapes and dtypes); its outputs are `node.outputs` in order. `masked`: whether each
    input carries a Keras mask when the model runs (`keras_masks.MaskFlow`)."""
    own = own_variables(layer)
    if own:
        return Opaque(
            layer,
            f"it holds weights of its own besides its sublayers' ({own[:4]}), which its "
            "call reads directly: it needs a channel rule",
        )
    outputs = _symbolic_call(layer, node, training=None)
    if isinstance(outputs, Opaque):
        return outputs
    inputs, outs = outputs
    flat = keras.tree.flatten(outs)
    if len(flat) != len(node.outputs) or not all(
        isinstance(t, keras.KerasTensor) and tuple(t.shape) == tuple(o.shape)
        for t, o in zip(flat, node.outputs)
    ):
        return Opaque(
            layer,
            "its call on symbolic inputs returns other outputs than the layer's call "
            f"({[getattr(t, 'shape', t) for t in flat]} vs "
            f"{[tuple(o.shape) for o in node.outputs]})",
        )
    if _branches_on_training(layer, node):
        return Opaque(
            layer,
            "its call branches on `training` in Python (different layers run in training "
            "and inference), which one functional graph cannot hold",
        )
    parts = keras.Model(inputs, flat, name=f"{layer.name}_parts")
    traced = {id(v) for v in parts.weights}
    frozen = [v.path for v in layer.weights if id(v) not in traced]
    if frozen:
        return Opaque(
            layer,
            f"its call reads weights ({frozen[:4]}) that are not on the path from its "
            "inputs (a sublayer called on a constant, e.g. position ids, or built and not "
            "called), which a functional model would freeze as constants",
        )
    if _drops_mask(layer, node, parts):
        return Opaque(
            layer,
            "it gives its output a Keras mask (a padding mask, e.g. of a `mask_zero` "
            "embedding) that the functional graph of its parts does not pass on: seen "
            "through, the layers after it would attend to the padding",
        )
    if any(masked) and drops_input_mask(layer, node, parts, masked):
        return Opaque(
            layer,
            "its input carries a Keras mask (the padding of a `mask_zero` embedding or a "
            "`Masking` before it) that its call reads and the functional graph of its "
            "parts does not (run on padded samples, they differ): seen through, it would "
            "attend to the padding. Give it the padding as an argument (e.g. "
            "`padding_mask=`) instead of as a Keras mask",
        )
    unknown = _dynamic_batch_reshapes(parts)
    if unknown:
        return Opaque(
            layer,
            f"its call reshapes to {unknown}, sizes of its input that were unknown when "
            "traced (None) and that no single -1 can stand for, so the traced graph would "
            "not run",
        )
    return parts


def _drops_mask(layer, node, parts):
    """True when `layer` gives an output a Keras mask that `parts` (its functional model)
    does not: a call that re-attaches its sublayer's mask by hand, or a `compute_mask` of
    its own. Masks exist only on computed tensors (not on symbolic ones), so both are run
    once on zeros (unknown sizes 2); a call that fails on zeros is not decided (False)."""
    if not any(_computes_masks(x) for x in (layer, *sublayers(layer))):
        return False  # on unmasked inputs, nothing in it can make a mask
    samples = [
        keras.ops.zeros([2 if d is None else d for d in t.shape], t.dtype)
        for t in node.input_tensors
    ]
    outputs = run_both(layer, node, parts, samples)
    if outputs is None:  # whatever zeros make the layer raise
        return False
    return any(mask_of(a) is not None and mask_of(b) is None for a, b in zip(*outputs))


def _computes_masks(layer):
    """Whether `layer`'s class computes masks of its own (overrides `compute_mask`: an
    Embedding, Masking); the base class's only passes an input's mask on."""
    return type(layer).compute_mask is not keras.layers.Layer.compute_mask


def _dynamic_batch_reshapes(parts):
    """`keras.ops.reshape(x, (ops.shape(x)[0], ...))` on a symbolic input records the batch
    size as None, which runs on no tensor: the one unknown size of a reshape becomes -1.
    Returns the first target shape this cannot mend (None at several places, or with a
    -1 whose size the static sizes do not give), or None when every reshape runs."""
    for op in parts.operations:
        if type(op).__name__ == "Reshape" and not isinstance(op, keras.layers.Layer):
            shape = list(op.newshape)
            if shape.count(None) == 0:
                continue
            if shape.count(None) > 1:
                return tuple(shape)
            if -1 in shape:  # (batch, -1, c): the -1 from the static sizes, if known
                dims = op._inbound_nodes[-1].input_tensors[0].shape[1:]
                rest = np.prod([d for d in shape if d not in (None, -1)])
                if None in dims or shape[0] is not None or np.prod(dims) % rest:
                    return tuple(shape)
                shape[shape.index(-1)] = int(np.prod(dims) // rest)
            op.newshape = tuple(-1 if d is None else d for d in shape)
    return None


def _symbolic_call(layer, node, training):
    """`(inputs, outputs)` of `layer.call` on fresh inputs shaped like `node`'s, or Opaque."""
    inputs = [
        keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, sparse=t.sparse)
        for t in node.input_tensors
    ]
    args, kwargs = node.arguments.fill_in(
        {id(t): x for t, x in zip(node.input_tensors, inputs)}
    )
    if training is not None:
        kwargs = {**kwargs, "training": training}
    try:
        with keras.name_scope(layer.name):
            outputs = layer.call(*args, **kwargs)
    except Exception:  # noqa: BLE001 - tried again with unknown sizes as tensors
        outputs = None
    # a size unknown on the symbolic inputs (a sequence's length) is None in the first
    # call; one that needs it (a causal mask) is called again with it as a tensor
    try:
        if outputs is None:
            with keras.name_scope(layer.name), symbolic_sizes():
                outputs = layer.call(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure on symbolic tensors is the reason
        return Opaque(
            layer,
            f"its call fails on symbolic tensors ({type(e).__name__}: "
            f"{first_line(e, 200)}); typical causes: Python control flow on tensor values, "
            "non-Keras ops, or a size unknown when traced (None)",
        )
    return inputs, outputs


def _branches_on_training(layer, node):
    """True when `layer.call` runs different operations for training=True and False."""
    if "training" not in _call_parameters(layer) or "training" in node.arguments.kwargs:
        return False
    sequences = []
    for training in (True, False):
        result = _symbolic_call(layer, node, training)
        if isinstance(result, Opaque):
            return True
        inputs, outputs = result
        sequences.append(_operations(inputs, keras.tree.flatten(outputs)))
    return sequences[0] != sequences[1]


def _operations(inputs, outputs):
    """The operations between `inputs` and `outputs` (ids, in visiting order)."""
    seen, order, stack = set(), [], list(outputs)
    stop = {id(t) for t in inputs}
    while stack:
        t = stack.pop()
        history = getattr(t, "_keras_history", None)
        if history is None or id(t) in stop:
            continue
        op = history.operation
        node = op._inbound_nodes[history.node_index]
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(id(op) if isinstance(op, keras.layers.Layer) else type(op).__name__)
        stack.extend(node.input_tensors)
    return sorted(map(str, order))


def _call_parameters(layer):
    try:
        return inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return {}


