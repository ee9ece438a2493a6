"""PSPNet takes the reference crops (473, 713): adaptive pyramid pooling, exact-size output."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input
from tests.topologies import randomize_bn
from tfcompress import models
from tfcompress.models import pspnet


def torch_adaptive_avg_pool(x, bins):
    """`nn.AdaptiveAvgPool2d(bins)` on NHWC numpy, written from PyTorch's window formula."""
    height, width = x.shape[1:3]
    out = np.zeros((x.shape[0], bins, bins, x.shape[3]), x.dtype)
    for i in range(bins):
        h0, h1 = int(np.floor(i * height / bins)), int(np.ceil((i + 1) * height / bins))
        for j in range(bins):
            w0, w1 = int(np.floor(j * width / bins)), int(np.ceil((j + 1) * width / bins))
            out[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return out


def test_adaptive_windows_follow_pytorch():
    assert pspnet.adaptive_windows(45, 2) == [(0, 23), (22, 45)]
    assert pspnet.adaptive_windows(45, 6) == [
        (0, 8),
        (7, 15),
        (15, 23),
        (22, 30),
        (30, 38),
        (37, 45),
    ]
    assert pspnet.adaptive_windows(60, 6) == [(i * 10, i * 10 + 10) for i in range(6)]
    assert pspnet.adaptive_windows(2, 3) == [(0, 1), (0, 2), (1, 2)]


@pytest.mark.parametrize("size", [(45, 45), (7, 10), (60, 60), (5, 2), (1, 1), (2, 1)])
@pytest.mark.parametrize("bins", [1, 2, 3, 6])
def test_adaptive_average_pooling_matches_pytorch_formula(size, bins):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    inputs = keras.Input((*size, 3))
    model = keras.Model(inputs, pspnet.adaptive_average_pooling(inputs, bins, "pool"))
    np.testing.assert_allclose(model(x), torch_adaptive_avg_pool(x, bins), rtol=1e-5, atol=1e-6)


def test_divisible_features_pool_with_one_layer():
    inputs = keras.Input((60, 45, 4))
    model = keras.Model(inputs, pspnet.adaptive_average_pooling(inputs, 2, "pool"))
    pools = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [(p.pool_size, p.strides) for p in pools] == [((30, 23), (30, 22))]


@pytest.mark.parametrize("size, res5", [(473, 60), (713, 90)])
def test_pspnet_builds_at_reference_crops_with_input_sized_outputs(size, res5):
    model = models.build("pspnet", 19, (size, size, 3), width=0.0625)
    assert model.get_layer("res5_3_out").output.shape[1:3] == (res5, res5)
    assert [tuple(o.shape) for o in model.outputs] == [(None, size, size, 19)] * 2


@pytest.mark.parametrize("size, output_stride", [(8, 8), (16, 16)])
def test_pspnet_builds_where_res5_is_one_pixel(size, output_stride):
    """More bins than res5 pixels: every window is that pixel (ZeroDivisionError before:
    equal windows at stride 0 made one AveragePooling2D of strides 0)."""
    model = models.build("pspnet", 5, (size, size, 3), width=0.0625,
                         output_stride=output_stride)
    assert model.get_layer("res5_3_out").output.shape[1:3] == (1, 1)
    x = np.random.default_rng(0).uniform(size=(1, size, size, 3)).astype("float32")
    assert [tuple(o.shape) for o in model(x)] == [(1, size, size, 5)] * 2


def test_pspnet_output_stride_16_pools_non_divisible_features_adaptively():
    # 713 / 16 -> 45: bins 2 and 6 do not divide it
    model = models.build("pspnet", 3, (713, 713, 3), width=0.0625, output_stride=16)
    assert model.get_layer("res5_3_out").output.shape[1:3] == (45, 45)
    assert model.get_layer("ppm_pool6_rows_concat").output.shape[1:3] == (6, 45)
    assert model.get_layer("ppm_pool6_cols_concat").output.shape[1:3] == (6, 6)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 713, 713, 3)] * 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "size, output_stride",
    [(473, 8), (713, 8), (713, 16)],
    ids=["473-os8", "713-os8", "713-os16-uneven-bins"],
)
def test_pspnet_prunes_half_with_parity_at_reference_crop(size, output_stride, tmp_path):
    model = models.build("pspnet", 5, (size, size, 3), width=0.0625, output_stride=output_stride)
    model = randomize_bn(model)
    x = sample_input(model, batch=1)
    masked = tfc.wrap(model, method="l1_filter")
    assert max_rel_error(outputs(model, x), outputs(masked, x)) <= 1e-6
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    assert compact.count_params() < 0.6 * model.count_params()
    assert [tuple(o.shape) for o in compact.outputs] == [(None, size, size, 5)] * 2
    path = str(tmp_path / "pspnet.keras")
    compact.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert max_rel_error(outputs(compact, x), outputs(restored, x)) <= 1e-6
