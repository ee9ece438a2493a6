"""Rules for a transformer's hidden width: `LayerNormalization`, `Embedding` and position
embeddings.

The residual stream of a transformer is one set of channels across every block (the
residual Adds couple them): the token embedding and the position embedding make them, each
attention output projection and FFN output makes them, each LayerNormalization reads and
re-makes them. With these rules that stream is one prunable group (unless a model input
or output holds it).

- `LayerNorm`: a LayerNormalization over the last axis alone is channelwise (output
  channel c = input channel c; gamma and beta sliced) whose statistics read every channel:
  it consumes its input, so `wrap` puts a mask in front of it and runs it as
  `tfcompress.layers.MaskedLayerNormalization` (mean and variance over the kept channels,
  exactly what the compact, narrower layer computes). Over other or several axes: pinned.
- `Embedding`: its output channels (the embedding dimension) are new channels, as a
  Dense's units (`embeddings` columns sliced, `output_dim` edited); its ids are not
  channels. A `ReversibleEmbedding` called with `reverse=True` (a language-model head),
  a LoRA-enabled or a quantized Embedding pins its tensors.
- `POSITION_EMBEDDING`: a learned weight per position added to (or broadcast like) the
  stream (keras_hub's `PositionEmbedding`): channelwise, its weight's last axis sliced.
"""

import numpy as np

from tfcompress.graph.rule_base import Rule


class LayerNorm(Rule):
    """LayerNormalization: channelwise over the last axis, its statistics computed over
    the kept channels in the masked model (`MaskedLayerNormalization`); pinned over any
    other axis or several axes."""

    inputs, outputs = 1, 1
    weights = {"gamma": (None, 0), "beta": (None, 0)}

    def couple(self, op, b):
        from tfcompress.layers.masked_layer_norm import check_layer_norm

        try:
            check_layer_norm(op.layer, len(op.in_shapes[0]))
        except ValueError:
            b.pin(*op.in_keys, *op.out_keys, reason=type(op.layer).__name__)
            return
        b.identity(op.in_keys[0], op.out_keys[0])
        b.consume(op, op.in_keys[0])  # its statistics read every channel: masked in front

    def masked_layer(self, layer):
        from tfcompress.layers.masked_layer_norm import MaskedLayerNormalization

        return MaskedLayerNormalization(layer, name=layer.name)


class Embedding(Rule):
    """Embedding (and ReversibleEmbedding): the embedding dimension is new channels.

    Args:
        width_key: the config key holding the embedding dimension ("output_dim"). A layer
            of the user's that sums Embeddings of its ids and of positions (keras.io's
            `TokenAndPositionEmbedding`, whose position ids are `keras.ops.arange`
            constants, so the graph cannot see through it) takes this rule with its own
            key: `register_rule(TokenAndPositionEmbedding, Embedding(width_key="embed_dim"))`
            (every weight named "embeddings" is cut along its last axis).
    """

    is_mixing = True
    inputs, outputs = 1, 1
    weights = {"embeddings": (None, 1), "reverse_embeddings": (None, 0)}

    def __init__(self, width_key="output_dim"):
        self.width_key = width_key

    def couple(self, op, b):
        b.pin(*op.in_keys, reason="Embedding ids")  # token ids, not channels
        reason = _fixed_width(op)
        if reason:
            b.pin(*op.out_keys, reason=reason)

    def scored_kernels(self, layer, internal=None):
        for var in layer.weights:
            if var.name == "embeddings":
                yield np.asarray(var), 1


def _fixed_width(op):
    """Why an Embedding call's output width cannot change, or "" when it can."""
    layer = op.layer
    if op.node is not None and op.node.arguments.kwargs.get("reverse", False):
        return "reverse embedding (logits over the vocabulary)"
    if getattr(layer, "lora_enabled", False):
        return f"Embedding '{layer.name}' with LoRA"
    if getattr(layer, "quantization_mode", None):
        return f"quantized Embedding '{layer.name}'"
    return ""


# keras_hub's PositionEmbedding broadcasts a (sequence, hidden) weight to its input's
# shape: its hidden axis follows the input's channels (it is built from the input width).
POSITION_EMBEDDING = "keras_hub.src.layers.modeling.position_embedding.PositionEmbedding"
