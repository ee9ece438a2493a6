"""Transformers: attention heads (and head dimensions) and FFN units are pruned with parity.

Models: a keras.io-style text classifier (token Embedding plus a learned position
embedding, MultiHeadAttention, residual Add, LayerNormalization, Dense FFN,
GlobalAveragePooling1D, Dense head) and a small ViT (Conv2D patches, MHA blocks)."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input
from tfcompress.graph import rules
from tfcompress.graph.rule_base import internal_key

VOCAB, MAXLEN, DIM = 50, 8, 16


@keras.saving.register_keras_serializable(package="tests")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding per position (keras.io's TokenAndPositionEmbedding,
    without the token part): output channel c is input channel c plus a weight."""

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=tuple(input_shape[1:]), initializer="random_normal", name="embeddings"
        )

    def call(self, x):
        return x + self.embeddings


@pytest.fixture(autouse=True)
def _position_rule():
    with tfc.graph.registered_rule(
        PositionEmbedding, rules.Channelwise({"embeddings": (None, -1)})
    ):
        yield


def _block(x, heads, key_dim, ff, name):
    a = keras.layers.MultiHeadAttention(heads, key_dim, name=f"{name}_mha")(x, x)
    a = keras.layers.Dropout(0.1)(a)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(keras.layers.Add()([x, a]))
    f = keras.layers.Dense(ff, activation="relu", name=f"{name}_ffn1")(x)
    f = keras.layers.Dense(x.shape[-1], name=f"{name}_ffn2")(f)
    return keras.layers.LayerNormalization(epsilon=1e-6)(keras.layers.Add()([x, f]))


def text_classifier(blocks=2):
    tokens = keras.Input((MAXLEN,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, DIM, name="tokens_embedding")(tokens)
    x = PositionEmbedding(name="positions")(x)
    for i in range(blocks):
        x = _block(x, heads=4, key_dim=4, ff=24, name=f"block{i}")
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dropout(0.1)(x)
    return keras.Model(tokens, keras.layers.Dense(2, name="logits")(x), name="text")


def vit(blocks=2):
    image = keras.Input((16, 16, 1), name="image")
    x = keras.layers.Conv2D(DIM, 4, strides=4, name="patches")(image)
    x = keras.layers.Reshape((16, DIM))(x)
    for i in range(blocks):
        h = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        h = keras.layers.MultiHeadAttention(4, 4, name=f"block{i}_mha")(h, h)
        x = keras.layers.Add()([x, h])
        h = keras.layers.LayerNormalization(epsilon=1e-6)(x)
        h = keras.layers.Dense(32, activation="gelu", name=f"block{i}_ffn1")(h)
        x = keras.layers.Add()([x, keras.layers.Dense(DIM, name=f"block{i}_ffn2")(h)])
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.LayerNormalization()(x))
    return keras.Model(image, keras.layers.Dense(10, name="logits")(x), name="vit")


def _tokens(batch=4, seed=0):
    return np.random.default_rng(seed).integers(0, VOCAB, (batch, MAXLEN)).astype("int32")


def _check_parity(model, x, ratio=0.3, **prune_options):
    """wrap <= 1e-6, prune + strip <= 1e-4, fewer parameters; returns (masked, compact)."""
    reference = outputs(model, x)
    masked = tfc.wrap(model)
    assert max_rel_error(reference, outputs(masked, x)) <= 1e-6
    tfc.prune(masked, ratio=ratio, **prune_options)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.count_params() < model.count_params()
    return masked, compact


def _heads(model):
    return {
        layer.name: layer.num_heads
        for layer in model.layers
        if isinstance(layer, keras.layers.MultiHeadAttention)
    }


@pytest.mark.slow
def test_text_classifier_heads_and_ffn_parity():
    model = text_classifier()
    masked, compact = _check_parity(model, _tokens(), ratio=0.5)
    assert _heads(compact) == {"block0_mha": 2, "block1_mha": 2}
    assert compact.get_layer("block0_ffn1").units == 12
    # plain Keras, but for the user's own position layer
    modules = {type(layer).__module__.split(".")[0] for layer in compact.layers}
    assert modules == {"keras", "tests"}


