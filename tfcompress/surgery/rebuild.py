"""Re-run a traced model's graph on fresh inputs with new layers: the one mechanism
behind `wrap` (insert masks) and `strip` (narrower layers, masks removed)."""

import collections
import contextlib
import re

import keras

from tfcompress.graph.rules import unwrap
from tfcompress.graph.trace import fill_arguments
from tfcompress.messages import first_line

_ZEROS = keras.initializers.Zeros()


def clone_layer(layer, config=None):
    """A new, unbuilt layer of `layer`'s class from `config` (default: its own config).

    A stateless `keras.ops` operation used in a functional graph (e.g. `x + 3.0`), and a
    `Lambda` without weights called with its own config, are returned as they are: they
    hold nothing to copy.
    """
    if not isinstance(layer, keras.layers.Layer):
        return layer
    own = layer.get_config()
    if isinstance(layer, keras.layers.Lambda) and not layer.weights and config in (None, own):
        # a Lambda holds only its function: the layer itself serves (Keras would re-create
        # a Python lambda without the globals it reads, and not at all in safe mode)
        return layer
    config = dict(own if config is None else config)
    config.pop("build_config", None)
    if isinstance(layer, (keras.layers.Wrapper, keras.layers.Bidirectional)):
        # their layers are built by their own build: from_config would build them for the
        # input width they had, which strip may cut
        for key in ("layer", "backward_layer"):
            if isinstance(config.get(key), dict):
                config[key] = {k: v for k, v in config[key].items() if k != "build_config"}
    try:
        return type(layer).from_config(config)
    except Exception as e:  # noqa: BLE001 - re-raised with the layer's name
        raise ValueError(
            f"Cannot re-create layer '{layer.name}' ({type(layer).__name__}) from its "
            f"get_config(): {first_line(e, 300)}. {clone_fix(config, e)}"
        ) from e


def clone_fix(config, error=None):
    """What makes a layer config that failed to load loadable: register the classes
    (`error` says Keras found none by a name) and functions it names; allow (or avoid) the
    Python lambdas it holds; else a complete get_config."""
    missing = re.search(r"Could not locate class '([^']+)'", str(error or ""))
    if missing:
        return (
            f"Keras finds the class {missing.group(1)!r} by name only when registered: "
            "decorate it with `@keras.saving.register_keras_serializable()`."
        )
    functions = sorted({f for f in _serialized(config, "function") if isinstance(f, str)})
    if functions:
        return (
            f"It names the function(s) {functions}, which Keras finds by name only when "
            "registered: decorate them with `@keras.saving.register_keras_serializable()`."
        )
    if _serialized(config, "__lambda__"):
        return (
            "It holds a Python lambda, which Keras re-creates only outside its safe mode: "
            "if you trust it, call `keras.config.enable_unsafe_deserialization()` first "
            "(load the saved models with `safe_mode=False` too); or define the function "
            "with `def` and decorate it with `@keras.saving.register_keras_serializable()`; "
            "or, in a Lambda not named in `exclude`, compute with keras.ops only "
            "(tfcompress then sees through it: nothing to re-create)."
        )
    return "Give the class a get_config() that lists every constructor argument."


def _serialized(config, class_name):
    """The `config` entries of the objects of `class_name` serialized in a layer config (a
    function of one's own: `{"class_name": "function", "config": name}`; a Python lambda:
    `"__lambda__"`, its code)."""
    found = []
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if value.get("class_name") == class_name and "config" in value:
                found.append(value["config"])
            else:
                stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return found


