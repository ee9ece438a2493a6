"""Flatten a Keras 3 functional or Sequential model into a list of op nodes.

Nested models are inlined: their inner tensors are aliased to the outer tensors that
feed them, so the dependency graph and the rebuilders see one flat graph of layers.
Composite (subclassed) layers without a channel rule are inlined the same way, through the
functional model of their parts (`tfcompress.graph.decompose`); one that cannot be seen
through stays one op, with the reason in `TracedModel.opaque`.
"""

import dataclasses

import keras

from tfcompress.graph.decompose import Opaque, decompose
from tfcompress.graph.keras_masks import MaskFlow, may_make_masks


@dataclasses.dataclass
class OpNode:
    """One call of one layer: `layer(*args)` with canonical tensor keys."""

    layer: keras.layers.Layer
    node: object  # keras Node: holds the call's arguments (`node.arguments.fill_in`)
    in_keys: list
    out_keys: list
    in_shapes: list
    out_shapes: list
    index: int = 0  # topological position


@dataclasses.dataclass
class TracedModel:
    """A flat view of a model: inputs, op nodes in topological order, outputs.

    A tensor key is the `id()` of the KerasTensor `tensors[key]`, which the traced model
    holds: a key names one tensor for as long as the `TracedModel` lives.
    """

    model: keras.Model
    input_keys: list
    input_tensors: list  # the model's KerasTensors (for shapes, dtypes, names)
    output_keys: list
    ops: list
    shapes: dict  # tensor key -> shape tuple
    tensors: dict  # tensor key -> KerasTensor
    opaque: dict = dataclasses.field(default_factory=dict)  # id(layer) -> Opaque
    composites: dict = dataclasses.field(default_factory=dict)  # id(part) -> composite name

    def layers(self):
        """Unique layers in topological order."""
        seen, out = set(), []
        for op in self.ops:
            if id(op.layer) not in seen:
                seen.add(id(op.layer))
                out.append(op.layer)
        return out


def _as_functional(model):
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise ValueError(
                f"Model '{model.name}' is a Sequential model that is not built. Build it "
                "first, e.g. by starting it with `keras.Input(shape)` or calling "
                "`model.build(input_shape)`."
            )
        return functional
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed model: its graph "
            "of layers is Python code that tfcompress cannot read. Rebuild it with the "
            "functional API (`keras.Model(inputs, outputs)`) or as a `keras.Sequential`."
        )
    overridden = _overridden(model)
    if overridden:
        raise ValueError(
            f"Model '{model.name}' is a functional model of class {type(model).__name__}, "
            f"which overrides {overridden}: tfcompress reads the graph of layers, and the "
            "models it makes (masked, compact) are plain functional models, so they would "
            f"compute or train otherwise, silently. Prune `keras.Model({model.name}.inputs, "
            f"{model.name}.outputs)` (the graph alone) and put the result back into your "
            "class, or move the extra computation into layers of the graph."
        )
    return model


# What a functional model's class may change about how it computes or trains.
_FUNCTIONAL_BEHAVIOUR = ("call", "train_step", "test_step", "predict_step", "compute_loss")


def _overridden(model):
    """The methods of `_FUNCTIONAL_BEHAVIOUR` a class outside Keras defines for `model`
    (a functional model built from a `keras.Model` subclass: `class M(keras.Model)`,
    `M(inputs, outputs)`); keras_hub backbones define none."""
    mro = type(model).__mro__
    functional = next(
        (i for i, c in enumerate(mro) if c.__name__ == "Functional"
         and c.__module__.startswith("keras.")), len(mro))
    found = []
    for name in _FUNCTIONAL_BEHAVIOUR:
        owner = next((c for c in mro if name in vars(c)), None)
        if owner is not None and mro.index(owner) < functional and not (
            owner.__module__.startswith("keras.")
        ):
            found.append(name)
    return found


def _is_model(layer):
    return isinstance(layer, keras.Model)


