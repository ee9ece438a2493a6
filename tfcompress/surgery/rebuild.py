"""Re-run a traced model's graph on fresh inputs with new layers: the one mechanism
behind `wrap` (insert masks) and `strip` (narrower layers, masks removed)."""

import contextlib

import keras

from tfcompress.graph.rules import unwrap
from tfcompress.graph.trace import fill_arguments

_ZEROS = keras.initializers.Zeros()


def clone_layer(layer, config=None):
    """A new, unbuilt layer of `layer`'s class from `config` (default: its own config).

    A stateless `keras.ops` operation used in a functional graph (e.g. `x + 3.0`) is
    returned as is: it holds nothing to copy.
    """
    if not isinstance(layer, keras.layers.Layer):
        return layer
    config = dict(layer.get_config() if config is None else config)
    config.pop("build_config", None)
    try:
        return type(layer).from_config(config)
    except Exception as e:  # noqa: BLE001 - re-raised with the layer's name
        raise ValueError(
            f"Cannot re-create layer '{layer.name}' ({type(layer).__name__}) from its "
            f"get_config(): {e}. Give the class a get_config() that lists every constructor "
            "argument."
        ) from e


def rebuild(traced, make_layer, on_built=None, transform_input=None, name=None):
    """Builds a new functional model from `traced` (a `TracedModel`).

    Args:
        make_layer: `fn(op) -> layer or None`, called once per original layer; None makes
            the layer an identity (its first input passes through).
        on_built: optional `fn(op, new_layer)` called once per layer after its first call;
            it sets every weight of `unwrap(new_layer)` (which, when given, creates them
            as zeros rather than random draws; a wrapper's own weights are left alone).
        transform_input: optional `fn(op, key, tensor) -> tensor` applied to each input
            of each op before the call (e.g. inserting a mask).
        name: the new model's name (default: the original's).
    """
    functional = traced.model
    if isinstance(functional, keras.Sequential):
        functional = functional._functional
    values, new_inputs = {}, []
    for t, k in zip(traced.input_tensors, traced.input_keys):
        x = keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=_input_name(t))
        values[k] = x
        new_inputs.append(x)
    new_layers = {}  # original layer -> its replacement (a shared layer is made once)
    used = set()  # names of the new layers: parts of composites may repeat a name
    for op in traced.ops:
        first = op.layer not in new_layers
        if first:
            new_layers[op.layer] = _unique_name(make_layer(op), op, traced, used)
        layer = new_layers[op.layer]
        local = values
        if transform_input is not None:  # only the op's inputs (not a copy of all values)
            local = {k: transform_input(op, k, values[k]) for k in op.in_keys}
        if layer is None:
            outputs = [local[op.in_keys[0]]]
        else:
            args, kwargs = fill_arguments(op, local)
            zeros = first and on_built is not None and isinstance(layer, keras.layers.Layer)
            with _zero_initialized(unwrap(layer)) if zeros else contextlib.nullcontext():
                outputs = keras.tree.flatten(layer(*args, **kwargs))
            if first and on_built is not None and isinstance(layer, keras.layers.Layer):
                on_built(op, layer)
        for k, y in zip(op.out_keys, outputs):
            values[k] = y
    outs = [values[k] for k in traced.output_keys]
    outs = keras.tree.pack_sequence_as(functional._outputs_struct, outs)
    ins = keras.tree.pack_sequence_as(functional._inputs_struct, new_inputs)
    return keras.Model(ins, outs, name=name or traced.model.name)


def _unique_name(layer, op, traced, used):
    """`layer` (new and unbuilt), renamed `<composite>_<name>` if its name is taken: the
    parts of two calls of one composite layer (`trace`) may share their names."""
    if isinstance(layer, keras.layers.Layer) and layer is not op.layer:
        if layer.name in used:
            stem = f"{traced.composites.get(id(op.layer), traced.model.name)}_{layer.name}"
            name, n = stem, 1
            while name in used:
                name, n = f"{stem}_{n}", n + 1
            inner = unwrap(layer)  # a wrapper's layer: `strip` clones it by its name
            if inner is not layer and inner.name == layer.name:
                inner.name = name
            layer.name = name  # before its first call: nothing holds the old name yet
        used.add(layer.name)
    return layer


@contextlib.contextmanager
def _zero_initialized(layer):
    """Within: `layer` (and the layers it holds) create their weights as zeros instead of
    drawing them (random draws for a ResNet-18 cost ~0.2 s, and `on_built` overwrites
    them); every initializer is put back on exit, so configs do not change."""
    saved, stack, seen = [], [layer], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for attr, value in list(vars(current).items()):
            if isinstance(value, keras.initializers.Initializer):
                saved.append((current, attr, value))
            elif isinstance(value, keras.layers.Layer):
                stack.append(value)
    for owner, attr, _ in saved:
        owner.__dict__[attr] = _ZEROS
    try:
        yield
    finally:
        for owner, attr, value in saved:
            owner.__dict__[attr] = value


def _input_name(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else None