def test_graph_heads_are_groups_and_the_hidden_width_is_coupled():
    model = text_classifier(blocks=1)
    graph = tfc.DependencyGraph(model)
    mha = model.get_layer("block0_mha")
    heads = graph.groups[graph.group_channels(internal_key(mha, "heads"))[0][0]]
    assert heads.prunable and heads.size == 4
    assert [(m.layer.name, m.role, m.internal) for m in heads.members] == [
        ("block0_mha", "out", "heads")
    ]
    # The residual stream: embedding, position embedding, attention and FFN outputs, the
    # Adds and the LayerNormalizations are one group, the hidden width (prunable: see
    # tests/test_hidden_width.py)
    (add,) = [op for op in graph.traced.ops if op.layer.name.startswith("add")][:1]
    stream = {int(g) for k in (*add.in_keys, add.out_keys[0]) for g in graph.group_channels(k)[0]}
    assert len(stream) == 1
    hidden = graph.groups[stream.pop()]
    assert hidden.prunable and hidden.size == DIM
    makers = {m.layer.name for m in hidden.layers("out")}
    assert makers == {"tokens_embedding", "block0_mha", "block0_ffn2"}
    # an excluded attention layer keeps its heads
    graph = tfc.DependencyGraph(model, exclude=["block0_mha"])
    heads = graph.groups[graph.group_channels(internal_key(mha, "heads"))[0][0]]
    assert heads.pinned_by == "excluded layer block0_mha"


def test_head_l1_is_the_sum_over_query_key_value_and_output():
    model = text_classifier(blocks=1)
    masked = tfc.wrap(model)
    graph, sites, scores = tfc.pruners.score_groups(masked)
    (site,) = [s for s in sites if s.layer.name == "block0_mha_heads_mask"]
    mha = model.get_layer("block0_mha")
    expected = sum(
        np.abs(np.asarray(d.kernel)).sum(axis=(0, 2))
        for d in (mha.query_dense, mha.key_dense, mha.value_dense)
    ) + np.abs(np.asarray(mha.output_dense.kernel)).sum(axis=(1, 2))
    np.testing.assert_allclose(scores[site.group], expected, rtol=1e-6)


def test_min_heads_and_global_ranking():
    model = text_classifier(blocks=1)
    masked = tfc.wrap(model)
    plan = tfc.prune(masked, ratio=0.9, min_channels=3)
    assert len(plan.keep["block0_mha_heads_mask"]) == 3
    tfc.prune(masked, ratio=0.3, scope="global", normalize="l2")  # afresh: keep_pruned=False
    compact = tfc.strip(masked)
    x = _tokens()
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4


def test_vit_heads_and_head_dims_parity():
    model = vit()
    head_dims = rules.Attention(head_dims=True)
    with tfc.graph.registered_rule(keras.layers.MultiHeadAttention, head_dims):
        masked, compact = _check_parity(model, sample_input(model, batch=2), ratio=0.5)
    for name in ("block0_mha", "block1_mha"):
        layer = compact.get_layer(name)
        assert (layer.num_heads, layer.key_dim, layer.value_dim) == (2, 2, 2)
    assert compact.get_layer("patches").filters == DIM // 2  # the hidden width, halved
    # MACs of an attention layer: projections (16 tokens, hidden width 8), scores and
    # weighted values
    stats = {s.name: s.macs for s in tfc.metrics.layer_stats(compact)}
    assert stats["block0_mha"] == 16 * 8 * 2 * 2 * 4 + 16 * 16 * 2 * (2 + 2)
    modules = {type(layer).__module__.split(".")[0] for layer in compact.layers}
    assert modules == {"keras"}


def test_taylor_scores_heads_from_weight_gradients():
    model = vit(blocks=1)
    masked = tfc.wrap(model, method="taylor")
    masked.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = sample_input(model, batch=8)
    y = np.arange(8) % 10
    plan = tfc.prune(masked, ratio=0.5, data=[(x, y)])
    assert len(plan.keep["block0_mha_heads_mask"]) == 2
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert _heads(compact) == {"block0_mha": 2}


def test_soft_head_scales_fold_into_the_output_projection():
    model = text_classifier(blocks=1)
    masked = tfc.wrap(model, method="soft_topk")
    heads = masked.get_layer("block0_mha_heads_mask")
    heads.keep.assign(2.0)
    heads.temperature.assign(0.5)  # a soft selection: every head scaled, none zero
    x = _tokens()
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert max_rel_error(outputs(model, x), outputs(masked, x)) > 1e-3