def check_model(model):
    """Raises a clear error unless `model` is a built functional/Sequential Keras 3 model."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Expected a keras.Model. Received: model={model!r} of type {type(model).__name__}."
        )
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built: it has no known input shape. Call it on "
            "data or build it from `keras.Input(...)` before pruning."
        )
    return _as_functional(model)


def _composite(layer, keep):
    """True for a layer to see through: a plain layer (not a model or a `keras.ops`
    operation) without a channel rule, not named in `keep`."""
    from tfcompress.graph.rules import find_rule  # rules import the rule modules only

    return (
        isinstance(layer, keras.layers.Layer)
        and not _is_model(layer)
        and layer.name not in keep
        and find_rule(layer) is None
    )


def trace(model, keep=(), inline_models=True):
    """Returns a `TracedModel` for a built functional or Sequential model.

    Args:
        keep: names of layers never seen through (left as one op even without a rule).
        inline_models: False leaves each nested model one op, as a layer.
    """
    functional = check_model(model)
    alias = {}

    def key(tensor):
        k = id(tensor)
        while k in alias:
            k = alias[k]
        return k

    shapes, tensors = {}, {}
    ops = []
    inlined = set()
    opaque, composites = {}, {}
    masks = MaskFlow() if may_make_masks(functional) else None

    def join(tensor, target):
        # A nested model called on its own input (keras_hub task models call their
        # backbone on `backbone.input`) gives the same tensor on both sides: aliasing it to
        # itself would make `key` loop forever.
        k = key(target)
        if k != id(tensor):
            alias[id(tensor)] = k

    def inline(inner, node, within, outer):
        if masks is not None:
            masks.enter(inner, node, outer)
        for inner_in, outer_in in zip(inner.inputs, node.input_tensors):
            join(inner_in, outer_in)
        visit(inner, within)
        for inner_out, outer_out in zip(inner.outputs, node.outputs):
            join(outer_out, inner_out)

    def visit(fn, within=None):
        depths = sorted(fn._nodes_by_depth, reverse=True)
        for depth in depths:
            for node in fn._nodes_by_depth[depth]:
                layer = node.operation
                if layer is None or node.is_input:
                    continue
                if within is not None:
                    composites.setdefault(id(layer), within)
                if _is_model(layer) and inline_models:
                    if id(layer) in inlined:
                        raise ValueError(
                            f"Nested model '{layer.name}' is called more than once in "
                            f"'{model.name}'. Shared sub-models are not supported: build "
                            "them as shared layers instead."
                        )
                    inlined.add(id(layer))
                    inline(_as_functional(layer), node, within, fn)
                    continue
                if _composite(layer, keep):
                    masked = () if masks is None else masks.carries(fn, node.input_tensors)
                    parts = decompose(layer, node, masked)
                    if not isinstance(parts, Opaque):
                        inline(parts, node, within or layer.name, fn)
                        continue
                    opaque[id(layer)] = parts
                in_keys = [key(t) for t in node.input_tensors]
                out_keys = [key(t) for t in node.outputs]
                for t, k in zip(node.outputs, out_keys):
                    shapes[k], tensors[k] = tuple(t.shape), t
                ops.append(
                    OpNode(
                        layer=layer,
                        node=node,
                        in_keys=in_keys,
                        out_keys=out_keys,
                        in_shapes=[
                            shapes.get(k, tuple(t.shape))
                            for k, t in zip(in_keys, node.input_tensors)
                        ],
                        out_shapes=[tuple(t.shape) for t in node.outputs],
                        index=len(ops),
                    )
                )

    input_tensors = list(functional.inputs)
    for t in input_tensors:
        shapes[id(t)], tensors[id(t)] = tuple(t.shape), t
    visit(functional)
    return TracedModel(
        model=model,
        input_keys=[id(t) for t in input_tensors],
        input_tensors=input_tensors,
        output_keys=[key(t) for t in functional.outputs],
        ops=ops,
        shapes=shapes,
        tensors=tensors,
        opaque=opaque,
        composites=composites,
    )


def describe_opaque(traced, layer):
    """Where `layer` sits and why it was not seen through or has no rule, for a refusal
    message: e.g. " (inside composite layer 'block'; not seen through: its call fails
    ...)", " (keras.ops.map is refused: ...)" (`tfcompress.graph.op_table`)."""
    from tfcompress.graph.opaque import Refused
    from tfcompress.graph.rules import find_rule

    parts = []
    if id(layer) in traced.composites:
        parts.append(f"inside composite layer '{traced.composites[id(layer)]}'")
    rule = find_rule(layer)
    if isinstance(rule, Refused):
        parts.append(rule.describe())
    if id(layer) in traced.opaque:
        parts.append(f"not seen through: {traced.opaque[id(layer)].reason}")
    return f" ({'; '.join(parts)})" if parts else ""


def fill_arguments(op, values):
    """The (args, kwargs) of `op`'s call with its input tensors replaced by `values[key]`."""
    local = {id(t): values[k] for t, k in zip(op.node.input_tensors, op.in_keys)}
    return op.node.arguments.fill_in(local)


def layers_of(model, cls=object, *, operations=False):
    """Every layer of `model` that is an instance of `cls`, nested models included (each
    followed by its own), in the order of `model.layers`. `operations=True` walks the
    graph's operations instead, `keras.ops` calls included (a functional model's
    `operations`; a Sequential model's are its layers)."""
    out = []
    for layer in getattr(model, "operations", model.layers) if operations else model.layers:
        if isinstance(layer, cls):
            out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(layers_of(layer, cls, operations=operations))
    return out
