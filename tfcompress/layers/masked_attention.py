"""A MultiHeadAttention whose internal axes (heads, head dimensions) are masked through its
own weights."""

import keras

from tfcompress.layers._wrapper import EditedWeights
from tfcompress.layers.masked_kernel import _Chain, folded_masks


@keras.saving.register_keras_serializable(package="tfcompress")
class MaskedAttention(EditedWeights):
    """Runs a `keras.layers.MultiHeadAttention` with the weights along its internal axes
    scaled by the channel masks of those axes: a head whose slice of the output projection
    is zero is a head removed (its query, key and value feed nothing else).

    The masks are the `ChannelMask`s with an `internal_axis` called with `folded=True` on
    the query (they pass it through), found when the wrapper is called on a symbolic
    tensor, as `MaskedKernel` finds its masks. The wrapper holds no weights of its own.

    Args:
        layer: the MultiHeadAttention layer.
        axes: `{axis name: [[weight path, axis], ...]}`, the weights each internal axis's
            mask scales (`tfcompress.graph.rule_base.InternalAxis.scaled`).
    """

    def __init__(self, layer, axes, **kwargs):
        super().__init__(layer, **kwargs)
        self.axes = {str(n): [[str(p), int(a)] for p, a in spec] for n, spec in axes.items()}
        self._chain = _Chain()

    def __call__(self, query, *args, **kwargs):
        if isinstance(query, keras.KerasTensor):
            self._chain = _Chain(
                (mask, site)
                for mask, site in folded_masks(query)
                if getattr(mask, "internal_axis", None) in self.axes
            )
        return super().__call__(query, *args, **kwargs)

    def build(self, query_shape, value_shape, key_shape=None):
        if not self.layer.built:
            self.layer.build(query_shape, value_shape, key_shape)
        paths = [v.path for v in self.layer.weights]
        scaled = {}  # variable path -> [(axis name, axis)]
        for name, spec in self.axes.items():
            for path, axis in spec:
                found = [p for p in paths if p.endswith("/" + path)]
                if not found:
                    raise ValueError(
                        f"MaskedAttention: layer '{self.layer.name}' has no weight "
                        f"{path!r} (axis {name!r}). Its weights are {paths}."
                    )
                scaled.setdefault(found[0], []).append((name, axis))
        # plain data, set past attribute tracking (as the chain is)
        object.__setattr__(self, "_scaled", scaled)
        self.built = True

    @property
    def masks(self):
        """The `(ChannelMask, site)` pairs scaling the weights."""
        return self._chain.links

    def edits(self, variable):
        return variable.path in self._scaled

    def edited_value(self, variable):
        value = variable.value
        for mask, site in self._chain.links:
            for name, axis in self._scaled[variable.path]:
                if name == mask.internal_axis:
                    value = mask.scale_kernel(value, axis, site)
        return value

    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        # only the arguments given: a subclass may take fewer (keras_hub's
        # CachedMultiHeadAttention has no query_mask, value_mask, key_mask)
        given = {
            "key": key,
            "query_mask": query_mask,
            "value_mask": value_mask,
            "key_mask": key_mask,
            "attention_mask": attention_mask,
            "training": training,
        }
        kwargs = {k: v for k, v in given.items() if v is not None}
        flags = {"return_attention_scores": return_attention_scores}
        flags["use_causal_mask"] = use_causal_mask
        kwargs.update({k: v for k, v in flags.items() if v})
        outputs, non_trainable = self.layer.stateless_call(
            *self.variable_values(), query, value, **kwargs
        )
        for var, new in zip(self.layer.non_trainable_variables, non_trainable):
            if not self.edits(var):  # a frozen layer's weights stay as they are
                var.assign(new)  # dropout's seed state advances as the layer's own call does
        return outputs

    def compute_output_spec(self, *args, **kwargs):
        return self.layer.compute_output_spec(*args, **kwargs)

    def get_config(self):
        return {**super().get_config(), "axes": {n: list(s) for n, s in self.axes.items()}}
