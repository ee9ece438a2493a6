"""Every keras.applications family: wrap, prune 30 %, strip with parity; the families whose
layers the others do not have also serve the compact model from a SavedModel."""

import keras
import pytest

import tfcompress as tfc
from benchmarks.prune_time import APPLICATIONS
from tests.parity import max_rel_error, outputs, prune_with_parity
from tests.topologies import randomize_bn

A = keras.applications
# One member per family, at the smallest input size each accepts (one list for these tests
# and benchmarks/prune_time.py).
FAMILIES = APPLICATIONS
# The SavedModel round trip is the same code for every model; these families bring the
# layers no other one has (CustomScaleLayer, LayerScale + LayerNormalization, Rescaling +
# Normalization, hard-swish ops, depthwise convs, concatenations).
SERVED = ("ConvNeXtTiny", "EfficientNetB0", "InceptionResNetV2", "MobileNetV3Small", "ResNet50")
# Served up to this layer: writing and loading the whole compact InceptionResNetV2 took ~55 s
# of CPU, its stem and first two blocks (every kind of layer it has: CustomScaleLayer,
# concatenations, pooling) ~4 s.
SERVED_UP_TO = {"InceptionResNetV2": "block35_2_ac"}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_application_prunes_with_parity(family, tmp_path):
    builder, size = FAMILIES[family]
    model = randomize_bn(builder(weights=None, input_shape=(size, size, 3), classes=10))
    _, compact, x = prune_with_parity(model, 0.3)
    assert compact.count_params() < model.count_params()
    if family in SERVED:
        served = compact
        if family in SERVED_UP_TO:
            served = keras.Model(compact.inputs, compact.get_layer(SERVED_UP_TO[family]).output)
        # the served model's own outputs (within 1e-4 of the masked model's, asserted above)
        path = tfc.export.saved_model(served, str(tmp_path / "sm"))
        assert max_rel_error(outputs(served, x), tfc.export.serve(path, x)) <= 1e-4


def test_every_family_is_covered():
    families = {n for n in dir(A) if n.islower() and not n.startswith("_")} - {
        "imagenet_utils", "resnet50", "vgg19"  # aliases / utilities of covered families
    }
    covered = {fn.__module__.rsplit(".", 1)[-1] for fn, _ in FAMILIES.values()}
    assert families <= covered | {"resnet", "resnet_v2", "vgg16"}, families - covered
    assert set(SERVED) <= set(FAMILIES) and set(SERVED_UP_TO) <= set(SERVED)
