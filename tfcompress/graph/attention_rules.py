"""Rules for attention: `keras.layers.EinsumDense` and `keras.layers.MultiHeadAttention`.

An EinsumDense whose equation contracts the input's last axis and makes the output's last
axis from the kernel (`"abc,cd->abd"`, `"abc,cde->abde"`) is a Dense: its inputs are
consumed, its outputs are new channels. Any other equation pins its tensors.

A MultiHeadAttention consumes its query, key and value inputs (each through its
projection's kernel) and makes new output channels (the output projection). Its heads are
an internal axis (`InternalAxis`, a group of its own): a head masked in the output
projection's kernel is a head removed, since its query, key and value feed nothing else;
the compact layer has fewer `num_heads`. With `Attention(head_dims=True)` the per-head
query/key dimensions ("key_dims", masked in the query projection) and value dimensions
("value_dims", masked in the output projection) are internal axes too; the compact query
projection is scaled by sqrt(new key_dim / key_dim), so the attention scale
1 / sqrt(key_dim) of the narrower layer computes what the masked one did.
"""

import math

import numpy as np

from tfcompress.graph.rule_base import (
    InternalAxis,
    Rule,
    find_weight,
    internal_key,
    mixing_activation,
)


def _split_equation(equation):
    """`(input spec, kernel spec, output spec)` of an einsum equation, ellipses dropped."""
    inputs, output = equation.split("->")
    x, kernel = inputs.split(",")
    return x.replace("...", ""), kernel.replace("...", ""), output.replace("...", "")


class EinsumDense(Rule):
    """EinsumDense: a Dense when its equation contracts the input's last axis and makes
    the output's last axis from the kernel; pinned otherwise."""

    is_mixing = True
    inputs, outputs = 1, 1

    def _axes(self, layer):
        """`(kernel in axis, kernel out axis, bias out axis or None)`, or None when the
        equation does not map the last axes as a Dense does."""
        x, kernel, out = _split_equation(layer.equation)
        if layer.equation.split("->")[1].endswith("...") or not x or not out:
            return None
        c_in, c_out = x[-1], out[-1]
        if c_in not in kernel or c_in in out or c_out not in kernel or c_out in x:
            return None
        bias = -1 if layer.bias_axes and c_out in layer.bias_axes else None
        return kernel.index(c_in), kernel.index(c_out), bias

    def couple(self, op, b):
        if self._axes(op.layer) is None:
            b.pin(*op.in_keys, *op.out_keys, reason="EinsumDense equation")
            return
        if activation := mixing_activation(op.layer):
            b.pin(*op.out_keys, reason=f"{activation} activation")
        b.consume(op, op.in_keys[0])

    def weight_axes(self, layer):
        axes = self._axes(layer)
        if axes is None:
            return {}
        found = {"kernel": (axes[0], axes[1])}
        if axes[2] is not None:
            found["bias"] = (None, axes[2])
        return found

    def edit_config(self, config, op, in_keep, out_keep):
        shape = config["output_shape"]
        shape = list(shape) if isinstance(shape, (list, tuple)) else [shape]
        shape[-1] = int(len(out_keep))
        config["output_shape"] = tuple(shape) if len(shape) > 1 else shape[0]
        return config


_ARGUMENTS = ("query", "value", "key", "query_mask", "value_mask", "key_mask", "attention_mask")



def sliced_weights(layer, slices):
    """`{path: numpy value}` of `layer`'s weights cut as `slices` says: per weight path, a
    list of `(axis, keep, scale)` steps (scale the axis by `scale`, then keep the `keep`
    indices along it; either may be None). Paths the layer has no weight for (a bias of a
    layer without bias) are left out."""
    values = {}
    for path, steps in slices.items():
        if not any(w.path.endswith("/" + path) for w in layer.weights):
            continue
        value = np.asarray(layer.weights[find_weight(layer, path)])
        for axis, keep, scale in steps:
            if scale is not None:
                shape = [1] * value.ndim
                shape[axis] = -1
                value = value * np.reshape(np.asarray(scale, value.dtype), shape)
            if keep is not None:
                value = np.take(value, keep, axis=axis)
        values[path] = value
    return values

def call_inputs(op):
    """`{argument name: tensor key}` of a MultiHeadAttention call (key defaults to value)."""
    keys = {id(t): k for t, k in zip(op.node.input_tensors, op.in_keys)}
    args = op.node.arguments
    bound = dict(zip(_ARGUMENTS, args.args))
    bound.update({n: v for n, v in args.kwargs.items() if n in _ARGUMENTS})
    found = {n: keys[id(v)] for n, v in bound.items() if id(v) in keys}
    found.setdefault("key", found.get("value"))
    return found


