"""keras_hub backbones, built from their constructors with tiny configs and random weights
(never presets): wrap alone <= 1e-6, prune 30 % then strip <= 1e-4, fewer parameters, the
same output shapes, and the compact model served from a SavedModel (<= 1e-4).

Their composite blocks (MobileNet's DepthwiseConvBlock/InvertedResidualBlock, EfficientNet's
FusedMBConvBlock/MBConvBlock, keras_hub's TransformerEncoder ...) are seen through
(`tfcompress.graph.decompose`). In the transformers, LayerNormalization, Embedding and the
position embedding have rules (`tfcompress.graph.hidden_rules`), so the hidden width is
prunable like heads and FFN units unless a model output holds it, as a keras_hub
backbone's `sequence_output` does: there the blocks' insides are pruned and the hidden
width is kept. ALBERT's embedding width, before its projection to the hidden width, is
held by no output: its token, position and segment embeddings and their
LayerNormalization narrow together (8 -> 6 channels here). GPT-2's TransformerDecoder builds
its causal mask from the sequence's length (`ops.shape(x)[1]`), unknown while the block is
traced: that length is a `SizeOf` node of the traced block (`tfcompress.graph.dynamic_sizes`),
so the compact GPT-2 runs at any length.

Every compact backbone is also exported as a SavedModel and served (<= 1e-4): CNNs and
transformers, one input or a dict of three (BERT's token_ids, segment_ids, padding_mask), one
output or two, keras_hub layers in the compact model (ALBERT's narrowed PositionEmbedding).
That costs about 0.3-1.2 s of CPU per model since `tfc.export.saved_model` traces the model
once and leaves Keras' object walk out (it was 1-2.5 s, so only three were served before).
The configs and the full sweep, with the families that are refused and why:
benchmarks/keras_hub_families.py.
"""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tests.parity import max_rel_error, prune_with_parity

hub = pytest.importorskip("keras_hub")
from benchmarks.keras_hub_families import FAMILIES, outputs, sample_input  # noqa: E402

# The cheapest of each kind (CNN: plain, residual, depthwise composite blocks with
# squeeze-and-excite, dense concatenation, fused MBConv, separable convolutions,
# cross-stage partial; transformer: BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, and the
# decoder GPT-2); every family runs in the benchmark.
TESTED = (
    "vgg",
    "resnet",
    "mobilenet",
    "densenet",
    "efficientnet",
    "xception",
    "cspnet_dark",
    "bert",
    "roberta",
    "distil_bert",
    "albert",
    "electra",
    "gpt2",
)
# A layer whose width (the last axis of its first weight) pruning narrows: ALBERT's
# position embedding, on the embedding width no output holds.
NARROWED = {"albert": "position_embedding"}


@pytest.mark.parametrize("name", TESTED)
def test_backbone_parity(name, tmp_path):
    model = FAMILIES[name]()
    _, compact, x = prune_with_parity(model, 0.3, sample_input(model), read=outputs)
    assert [o.shape for o in outputs(compact, x)] == [o.shape for o in outputs(model, x)]
    assert compact.count_params() < model.count_params()
    if name in NARROWED:
        width = [m.get_layer(NARROWED[name]).weights[0].shape[-1] for m in (model, compact)]
        assert width[1] < width[0]
    served = tfc.export.serve(tfc.export.saved_model(compact, str(tmp_path / "sm")), x)
    expected = outputs(compact, x)
    assert len(served) == len(expected)
    assert max_rel_error(expected, served) <= 1e-4


