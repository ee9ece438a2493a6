"""keras_hub backbones, built from their constructors with tiny configs and random weights
(never presets): wrap alone <= 1e-6, prune 30 % then strip <= 1e-4, fewer parameters.

Their composite blocks (MobileNet's DepthwiseConvBlock/InvertedResidualBlock, EfficientNet's
FusedMBConvBlock/MBConvBlock, keras_hub's TransformerEncoder ...) are seen through
(`tfcompress.graph.decompose`); position embeddings, which hold a weight of their own, are
opaque layers on the residual stream that LayerNormalization keeps whole anyway
(`tfcompress.graph.opaque`): heads and FFN units are pruned, the hidden width is kept.
The configs and the full sweep, with the families that are refused and why:
benchmarks/keras_hub_families.py.
"""

import keras
import pytest

import tfcompress as tfc
from tests.parity import max_rel_error

hub = pytest.importorskip("keras_hub")
from benchmarks.keras_hub_families import FAMILIES, outputs, sample_input  # noqa: E402

# The cheapest of each kind run here (CNN: plain, residual, composite blocks with
# squeeze-and-excite; transformer: BERT); every family runs in the benchmark.
TESTED = ("vgg", "resnet", "mobilenet", "bert")
# Exported as a SavedModel and served (BERT: three named inputs, two outputs, a compact
# model holding keras_hub layers).
SERVED = ("bert",)


@pytest.mark.parametrize("name", TESTED)
def test_backbone_parity(name, tmp_path):
    model = FAMILIES[name]()
    x = sample_input(model)
    masked = tfc.wrap(model)
    assert max_rel_error(outputs(model, x), outputs(masked, x)) <= 1e-6
    tfc.prune(masked, ratio=0.3)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.count_params() < model.count_params()
    if name in SERVED:
        served = tfc.export.serve(tfc.export.saved_model(compact, str(tmp_path / "sm")), x)
        expected = outputs(compact, x)
        assert len(served) == len(expected)
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
