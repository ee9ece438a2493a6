"""The hidden width of a transformer (its residual stream) is one prunable group across all
blocks: Embedding and position embeddings make it, LayerNormalization computes its
statistics over the kept channels in the masked model (`MaskedLayerNormalization`), as the
narrower compact layer does."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input
from tests.test_transformers import (
    DIM,
    MAXLEN,
    VOCAB,
    _position_rule,
    _tokens,
    text_classifier,
    vit,
)
from tfcompress.layers import ChannelMask, MaskedLayerNormalization

_position_rule = _position_rule  # the test position embedding's rule, for every test here


def _hidden_group(graph, layer_name):
    """The group holding the output channels of `layer_name` (on the residual stream)."""
    (op,) = [op for op in graph.traced.ops if op.layer.name == layer_name][:1]
    (index,) = set(graph.group_channels(op.out_keys[0])[0].tolist())
    return graph.groups[index]


def _prune_and_strip(model, x, **wrap_options):
    """wrap <= 1e-6, prune 30 % + strip <= 1e-4, fewer parameters; returns the plan and
    the compact model."""
    reference = outputs(model, x)
    masked = tfc.wrap(model, **wrap_options)
    assert max_rel_error(reference, outputs(masked, x)) <= 1e-6
    plan = tfc.prune(masked, ratio=0.3)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.count_params() < model.count_params()
    return plan, compact


def _norm_widths(model):
    return [
        int(layer.gamma.shape[0])
        for layer in model.layers
        if isinstance(layer, keras.layers.LayerNormalization)
    ]


def test_text_classifier_hidden_width_is_one_group_and_prunes_with_parity():
    model = text_classifier(blocks=2)
    hidden = _hidden_group(tfc.DependencyGraph(model), "tokens_embedding")
    assert hidden.prunable and hidden.size == DIM
    assert {m.layer.name for m in hidden.layers("out")} == {
        "tokens_embedding",
        "block0_mha",
        "block0_ffn2",
        "block1_mha",
        "block1_ffn2",
    }
    norms = {m.layer.name for m in hidden.layers("in")} & {
        layer.name for layer in model.layers if isinstance(layer, keras.layers.LayerNormalization)
    }
    assert len(norms) == 4  # every block's two LayerNormalizations read it
    plan, compact = _prune_and_strip(model, _tokens())
    width = len(plan.keep["tokens_embedding_mask"])
    assert width < DIM
    assert compact.get_layer("tokens_embedding").output_dim == width
    assert compact.get_layer("positions").embeddings.shape == (MAXLEN, width)
    assert _norm_widths(compact) == [width] * 4
    for name in ("block0_mha", "block1_mha"):
        mha = compact.get_layer(name)
        assert mha.query_dense.kernel.shape[0] == mha.value_dense.kernel.shape[0] == width
        assert mha.get_config()["output_shape"] == (width,)
    assert compact.get_layer("block1_ffn2").units == width
    assert compact.get_layer("logits").kernel.shape == (width, 2)


def test_vit_hidden_width_is_one_group_and_prunes_with_parity():
    model = vit(blocks=1)
    hidden = _hidden_group(tfc.DependencyGraph(model), "patches")
    assert hidden.prunable and hidden.size == DIM
    plan, compact = _prune_and_strip(model, sample_input(model, batch=2))
    width = len(plan.keep["patches_mask"])
    assert compact.get_layer("patches").filters == width
    assert _norm_widths(compact) == [width] * 3  # two in the block, and the last one
    assert compact.get_layer("block0_mha").get_config()["output_shape"] == (width,)


def test_soft_scales_on_the_hidden_width_are_undone_before_the_statistics():
    model = text_classifier(blocks=1)
    masked = tfc.wrap(model, method="soft_topk")
    mask = masked.get_layer("tokens_embedding_mask")
    mask.keep.assign(10.0)
    mask.temperature.assign(0.5)  # every channel scaled, none zero
    mask.mask.assign(np.r_[np.ones(12), np.zeros(4)].astype("float32"))
    x = _tokens()
    compact = tfc.strip(masked)
    assert compact.get_layer("tokens_embedding").output_dim == 12
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")  # deprecated, still served
def test_rms_scaling_layer_norm_prunes_with_parity():
    x = keras.Input((MAXLEN, 12))
    h = keras.layers.Dense(DIM, name="up")(x)
    h = keras.layers.LayerNormalization(rms_scaling=True, name="rms")(h)
    h = keras.layers.Add()([h, keras.layers.Dense(DIM, name="mix")(h)])
    h = keras.layers.LayerNormalization(center=False, name="norm")(h)
    model = keras.Model(x, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h)))
    plan, compact = _prune_and_strip(model, sample_input(model))
    assert compact.get_layer("rms").gamma.shape == (len(plan.keep["up_mask"]),)


def test_keras_hub_position_embedding_follows_the_hidden_width():
    hub = pytest.importorskip("keras_hub")
    tokens = keras.Input((MAXLEN,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, DIM, name="embed")(tokens)
    x = keras.layers.Add()([x, hub.layers.PositionEmbedding(MAXLEN, name="positions")(x)])
    x = keras.layers.LayerNormalization(name="norm")(x)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = keras.layers.LayerNormalization(name="norm2")(keras.layers.Add()([x, h]))
    model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x)))
    plan, compact = _prune_and_strip(model, _tokens())
    width = len(plan.keep["embed_mask"])
    assert compact.get_layer("positions").position_embeddings.shape == (MAXLEN, width)


def test_keras_hub_bert_in_a_classifier_prunes_its_hidden_width():
    """A BertBackbone returns its hidden width (pinned there); under a classifier head
    that reads only the pooled output, the width is pruned through every block."""
    hub = pytest.importorskip("keras_hub")
    bert = hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=DIM,
        intermediate_dim=24, max_sequence_length=MAXLEN, name="bert",
    )  # fmt: skip
    names = ("token_ids", "segment_ids", "padding_mask")
    inputs = {k: keras.Input((MAXLEN,), dtype="int32", name=k) for k in names}
    model = keras.Model(inputs, keras.layers.Dense(2)(bert(inputs)["pooled_output"]))
    padding = np.ones((4, MAXLEN), "int32")
    padding[1:, 5:] = 0
    x = {"token_ids": _tokens(), "segment_ids": np.zeros_like(padding), "padding_mask": padding}
    plan, compact = _prune_and_strip(model, x)
    width = len(plan.keep["token_embedding_mask"])
    assert width < DIM
    assert compact.get_layer("token_embedding").output_dim == width
    assert _norm_widths(compact) == [width] * 5  # the embeddings' and two per block


def test_padding_masks_pass_the_mask_layers():
    """An Embedding with mask_zero=True: its Keras mask (which tokens are padding) reaches
    the attention and the pooling through the masks and masked layers wrap inserts."""
    tokens = keras.Input((MAXLEN,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, DIM, mask_zero=True, name="embed")(tokens)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = keras.layers.LayerNormalization(name="norm")(keras.layers.Add()([x, h]))
    x = keras.layers.Add()([x, keras.layers.Dense(DIM, name="ffn")(x)])
    pooled = keras.layers.GlobalAveragePooling1D()(x)  # called with the mask: pinned
    model = keras.Model(tokens, keras.layers.Dense(2)(pooled))
    padded = _tokens()
    padded[:, 5:] = 0
    plan, compact = _prune_and_strip(model, padded)
    assert compact.get_layer("embed").output_dim == len(plan.keep["embed_mask"]) < DIM
    unpadded = padded.copy()
    unpadded[:, 5:] = 1
    assert max_rel_error(outputs(compact, padded), outputs(compact, unpadded)) > 1e-3


@keras.saving.register_keras_serializable(package="tests")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """keras.io's (text classification with Transformer), with a get_config: its position
    Embedding reads `keras.ops.arange` constants, so the graph cannot see through it."""

    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.maxlen, self.vocab_size, self.embed_dim = maxlen, vocab_size, embed_dim
        self.token_emb = keras.layers.Embedding(vocab_size, embed_dim)
        self.pos_emb = keras.layers.Embedding(maxlen, embed_dim)

    def call(self, x):
        positions = self.pos_emb(keras.ops.arange(0, keras.ops.shape(x)[-1], 1))
        return self.token_emb(x) + positions

    def get_config(self):
        sizes = {"maxlen": self.maxlen, "vocab_size": self.vocab_size}
        return {**super().get_config(), **sizes, "embed_dim": self.embed_dim}


def test_keras_io_token_and_position_embedding_takes_the_embedding_rule():
    tokens = keras.Input((MAXLEN,), dtype="int32")
    x = TokenAndPositionEmbedding(MAXLEN, VOCAB, DIM, name="embed")(tokens)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = keras.layers.LayerNormalization(name="norm")(keras.layers.Add()([x, h]))
    model = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x)))
    with pytest.raises(
        tfc.graph.UnknownLayerError,
        match=r"Layer 'embed' .*not on the path.*If it embeds its input ids .*"
        r"rules\.Embedding\(width_key=<its config key",
    ):
        tfc.DependencyGraph(model)  # not seen through, on a prunable hidden width
    rule = tfc.graph.rules.Embedding(width_key="embed_dim")
    with tfc.graph.registered_rule(TokenAndPositionEmbedding, rule):
        plan, compact = _prune_and_strip(model, _tokens())
    width = len(plan.keep["embed_mask"])
    embed = compact.get_layer("embed")
    assert embed.embed_dim == width
    assert [tuple(w.shape) for w in embed.weights] == [(VOCAB, width), (MAXLEN, width)]


def test_layer_norm_over_other_axes_is_pinned_and_refused_by_the_masked_layer():
    x = keras.Input((MAXLEN, DIM))
    h = keras.layers.Dense(DIM, name="up")(x)
    h = keras.layers.LayerNormalization(axis=[1, 2], name="norm")(h)
    model = keras.Model(x, keras.layers.Dense(2, name="head")(h))
    graph = tfc.DependencyGraph(model)
    assert _hidden_group(graph, "up").pinned_by == "LayerNormalization"
    with pytest.raises(ValueError, match=r"layer 'norm' normalizes over axis \[1, 2\]"):
        MaskedLayerNormalization(model.get_layer("norm"))
    with pytest.raises(
        ValueError, match=r"layer 'first' normalizes over axis 1;.*axis=1 on a 3-dim"
    ):
        MaskedLayerNormalization(keras.layers.LayerNormalization(axis=1, name="first"))(
            keras.Input((MAXLEN, DIM))
        )
    with pytest.raises(ValueError, match="wraps a keras.layers.LayerNormalization.*Dense"):
        MaskedLayerNormalization(keras.layers.Dense(3))


def test_masked_layer_norm_statistics_config_and_saving(tmp_path):
    x = keras.Input((3, 6))
    mask = ChannelMask(6, name="mask")
    norm = keras.layers.LayerNormalization(name="norm")
    wrapped = MaskedLayerNormalization(norm, name="norm")
    model = keras.Model(x, wrapped(mask(x)))
    mask.mask.assign([1, 0, 1, 1, 0, 1])
    norm.gamma.assign(np.arange(1, 7, dtype="float32"))
    norm.beta.assign(np.full(6, 0.5, "float32"))
    data = np.random.default_rng(0).normal(size=(2, 3, 6)).astype("float32")
    kept = [0, 2, 3, 5]
    narrow = keras.layers.LayerNormalization()
    narrow.build((None, 3, 4))
    narrow.set_weights([np.asarray(norm.gamma)[kept], np.asarray(norm.beta)[kept]])
    y = np.asarray(model(data))
    np.testing.assert_allclose(y[..., kept], narrow(data[..., kept]), atol=1e-6)
    np.testing.assert_array_equal(y[..., [1, 4]], 0.0)
    config = wrapped.get_config()
    clone = MaskedLayerNormalization.from_config(config)
    assert clone.get_config() == config
    path = str(tmp_path / "m.keras")
    model.save(path)
    np.testing.assert_array_equal(keras.saving.load_model(path)(data), y)


def test_a_reverse_embedding_pins_the_hidden_width():
    tokens = keras.Input((MAXLEN,), dtype="int32")
    embed = keras.layers.ReversibleEmbedding(VOCAB, DIM, name="embed")
    h = keras.layers.Dense(DIM, name="mix")(embed(tokens))
    model = keras.Model(tokens, embed(h, reverse=True))
    graph = tfc.DependencyGraph(model)
    assert not _hidden_group(graph, "mix").prunable
    assert graph.prunable_groups == []


def test_a_shared_layer_norm_behind_different_masks_is_refused():
    wrapped = MaskedLayerNormalization(keras.layers.LayerNormalization(), name="shared")
    a, b = keras.Input((3, 6)), keras.Input((3, 6))
    wrapped(ChannelMask(6, name="mask_a")(a))
    with pytest.raises(ValueError, match=r"'shared' is called on tensors masked differently"):
        wrapped(ChannelMask(6, name="mask_b")(b))
