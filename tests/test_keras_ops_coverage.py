"""Every keras.ops function that records a node in a functional model (an operation of
`keras.src.ops.*`) has a channel rule or a named refusal (`tfcompress.graph.op_table`); the
refusal message names the op and says why; a few of the new rules prune with parity."""

import ast
import inspect
import textwrap

import keras
import numpy as np
import pytest
from keras import layers, ops
from keras.src.ops.operation import Operation

import tfcompress as tfc
from tests.parity import outputs, prune_with_parity
from tfcompress.graph import UnknownLayerError
from tfcompress.graph.op_rules import Reduce
from tfcompress.graph.op_table import OP_RULES, PREFIX, REFUSALS
from tfcompress.graph.opaque import Refused
from tfcompress.graph.rules import RULES


def _qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _operations_of(fn, seen):
    """The keras.src.ops Operation classes `fn` instantiates in its own code or in the
    keras.ops functions it calls (`abs` -> `absolute` -> Absolute)."""
    if fn in seen:
        return set()
    seen.add(fn)
    found = set()
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(fn)))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        obj = fn.__globals__.get(node.func.id)
        if isinstance(obj, type) and issubclass(obj, Operation):
            if not issubclass(obj, keras.layers.Layer):
                found.add(obj)
        elif inspect.isfunction(obj) and obj.__module__.startswith(PREFIX):
            found |= _operations_of(obj, seen)
    return found


def _keras_ops_operations():
    """{qualified Operation class name: [keras.ops functions recording it]}."""
    found = {}
    for name, fn in inspect.getmembers(ops, inspect.isfunction):
        if name.startswith("_"):
            continue
        for cls in _operations_of(fn, set()):
            found.setdefault(_qualname(cls), []).append(name)
    return found


OPERATIONS = _keras_ops_operations()


def _class(qualified):
    module, name = qualified[len(PREFIX) :].rsplit(".", 1)
    return getattr(getattr(keras.src.ops, module), name, None)


def test_the_enumeration_finds_the_operations_of_keras_ops():
    # A check on the enumeration itself: aliases and the operator functions resolve.
    assert len(OPERATIONS) > 250
    assert OPERATIONS[PREFIX + "numpy.Absolute"] == ["abs", "absolute"]
    assert "matmul" in OPERATIONS[PREFIX + "numpy.Matmul"]
    assert "map" in OPERATIONS[PREFIX + "core.Map"]


def test_every_keras_ops_operation_has_a_rule_or_a_named_refusal():
    missing = sorted(
        f"{name} ({', '.join(fns)})" for name, fns in OPERATIONS.items() if name not in RULES
    )
    assert not missing, f"keras.ops operations without a rule or a refusal: {missing}"


def test_the_table_names_only_operations_that_exist():
    dead = [k for k in OP_RULES if not isinstance(_class(k), type)]
    assert not dead, f"op_table names keras.ops operations that do not exist: {dead}"
    assert all(RULES[k] is rule for k, rule in OP_RULES.items())


def test_rules_read_the_arguments_their_operations_hold():
    # Reduce reads `op.layer.axis`: every operation under it keeps one.
    for name, rule in OP_RULES.items():
        if isinstance(rule, Reduce):
            assert "axis" in inspect.signature(_class(name).__init__).parameters, name


def test_each_refusal_names_the_keras_ops_function_and_a_reason():
    assert REFUSALS
    for name, rule in REFUSALS.items():
        assert isinstance(rule, Refused)
        function = rule.name.removeprefix("keras.ops.").split(".")[-1]
        assert function in OPERATIONS[name], (name, rule.name, OPERATIONS[name])
        assert rule.reason and rule.reason[0].islower(), name


def _conv_op_conv(op):
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = op(y)
    y = layers.Conv2D(4, 3, padding="same", name="c2")(y)
    return keras.Model(x, layers.GlobalAveragePooling2D()(y))


@pytest.mark.parametrize(
    "op, function, reason",
    [
        (lambda y: ops.take(y, [0, 2, 4], axis=1), "keras.ops.take", "indices"),
        (lambda y: ops.map(lambda t: t * 2.0, y), "keras.ops.map", "Python function"),
    ],
)
def test_a_refused_op_on_prunable_channels_is_refused_by_name(op, function, reason):
    model = _conv_op_conv(op)
    with pytest.raises(UnknownLayerError) as error:
        tfc.DependencyGraph(model)
    message = str(error.value)
    assert f"{function} is refused" in message
    assert reason in message
    assert "exclude=" in message


def test_a_refused_op_on_kept_channels_is_accepted():
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = layers.Softmax()(y)  # keeps every channel of c1
    y = ops.take(y, [0, 2, 4], axis=1)
    graph = tfc.DependencyGraph(keras.Model(x, y))
    assert not graph.prunable_groups


def test_new_op_rules_prune_with_parity():
    x = keras.Input((8, 8, 3))
    y = layers.Conv2D(8, 3, padding="same", name="c1")(x)
    y = ops.transpose(ops.sin(y), (0, 2, 1, 3))  # KeepsLastAxis, Channelwise
    y = ops.cumsum(ops.expand_dims(y, 1), axis=2)  # KeepsLastAxis, Reduce (spatial axis)
    y = ops.squeeze(ops.maximum(y, ops.zeros_like(y)), 1)  # Broadcast, Channelwise
    y = ops.where(ops.greater(y, ops.mean(x)), y, 0.0)  # a scalar broadcast: left alone
    y = layers.Conv2D(6, 3, padding="same", name="c2")(y)
    y = ops.sort(y, axis=-1)  # along the channel axis: pinned
    model = keras.Model(x, layers.GlobalAveragePooling2D()(y))
    groups = {
        g.index: {m.layer.name for m in g.members}
        for g in tfc.DependencyGraph(model).prunable_groups
    }
    assert list(groups.values()) == [{"c1", "c2"}]
    _, compact, data = prune_with_parity(model, 0.5, method="l1_filter")
    assert compact.get_layer("c1").filters == 4
    assert np.isfinite(outputs(compact, data)[0]).all()


@pytest.mark.parametrize(
    "op, coupled",
    [
        (lambda y: ops.transpose(y, (0, 2, 1, 3)), True),
        (lambda y: ops.transpose(y, (0, 3, 1, 2)), False),  # channels moved
        (lambda y: ops.squeeze(ops.expand_dims(y, 1), 1), True),
        (lambda y: ops.expand_dims(y, -1)[..., 0], False),  # channels no longer last
        (lambda y: ops.swapaxes(y, 1, 2), True),
        (lambda y: ops.moveaxis(y, -1, 1), False),
        (lambda y: ops.tile(y, (1, 2, 1, 1)), True),
        (lambda y: ops.tile(y, (1, 1, 1, 2)), False),
        (lambda y: ops.stack([y, y * 2.0], axis=1)[:, 0], True),
        (lambda y: ops.sort(y, axis=1), True),
        (lambda y: ops.sort(y), False),  # along the channel axis
        (lambda y: ops.roll(y, 1), False),  # axis None: the flattened tensor
        (lambda y: ops.linalg.norm(y, axis=-1, keepdims=True) * y, False),
    ],
)
def test_axis_rules_couple_while_the_channel_axis_stays_last(op, coupled):
    graph = tfc.DependencyGraph(_conv_op_conv(op))
    groups = [{m.layer.name for m in g.members} for g in graph.prunable_groups]
    assert groups == ([{"c1", "c2"}] if coupled else [])