def test_taylor_per_example_aggregation_is_refused_for_heads():
    with pytest.raises(ValueError, match="internal axis 'heads'.*'sum_then_abs' or 'batch_abs'"):
        tfc.wrap(vit(blocks=1), method="taylor", aggregation="example_abs")


def test_cross_attention_with_mask_and_scores():
    q_in = keras.Input((4, 8), name="q")
    kv_in = keras.Input((6, 12), name="kv")
    mask = keras.Input((4, 6), dtype="bool", name="mask")
    kv = keras.layers.Dense(12, activation="relu", name="kv_proj")(kv_in)
    out, scores = keras.layers.MultiHeadAttention(3, 4, value_dim=5, name="mha")(
        q_in, kv, attention_mask=mask, return_attention_scores=True
    )
    pooled = keras.layers.GlobalAveragePooling1D()(out)
    model = keras.Model([q_in, kv_in, mask], [keras.layers.Dense(2, name="logits")(pooled), scores])
    rng = np.random.default_rng(0)
    x = [
        rng.normal(size=(2, 4, 8)).astype("float32"),
        rng.normal(size=(2, 6, 12)).astype("float32"),
        rng.uniform(size=(2, 4, 6)) > 0.3,
    ]
    reference = outputs(model, x)
    masked = tfc.wrap(model)
    assert max_rel_error(reference, outputs(masked, x)) <= 1e-6
    graph = tfc.DependencyGraph(model)
    heads = graph.group_channels(internal_key(model.get_layer("mha"), "heads"))[0][0]
    assert graph.groups[heads].pinned_by == "attention scores"  # they hold every head
    plan = tfc.prune(masked, ratio=0.4)
    # the value input's producer and the attention output (read by the head) are cut
    assert {k: len(v) for k, v in plan.keep.items()} == {"kv_proj_mask": 8, "mha_mask": 5}
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.get_layer("mha").get_config()["output_shape"] == (5,)


def test_einsum_dense_as_dense_and_pinned_otherwise():
    x = keras.Input((5, 8))
    h = keras.layers.EinsumDense(
        "abc,cd->abd", output_shape=(5, 12), bias_axes="d", activation="relu", name="up"
    )(x)
    h = keras.layers.EinsumDense("abd,de->abe", output_shape=(5, 6), name="down")(h)
    mixed = keras.layers.EinsumDense("abc,bd->adc", output_shape=(3, 6), name="seq_mix")(h)
    model = keras.Model(x, keras.layers.Flatten()(mixed))
    graph = tfc.DependencyGraph(model)
    assert [g.size for g in graph.prunable_groups] == [12]
    masked, compact = _check_parity(model, sample_input(model), ratio=0.5)
    assert compact.get_layer("up").kernel.shape == (8, 6)


def test_masked_transformer_saves_and_loads(tmp_path):
    model = text_classifier(blocks=1)
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    loaded = keras.saving.load_model(path)
    x = _tokens()
    assert max_rel_error(outputs(masked, x), outputs(loaded, x)) == 0.0
    assert tfc.pruners.plan_from_masks(loaded).keep == tfc.pruners.plan_from_masks(masked).keep
    # and to a SavedModel (MaskedAttention's and MaskedLayerNormalization's state is plain)
    exported = tfc.export.saved_model(masked, str(tmp_path / "sm"))
    (served,) = tfc.export.serve(exported, {"tokens": x})
    assert max_rel_error(outputs(masked, x), [served]) <= 1e-6
    compact = tfc.strip(loaded)
    assert _heads(compact) == {"block0_mha": 2}
    # the parameter budget (ratio_for_compression) counts what strip builds
    graph = tfc.methods.graph_of(loaded)
    keep = tfc.surgery.kept_components(graph)
    assert tfc.pruners.compact_params(graph, keep) == compact.count_params()


@pytest.mark.slow
def test_compact_vit_saved_model_serves_the_same_output(tmp_path):
    model = vit(blocks=1)
    masked, compact = _check_parity(model, sample_input(model), ratio=0.3)
    x = sample_input(model)
    path = tfc.export.saved_model(compact, str(tmp_path / "sm"))
    (served,) = tfc.export.serve(path, {"image": x})
    assert max_rel_error(outputs(compact, x), [served]) <= 1e-5