def test_a_task_model_prunes_through_its_backbone(tmp_path):
    """A keras_hub task model calls its backbone on `backbone.input` (a nested model on its
    own input, 10e751e). BertTextClassifier reads only the pooled output, so the hidden
    width is prunable through the whole backbone (token embedding 8 -> 6 channels here)."""
    model = FAMILIES["bert_text_classifier"]()
    _, compact, x = prune_with_parity(model, 0.3, sample_input(model), read=outputs)
    expected = outputs(compact, x)
    assert compact.count_params() < model.count_params()
    width = model.backbone.get_layer("token_embedding").weights[0].shape[-1]
    assert compact.get_layer("token_embedding").weights[0].shape[-1] < width
    served = tfc.export.serve(tfc.export.saved_model(compact, str(tmp_path / "sm")), x)
    assert max_rel_error(expected, served) <= 1e-4


class LearnedOffset(keras.layers.Layer):
    """Adds a weight of its own to its input (as a position embedding does): opaque."""

    def build(self, shape):
        self.offset = self.add_weight(shape=tuple(shape[1:]), name="offset")

    def call(self, x):
        return x + self.offset


def test_an_unknown_layer_on_a_prunable_tensor_is_still_refused():
    """A layer with a weight of its own and no rule is refused after a Dense whose units
    could be pruned."""
    x = keras.Input((8, 4))
    h = keras.layers.Dense(8, name="dense")(x)
    h = LearnedOffset(name="offset")(h)
    model = keras.Model(x, keras.layers.Dense(2, name="head")(h))
    with pytest.raises(
        tfc.graph.UnknownLayerError,
        match=r"Layer 'offset' of class .*LearnedOffset has no channel rule.*"
        r"weights of its own.*exclude=\['offset'\]",
    ):
        tfc.graph.DependencyGraph(model)


def test_a_reshape_to_several_unknown_sizes_is_retraced_or_refused():
    """Bloom's attention reshapes to (batch, length, ...), both unknown when traced: the
    parts graph kept them as None, and wrap returned a model whose call failed in Reshape;
    now such parts are not accepted, the dynamic-size retrace takes over, and Bloom prunes
    with parity. MiT's reshape to (None, -1, 1, 8) is refused with that reason (it raised
    a raw TypeError from np.prod over None)."""
    bloom = hub.models.BloomBackbone(vocabulary_size=100, num_layers=1, num_heads=2,
                                     hidden_dim=8, intermediate_dim=16)
    x = {"token_ids": np.ones((2, 8), "int32"), "padding_mask": np.ones((2, 8), "int32")}
    _, compact, _ = prune_with_parity(bloom, 0.4, x, read=outputs)
    assert compact.count_params() < bloom.count_params()
    mit = hub.models.MiTBackbone(
        hidden_dims=[8, 16], layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[2, 1], max_drop_path_rate=0.0, layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2], image_shape=(32, 32, 3))
    with pytest.raises(tfc.graph.UnknownLayerError, match=r"its call reshapes to \(None, -1, "
                       r"1, 8\), sizes of its input that were unknown when traced"):
        tfc.wrap(mit)


def test_a_layer_whose_padding_mask_its_parts_drop_is_not_seen_through():
    # keras_hub's TokenAndPositionEmbedding(mask_zero=True) puts its token embedding's
    # mask back on its output by hand; seen through, the sum of its parts carried none and
    # the attention and pooling after it read the padding (masked model off by 0.8-1.3)
    tokens = keras.Input((None,), dtype="int32")
    x = hub.layers.TokenAndPositionEmbedding(30, 16, 16, mask_zero=True, name="tok_pos")(tokens)
    x = keras.layers.MultiHeadAttention(4, 4, name="mha")(x, x)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    with pytest.raises(tfc.graph.UnknownLayerError,
                       match=r"Layer 'tok_pos' .* gives its output a Keras mask .* would attend "
                             "to the padding"):  # fmt: skip
        tfc.wrap(model)
    masked = tfc.wrap(model, exclude=["tok_pos"])
    padded = np.array([[5, 7, 9, 11, 0, 0, 0, 0]], "int32")
    np.testing.assert_array_equal(np.asarray(masked(padded)), np.asarray(model(padded)))
    tfc.prune(masked, 0.5)
    compact = tfc.strip(masked)
    short = padded[:, :4]
    assert max_rel_error(np.asarray(compact(short)), np.asarray(compact(padded))) < 1e-5