class Attention(Rule):
    """MultiHeadAttention: query, key and value inputs consumed, output channels new; the
    heads (and, with `head_dims=True`, the query/key and value dimensions of every head)
    are internal axes, each a group of its own.

    Args:
        head_dims: also prune head dimensions ("key_dims": query and key together,
            "value_dims": value and output together), the same ones in every head.
    """

    is_mixing = True

    def __init__(self, head_dims=False):
        self.head_dims = bool(head_dims)

    def couple(self, op, b):
        found = call_inputs(op)
        for key in dict.fromkeys(found.get(n) for n in ("query", "value", "key")):
            if key is not None:  # self-attention reads one tensor three times
                b.consume(op, key)
        masks = [k for n, k in found.items() if n.endswith("mask")]
        if masks:
            b.pin(*masks, reason="attention mask")
        if len(op.layer.get_config()["output_shape"] or ()) > 1:
            b.pin(op.out_keys[0], reason="MultiHeadAttention output_shape")
        if len(op.out_keys) > 1:  # the scores hold every head
            b.pin(*op.out_keys[1:], internal_key(op.layer, "heads"), reason="attention scores")

    def internal_input(self, op):
        return call_inputs(op)["query"]

    def internal_axes(self, layer):
        gate = (("gate/kernel", 1),) if getattr(layer, "_use_gate", False) else ()
        axes = {
            "heads": InternalAxis(
                layer.num_heads,
                scaled=(("attention_output/kernel", 0),),
                scored=(
                    ("query/kernel", 1),
                    ("key/kernel", 1),
                    ("value/kernel", 1),
                    ("attention_output/kernel", 0),
                )
                + gate,
            )
        }
        if self.head_dims:
            bias = (("query/bias", 1),) if layer.use_bias else ()
            axes["key_dims"] = InternalAxis(
                layer.key_dim,
                scaled=(("query/kernel", 2),) + bias,
                scored=(("query/kernel", 2), ("key/kernel", 2)),
            )
            axes["value_dims"] = InternalAxis(
                layer.value_dim,
                scaled=(("attention_output/kernel", 1),),
                scored=(("value/kernel", 2), ("attention_output/kernel", 1)),
            )
        return axes

    def scored_kernels(self, layer, internal=None):
        if internal is not None:
            yield from super().scored_kernels(layer, internal)
            return
        yield np.asarray(layer.weights[find_weight(layer, "attention_output/kernel")]), -1

    def _slices(self, op, keep_of, scale_of):
        """`{weight path: [(axis, keep, scale)]}`: how each weight of the compact layer is
        cut (`keep`, None: all) and scaled (`scale`, None: not) along each axis."""
        layer = op.layer
        found = call_inputs(op)
        axes = self.internal_axes(layer)

        def internal(name):
            key = internal_key(layer, name)
            return (keep_of(key), scale_of(key)) if name in axes else (None, None)

        heads, key_dims = internal("heads"), internal("key_dims")
        value_dims = internal("value_dims")
        q, k, v = (found["query"], found["key"], found["value"])
        out = keep_of(op.out_keys[0])
        # A mask's scale goes where the masked layer applies it (`InternalAxis.scaled`:
        # heads and value dims on the output projection, key dims on the query
        # projection); the other weights along the axis are only cut.
        h, kd, vd = (heads[0], None), (key_dims[0], None), (value_dims[0], None)
        return {
            "query/kernel": [(0, keep_of(q), scale_of(q)), (1, *h), (2, *key_dims)],
            "query/bias": [(0, *h), (1, *key_dims)],
            "key/kernel": [(0, keep_of(k), scale_of(k)), (1, *h), (2, *kd)],
            "key/bias": [(0, *h), (1, *kd)],
            "value/kernel": [(0, keep_of(v), scale_of(v)), (1, *h), (2, *vd)],
            "value/bias": [(0, *h), (1, *vd)],
            "gate/kernel": [(0, keep_of(q), scale_of(q)), (1, *h), (2, *vd)],
            "gate/bias": [(0, *h), (1, *vd)],
            "attention_output/kernel": [(0, *heads), (1, *value_dims), (-1, out, None)],
            "attention_output/bias": [(-1, out, None)],
        }

    def param_count(self, layer, op, keep_of):
        total = 0
        for path, steps in self._slices(op, keep_of, lambda key: None).items():
            if any(w.path.endswith("/" + path) for w in layer.weights):
                shape = list(layer.weights[find_weight(layer, path)].shape)
                for axis, keep, _ in steps:
                    if keep is not None:
                        shape[axis] = len(keep)
                total += int(np.prod(shape))
        return total

    def compact(self, op, keep_of, scale_of=None):
        layer = op.layer
        scale_of = scale_of or (lambda key: None)
        slices = self._slices(op, keep_of, scale_of)
        q = call_inputs(op)["query"]
        out = keep_of(op.out_keys[0])
        sizes = {}
        for name in ("heads", "key_dims", "value_dims"):
            if name in self.internal_axes(layer):
                keep = keep_of(internal_key(layer, name))
                sizes[name] = None if keep is None else int(len(keep))
        kd_factor = 1.0
        if sizes.get("key_dims") is not None:
            kd_factor = math.sqrt(sizes["key_dims"] / layer.key_dim)
        values = sliced_weights(layer, slices)
        for path in values:
            if path.startswith("query/"):
                values[path] = values[path] * np.asarray(kd_factor, values[path].dtype)
        config = layer.get_config()
        config.pop("build_config", None)
        names = {"heads": "num_heads", "key_dims": "key_dim", "value_dims": "value_dim"}
        for axis, size in sizes.items():
            if size is not None:
                config[names[axis]] = size
        if out is not None:
            config["output_shape"] = (int(len(out)),)
        elif keep_of(q) is not None and not config["output_shape"]:
            config["output_shape"] = (int(op.out_shapes[0][-1]),)
        new = type(layer).from_config(config)

        def attention(*args, **kwargs):
            outputs = new(*args, **kwargs)
            for var in new.weights:
                path = next(p for p in values if var.path.endswith("/" + p))
                var.assign(values[path])
            return outputs

        return attention
