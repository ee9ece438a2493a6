"""The rule of `keras.layers.GroupQueryAttention`: heads pruned by key/value head.

A GroupQueryAttention has `num_key_value_heads` key/value heads, each shared by
`num_query_heads // num_key_value_heads` query heads (`ops.repeat` along the head axis:
key/value head j serves query heads j*G .. j*G + G-1). Its unit of pruning is a key/value
head with its G query heads: an internal axis "kv_heads" (a group of its own). The masked
layer zeroes a removed head's value projection (kernel and bias): the attention output of
its G query heads is then zero, exactly what the compact layer, without them, adds to the
output projection. The compact layer has fewer `num_key_value_heads` and `num_query_heads`
(the same G); its query, key, value, gate and output projections are sliced along their
head axes.

Its output width is its query's (`feature_dim`; no `output_shape` option) and its key and
value must be as wide as its query, so its inputs and its output are kept whole (pinned).
"""

import numpy as np
from keras import layers

from tfcompress.graph.attention_rules import Attention, call_inputs, sliced_weights
from tfcompress.graph.rule_base import InternalAxis, find_weight, internal_key
from tfcompress.graph.rules import register_rule

AXIS = "kv_heads"


def _group(layer):
    return layer.num_query_heads // layer.num_key_value_heads


def query_heads(layer, kv_keep):
    """The query heads of the kept key/value heads `kv_keep` (None: all)."""
    if kv_keep is None:
        return None
    g = _group(layer)
    return (np.asarray(kv_keep)[:, None] * g + np.arange(g)).reshape(-1)


class GroupedQueryAttention(Attention):
    """GroupQueryAttention: key/value heads (with their query heads) as an internal axis;
    the inputs and the output pinned (their widths are tied)."""

    def __init__(self):
        super().__init__(head_dims=False)

    def couple(self, op, b):
        found = call_inputs(op)
        tensors = [found.get(n) for n in ("query", "value", "key")]
        b.pin(
            *(k for k in tensors if k is not None),
            op.out_keys[0],
            reason="GroupQueryAttention width",
        )
        masks = [k for n, k in found.items() if n.endswith("mask")]
        if masks:
            b.pin(*masks, reason="attention mask")
        if len(op.out_keys) > 1:  # the scores hold every head
            b.pin(*op.out_keys[1:], internal_key(op.layer, AXIS), reason="attention scores")

    def internal_axes(self, layer):
        bias = (("value/bias", 0),) if layer.use_bias else ()
        return {
            AXIS: InternalAxis(
                layer.num_key_value_heads,
                scaled=(("value/kernel", 1),) + bias,
                scored=(("key/kernel", 1), ("value/kernel", 1)),
            )
        }

    def scored_kernels(self, layer, internal=None):
        """Along "kv_heads": the key and value kernels' heads, and the query (and gate)
        and output kernels' heads summed per key/value head (reshaped to group them)."""
        if internal is None:
            yield from super().scored_kernels(layer, None)
            return
        yield from super().scored_kernels(layer, internal)
        kv = layer.num_key_value_heads
        for path in ("query/kernel", "gate/kernel"):
            if any(w.path.endswith("/" + path) for w in layer.weights):
                value = np.asarray(layer.weights[find_weight(layer, path)])
                yield value.reshape(value.shape[0], kv, -1), 1
        value = np.asarray(layer.weights[find_weight(layer, "attention_output/kernel")])
        yield value.reshape(kv, -1, value.shape[-1]), 0

    def _slices(self, op, keep_of, scale_of):
        layer = op.layer
        kv_key = internal_key(layer, AXIS)
        kv, kv_scale = keep_of(kv_key), scale_of(kv_key)
        heads = query_heads(layer, kv)
        return {
            "query/kernel": [(1, heads, None)],
            "query/bias": [(0, heads, None)],
            "key/kernel": [(1, kv, None)],
            "key/bias": [(0, kv, None)],
            "value/kernel": [(1, kv, kv_scale)],
            "value/bias": [(0, kv, kv_scale)],
            "gate/kernel": [(1, heads, None)],
            "gate/bias": [(0, heads, None)],
            "attention_output/kernel": [(0, heads, None)],
            "attention_output/bias": [],
        }

    def compact(self, op, keep_of, scale_of=None):
        layer = op.layer
        scale_of = scale_of or (lambda key: None)
        values = sliced_weights(layer, self._slices(op, keep_of, scale_of))
        config = layer.get_config()
        config.pop("build_config", None)
        kv = keep_of(internal_key(layer, AXIS))
        if kv is not None:
            config["num_key_value_heads"] = int(len(kv))
            config["num_query_heads"] = int(len(kv)) * _group(layer)
        new = type(layer).from_config(config)

        def attention(*args, **kwargs):
            outputs = new(*args, **kwargs)
            for var in new.weights:
                var.assign(values[next(p for p in values if var.path.endswith("/" + p))])
            return outputs

        return attention


register_rule(layers.GroupQueryAttention, GroupedQueryAttention())