def test_untraceable_layer_is_refused_by_name():
    class ScaledBlock(keras.layers.Layer):  # a weight of its own: cannot be seen through
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.att = keras.layers.MultiHeadAttention(2, 4)

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(DIM,), initializer="ones", name="scale")

        def call(self, x):
            return x + self.att(x, x) * self.scale

    x = keras.Input((MAXLEN, DIM))  # a Dense's units feed it: they could be pruned
    model = keras.Model(x, ScaledBlock(name="block")(keras.layers.Dense(DIM)(x)))
    with pytest.raises(
        tfc.graph.UnknownLayerError,
        match=r"Layer 'block' of class .*ScaledBlock has no channel rule.*weights of its "
        r"own.*exclude=\['block'\]",
    ):
        tfc.wrap(model)


@keras.saving.register_keras_serializable(package="tests")
class CausalBlock(keras.layers.Layer):
    """A decoder block of one's own: self-attention under a causal mask built from the
    sequence's length (`ops.shape(x)[1]`, unknown while the block is traced into its
    parts), then a residual FFN, as keras_hub's TransformerDecoder does."""

    def __init__(self, heads=4, key_dim=4, ff=24, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.key_dim, self.ff = heads, key_dim, ff
        self.attention = keras.layers.MultiHeadAttention(heads, key_dim, name="attention")
        self.ffn1 = keras.layers.Dense(ff, activation="relu", name="ffn1")

    def build(self, shape):
        self.ffn2 = keras.layers.Dense(shape[-1], name="ffn2")

    def call(self, x):
        batch, length = keras.ops.shape(x)[0], keras.ops.shape(x)[1]
        i = keras.ops.arange(length)
        causal = keras.ops.expand_dims(i, 1) >= keras.ops.expand_dims(i, 0)
        mask = keras.ops.broadcast_to(keras.ops.expand_dims(causal, 0), (batch, length, length))
        x = x + self.attention(x, x, attention_mask=mask)
        return x + self.ffn2(self.ffn1(x))

    def get_config(self):
        config = {"heads": self.heads, "key_dim": self.key_dim, "ff": self.ff}
        return {**super().get_config(), **config}


def test_a_causal_mask_from_the_sequence_length_is_traced(tmp_path):
    """The mask's sizes are `SizeOf` nodes of the traced block (`graph.dynamic_sizes`): the
    block is seen through, heads, FFN units and the hidden width (read through a pooled
    head) are pruned, and the compact model runs at any sequence length."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, DIM, name="tokens_embedding")(tokens)
    x = keras.layers.GlobalAveragePooling1D()(CausalBlock(name="block")(x))
    model = keras.Model(tokens, keras.layers.Dense(2, name="logits")(x))
    masked, compact = _check_parity(model, _tokens(), ratio=0.5)
    assert _heads(compact) == {"attention": 2}
    assert compact.get_layer("tokens_embedding").output_dim < DIM
    short = _tokens()[:, :5]
    assert max_rel_error(outputs(model, short), outputs(tfc.wrap(model), short)) <= 1e-6
    assert max_rel_error(outputs(masked, short), outputs(compact, short)) <= 1e-4
    (served,) = tfc.export.serve(tfc.export.saved_model(compact, str(tmp_path / "sm")), short)
    assert max_rel_error(outputs(compact, short), [served]) <= 1e-4
    # SizeOf, DynamicArange and DynamicBroadcastTo round-trip their configs
    loaded = keras.saving.load_model(tfc.export.keras_file(compact, str(tmp_path / "c.keras")))
    assert max_rel_error(outputs(compact, short), outputs(loaded, short)) <= 1e-6


def test_a_reshape_with_two_sizes_unknown_when_traced_is_refused_by_name():
    """Batch and length both unknown in one reshape: no rule reads sizes that are tensors of
    the graph, so the block stays opaque and is refused (it fed a prunable Dense)."""

    class SplitHeads(keras.layers.Layer):
        def call(self, x):
            batch, length = keras.ops.shape(x)[0], keras.ops.shape(x)[1]
            position = keras.ops.cast(keras.ops.arange(length), x.dtype)
            x = x + keras.ops.expand_dims(keras.ops.expand_dims(position, 0), -1)
            heads = keras.ops.reshape(x, (batch, length, 2, DIM // 2))
            return keras.ops.reshape(heads, (batch, length, DIM))

    x = keras.Input((None, DIM))
    model = keras.Model(x, SplitHeads(name="split")(keras.layers.Dense(DIM)(x)))
    with pytest.raises(
        tfc.graph.UnknownLayerError,
        match=r"Layer 'split' .*more than one size unknown when traced",
    ):
        tfc.wrap(model)