def test_an_encoder_reading_the_keras_mask_of_its_input_is_not_seen_through():
    # keras_hub's TransformerEncoder merges its input's Keras mask into its attention mask
    # by hand; its parts, traced from inputs without one, did not: seen through after a
    # `mask_zero` embedding, the masked model attended to the padding (off by ~1, silently)
    tokens = keras.Input((None,), dtype="int32")
    x = hub.layers.TokenAndPositionEmbedding(30, 16, 16, mask_zero=True, name="tok_pos")(tokens)
    x = keras.layers.Dense(16, name="proj")(x)
    x = hub.layers.TransformerEncoder(32, 4, name="enc")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc")(
        keras.layers.GlobalAveragePooling1D()(x)
    )
    model = keras.Model(tokens, keras.layers.Dense(4, name="head")(x))
    with pytest.raises(tfc.graph.UnknownLayerError,
                       match=r"Layer 'enc' .* its input carries a Keras mask .* would attend to "
                             r"the padding. Give it the padding as an argument"):  # fmt: skip
        tfc.wrap(model, exclude=["tok_pos"])
    masked = tfc.wrap(model, exclude=["tok_pos", "enc"])
    padded = np.array([[5, 7, 9, 11, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(np.asarray(masked(padded)), np.asarray(model(padded)), atol=1e-6)
    tfc.prune(masked, 0.5)
    compact = tfc.strip(masked)
    assert compact.get_layer("fc").units == 16
    assert max_rel_error(np.asarray(compact(padded)), np.asarray(masked(padded))) < 1e-5


def test_an_encoder_given_its_padding_as_an_argument_is_seen_through():
    # the same encoder given `padding_mask=` (as the keras_hub backbones call it) after an
    # embedding without `mask_zero`: no Keras mask flows, its parts are pruned with parity
    tokens = keras.Input((None,), dtype="int32")
    x = hub.layers.TokenAndPositionEmbedding(30, 16, 16, name="tok_pos")(tokens)
    x = hub.layers.TransformerEncoder(32, 4, name="enc")(x, padding_mask=tokens != 0)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    masked = tfc.wrap(model)
    assert "enc" not in [layer.name for layer in masked.layers]  # seen through
    padded = np.array([[5, 7, 9, 11, 0, 0, 0, 0]], "int32")
    np.testing.assert_allclose(np.asarray(masked(padded)), np.asarray(model(padded)), atol=1e-6)
    tfc.prune(masked, 0.5)
    compact = tfc.strip(masked)
    assert max_rel_error(np.asarray(compact(padded)), np.asarray(masked(padded))) < 1e-5


def test_exclude_refuses_a_part_name_several_blocks_share():
    # `exclude=["self_attention_layer"]` used to leave the attention of every block alone
    bert = hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=4,
                                   hidden_dim=16, intermediate_dim=32, max_sequence_length=16)
    with pytest.raises(ValueError, match=r"exclude name 'self_attention_layer' is the name "
                       r"of 2 layers of model 'bert_backbone', parts of the composite layers "
                       r"\['transformer_layer_0', 'transformer_layer_1'\]"):  # fmt: skip
        tfc.wrap(bert, exclude=["self_attention_layer"])
    with pytest.raises(ValueError, match=r"Its layers are: \[.*'transformer_layer_0'"):
        tfc.wrap(bert, exclude=["no_such_layer"])
    full = tfc.prune(tfc.wrap(bert), ratio=0.5).keep
    first_alone = tfc.prune(tfc.wrap(bert, exclude=["transformer_layer_0"]), ratio=0.5).keep
    heads = lambda keep: sorted(k for k in keep if "attention_layer_heads_mask" in k)  # noqa: E731
    assert len(heads(full)) == 2 and len(heads(first_alone)) == 1
