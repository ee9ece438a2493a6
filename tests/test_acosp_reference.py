"""ACoSP (merantix/acosp) exactly: the soft mask, its initialisation, the channels each
conv keeps for a compression ratio N, and what `--compression=N` means for soft_topk."""

import math

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.layers import SoftTopKMask
from tfcompress.pruners import ranking


def _acosp_soft_mask(logits, k, tau):
    """numpy transcription of ACoSP's `sigmoid_soft_top_k` (torch.std_mean: unbiased std;
    torch.quantile: linear interpolation)."""
    if k == len(logits):
        return np.ones_like(logits)
    z = (logits - logits.mean()) / max(logits.std(ddof=1), 1e-3)
    x0 = np.quantile(z, 1 - k / len(logits))
    return 1 / (1 + np.exp(-(z - x0) / tau))


def _mask(units, seed=0):
    layer = SoftTopKMask(units, seed=seed)
    layer.build((None, units))
    return layer


def test_acosp_soft_mask_uses_unbiased_std():
    rng = np.random.default_rng(0)
    for units, k, tau in ((5, 2, 0.5), (16, 4, 1.0), (64, 16, 0.1), (7, 7, 0.3)):
        layer = _mask(units)
        logits = rng.normal(size=units).astype("float32")
        layer.logits.assign(logits)
        layer.keep.assign(float(k))
        layer.temperature.assign(tau)
        got = np.asarray(layer.channel_scale())
        np.testing.assert_allclose(got, _acosp_soft_mask(logits, k, tau), rtol=1e-5, atol=1e-6)
    # the biased std (numpy's default) gives another mask: the test can tell them apart
    z_biased = (logits - logits.mean()) / logits.std()
    assert not np.allclose(np.asarray(layer.standardized_logits()), z_biased, rtol=1e-3)


def test_acosp_logits_start_standard_normal():
    values = np.concatenate([np.asarray(_mask(512, seed=s).logits) for s in range(4)])
    assert abs(values.mean()) < 0.1
    assert values.std() == pytest.approx(1.0, abs=0.05)  # N(0, 1), not N(0, 0.05^2)


def test_acosp_callback_keeps_at_least_eight_channels_by_default():
    callback = cb.SoftTopK(schedules.ACoSPTemperature(0.9, ending_epoch=2))
    assert callback.options.min_channels == 8 == tfc.methods.get("soft_topk").min_channels
    assert cb.SoftTopK(schedules.ACoSPTemperature(0.9, ending_epoch=2),
                       min_channels=2).options.min_channels == 2
    with pytest.raises(ValueError, match="Received: min_channels=0"):
        cb.SoftTopK(schedules.ACoSPTemperature(0.9, ending_epoch=2), min_channels=0)
    with pytest.raises(TypeError, match="positional"):
        cb.SoftTopK(schedules.ACoSPTemperature(0.9, ending_epoch=2), 8)


@pytest.mark.parametrize("compression", [2, 4, 8, 16])
def test_acosp_keep_count_is_ceil_of_the_kept_fraction(compression):
    """ACoSP: k = max(ceil((1 - s) C), 8) with s = 1 - 1/N; ranking.keep_count computes
    C - floor(s C), the same for the configs' N (powers of two: s C is exact); never
    more than C (ACoSP would ask torch.quantile for a negative q when C < 8)."""
    s = 1 - 1 / compression
    for units in range(1, 1025):
        acosp = max(math.ceil((1 - s) * units), 8)
        assert ranking.keep_count(units, s, min_channels=8) == min(acosp, units), units


def _three_convs(widths=(64, 20, 512)):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    x = inputs
    for i, filters in enumerate(widths):
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(2, name="head")(x))


def test_acosp_ratio_4_keeps_a_quarter_of_channels():
    masked = tfc.wrap(_three_convs(), "soft_topk")
    masked.compile(optimizer=keras.optimizers.SGD(0.01), run_eagerly=True,  # 2 steps: no trace
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = cb.SoftTopK(schedules.ACoSPTemperature(final_ratio=1 - 1 / 4, ending_epoch=1))
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    y = np.arange(8) % 2
    masked.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])
    assert callback.hardened_at == 1
    compact = tfc.strip(masked)
    kept = {name: compact.get_layer(name).filters for name in ("conv0", "conv1", "conv2")}
    assert kept == {"conv0": 16, "conv1": 8, "conv2": 128}  # 64/4, max(ceil(20/4), 8), 512/4


def test_acosp_mask_before_bn_is_normalised_away_in_training():
    """Why tfcompress masks after BatchNorm: ACoSP's mask m sits between conv and BN, and
    in training BN(m x) = gamma (x - mean) / sqrt(var + eps / m^2) + beta, so a soft mask
    of 0.5 moves the output by ~eps / var and a hard 0 leaves beta, not 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 2.0, (64, 4, 4, 3)).astype("float32")
    bn = layers.BatchNormalization(epsilon=1e-5)  # torch's eps, as in ACoSP
    bn.build(x.shape)
    bn.beta.assign(np.array([0.1, 0.2, 0.4], "float32"))
    m = np.array([1.0, 0.5, 0.0], "float32")
    before = np.asarray(bn(x * m, training=True))
    plain = np.asarray(bn(x, training=True))
    assert np.abs(before[..., 1] - plain[..., 1]).max() < 1e-4  # the 0.5 is gone
    np.testing.assert_allclose(before[..., 2], 0.4, atol=1e-6)  # masked to 0: emits beta
    after = plain * m  # tfcompress: the mask scales BN's (activation's) output
    assert np.abs(after[..., 1] - plain[..., 1]).max() > 1.0 and not after[..., 2].any()


def test_soft_topk_masks_sit_after_batchnorm():
    masked = tfc.wrap(_three_convs(), "soft_topk")
    masks = [layer for layer in masked.layers if isinstance(layer, SoftTopKMask)]
    assert len(masks) == 3
    for mask in masks:  # conv -> BN -> ReLU (-> pooling) -> mask
        chain, op = [], mask
        while not isinstance(op, layers.Conv2D):
            op = op._inbound_nodes[0].parent_nodes[0].operation
            chain.append(type(op).__name__)
        assert chain[-2:] == ["BatchNormalization", "Conv2D"], chain


@pytest.mark.slow
def test_acosp_epoch_end_temperature_through_fit():
    masked = tfc.wrap(_three_convs((8, 8, 8)), "soft_topk")
    masked.compile(optimizer=keras.optimizers.SGD(0.01),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    schedule = schedules.ACoSPTemperature(0.5, 4, final_temperature=1e-2, update="epoch_end")
    mask = next(layer for layer in masked.layers if isinstance(layer, SoftTopKMask))
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(float(mask.temperature)))
    x = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    masked.fit(x, np.arange(8) % 2, batch_size=4, epochs=4, verbose=0,
               callbacks=[cb.SoftTopK(schedule, min_channels=1), record])
    t = [1.0, 1.0, 10 ** -0.5, 0.1]  # epoch e trains at T(e - 1): 1, 1, 1e-2^(1/4), 1e-2^(2/4)
    np.testing.assert_allclose(seen, np.repeat(t, 2), rtol=1e-6)