def rebuild(traced, make_layer, weights_of=None, transform_input=None, name=None):
    """Builds a new functional model from `traced` (a `TracedModel`).

    Args:
        make_layer: `fn(op) -> layer or None`, called once per original layer; None makes
            the layer an identity (its first input passes through).
        weights_of: optional `fn(op) -> values`, called once per new layer before its
            first call: the value of every weight of `unwrap(new layer)`, in the order of
            `unwrap(op.layer).weights` (whose names they go by). The weights are created
            holding these values (`_initialized_from`; no random draw, no second write);
            a wrapper's own weights are left alone.
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
            given = first and weights_of is not None and isinstance(layer, keras.layers.Layer)
            with _initialized_from(op, layer, weights_of(op)) if given else _NO_VALUES:
                outputs = keras.tree.flatten(layer(*args, **kwargs))
        for k, y in zip(op.out_keys, outputs):
            values[k] = y
    outs = [values[k] for k in traced.output_keys]
    outs = keras.tree.pack_sequence_as(functional._outputs_struct, outs)
    ins = keras.tree.pack_sequence_as(functional._inputs_struct, new_inputs)
    return keras.Model(ins, outs, name=traced.model.name if name is None else name)


_NO_VALUES = contextlib.nullcontext()


@contextlib.contextmanager
def _initialized_from(op, layer, values):
    """Within: the weights `unwrap(layer)` creates (on its first call) hold `values`.

    A weight whose name is one of the original's (`unwrap(op.layer).weights`, each name
    once) and whose shape matches is created from its value (`add_weight`'s initializer
    swapped for the value, for that call only); any other weight (made by a nested
    layer, or named twice) is created as zeros (`_zero_initialized`) and assigned its
    value on exit. Random draws for a ResNet-18 cost ~0.2 s, and writing every weight a
    second time ~0.1 s. Configs do not change: the layers' initializers are put back.
    """
    target = unwrap(layer)
    names = [w.name for w in unwrap(op.layer).weights]
    values = list(values)
    if len(values) != len(names):
        raise ValueError(
            f"{len(values)} weight values were given for the copy of layer "
            f"'{op.layer.name}', which has {len(names)} weights."
        )
    counts = collections.Counter(names)
    by_name = {n: v for n, v in zip(names, values) if counts[n] == 1}
    made = set()  # ids of the variables created holding their value

    def add_weight(*args, **kwargs):
        shape = kwargs.get("shape", args[0] if args else None)
        value = by_name.pop(kwargs.get("name"), None)
        if (
            value is None
            or not isinstance(shape, (tuple, list))
            or tuple(shape) != tuple(value.shape)
        ):
            return original(*args, **kwargs)
        kwargs.update(zip(("shape", "initializer", "dtype"), args))
        kwargs["initializer"] = _Value(value)
        variable = original(**kwargs)
        made.add(id(variable))
        return variable

    original = target.add_weight
    vars(target)["add_weight"] = add_weight  # this layer only, past attribute tracking
    try:
        with _zero_initialized(target):
            yield
    finally:
        del vars(target)["add_weight"]
    created = target.weights
    if len(created) != len(values):
        raise ValueError(
            f"The copy of layer '{op.layer.name}' has {len(created)} weights, the layer "
            f"{len(values)}: its get_config() does not re-create it."
        )
    for var, name, value in zip(created, names, values):
        if id(var) not in made or var.name != name:  # by position, as `set_weights`
            var.assign(value)


class _Value:
    """An initializer returning one given value (cast to the dtype asked for)."""

    def __init__(self, value):
        self.value = value

    def __call__(self, shape, dtype=None):
        value = keras.ops.convert_to_tensor(self.value)
        if dtype is not None and keras.backend.standardize_dtype(value.dtype) != dtype:
            value = keras.ops.cast(value, dtype)
        return value


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
            # (a shared original layer keeps its name: `wrap(..., copy_layers=False)`)
            if inner is not layer and inner is not op.layer and inner.name == layer.name:
                inner.name = name
            layer.name = name  # before its first call: nothing holds the old name yet
        used.add(layer.name)
    return layer


@contextlib.contextmanager
def _zero_initialized(layer):
    """Within: `layer` (and the layers it holds) create their weights as zeros instead of
    drawing them (`_initialized_from` assigns their values next); every initializer is
    put back on exit, so configs do not change."""
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
