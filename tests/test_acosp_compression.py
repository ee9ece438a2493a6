"""What `--compression=N` means: ACoSP's per-conv channel sparsity 1 - 1/N for soft_topk
(its configs say so), the parameter-count search as an explicit option."""

import os

import keras
import pytest
from keras import layers

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.training import compress_lib, methods
from tfcompress.training import config as cfg

from .test_scripts_helpers import CONFIGS, REPO, parse

ACOSP = [f"{model}_soft_topk_{n}x.cfg" for model in ("pspnet_cityscapes", "resnet18_cifar10")
         for n in (2, 4, 8, 16)]


def _net():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for i, filters in enumerate((16, 32, 32)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4, name="head")(x))


def test_acosp_compression_4_is_ratio_three_quarters():
    prune = cfg.PruneConfig("soft_topk", compression=4)
    assert compress_lib.compression_target(prune) == "channels"
    assert compress_lib.resolve_ratio(None, prune) == 0.75  # no search, no model needed


def test_acosp_flags_map_compression_4_to_ratio_three_quarters():
    config = parse("compress", ["--model=resnet18", "--num_classes=10", "--train_data=x",
                                "--checkpoint=y", "--epochs=2", "--method=soft_topk",
                                "--compression=4"])
    assert config.prune.compression_target is None
    assert compress_lib.resolve_ratio(None, config.prune) == 0.75


def test_compression_target_params_searches_the_parameter_count():
    masked = tfc.wrap(_net(), "soft_topk")
    prune = cfg.PruneConfig("soft_topk", compression=4, compression_target="params")
    assert compress_lib.compression_target(prune) == "params"
    ratio = compress_lib.resolve_ratio(masked, prune)
    assert 0.4 < ratio < 0.6  # 1/4 of the parameters: about half the channels, not 3/4


def test_compression_target_defaults_to_params_for_other_methods():
    for method in ("l1_filter", "taylor", "slimming"):
        prune = cfg.PruneConfig(method, compression=4)
        assert compress_lib.compression_target(prune) == "params"
    prune = cfg.PruneConfig("l1_filter", compression=4, compression_target="channels")
    assert compress_lib.resolve_ratio(None, prune) == 0.75


def test_compression_target_rejects_unknown_values():
    with pytest.raises(ValueError, match=r"compression_target must be one of .*"
                                         r"Received: compression_target='weights'"):
        cfg.PruneConfig("soft_topk", compression=4, compression_target="weights")
    with pytest.raises(Exception, match="compression_target"):
        parse("compress", ["--train_data=x", "--checkpoint=y", "--epochs=2", "--method=soft_topk",
                           "--compression=4", "--compression_target=weights"])


@pytest.mark.parametrize("name", ACOSP)
def test_acosp_configs_use_channel_semantics(name, monkeypatch):
    monkeypatch.chdir(REPO)
    n = int(name.rsplit("_", 1)[1][:-len("x.cfg")])
    prune = parse("compress", [f"--flagfile=configs/{name}"]).prune
    assert (prune.method, prune.compression, prune.min_channels) == ("soft_topk", n, 8)
    assert compress_lib.compression_target(prune) == "channels"
    assert compress_lib.resolve_ratio(None, prune) == 1 - 1 / n
    assert prune.temperature_update == "epoch_end"
    with open(os.path.join(CONFIGS, name)) as f:
        header = f.read().split("\n--", 1)[0]
    assert f"ACoSP-{n}" in header and f"max(ceil(C/{n}), 8)" in header


def test_acosp_epoch_end_temperature_reaches_the_callback():
    prune = cfg.PruneConfig("soft_topk", ratio=0.75, starting_epoch=1, ending_epoch=5,
                            temperature_update="epoch_end")
    timeline = methods.Timeline.of(prune, steps_per_epoch=10, total_steps=80)
    callback = methods.METHODS["soft_topk"].callback(prune, 0.75, timeline)
    assert isinstance(callback, cb.SoftTopK) and callback.steps_per_epoch == 10
    assert callback.schedule == schedules.ACoSPTemperature(
        0.75, 5, starting_epoch=1, update="epoch_end")
    continuous = methods.METHODS["soft_topk"].callback(
        cfg.PruneConfig("soft_topk", ratio=0.75, starting_epoch=1, ending_epoch=5),
        0.75, timeline)
    assert continuous.steps_per_epoch == 1
    assert continuous.schedule == schedules.ACoSPTemperature(0.75, 50, starting_epoch=10)


def test_temperature_update_is_checked():
    with pytest.raises(ValueError, match="whole epochs. Received: starting_epoch=0.5"):
        cfg.PruneConfig("soft_topk", ratio=0.5, starting_epoch=0.5, ending_epoch=3,
                        temperature_update="epoch_end")
    with pytest.raises(ValueError, match="Received: temperature_update='epoch_end'"):
        cfg.PruneConfig("l1_filter", ratio=0.5, temperature_update="epoch_end")
    with pytest.raises(ValueError, match="Received: temperature_update='step'"):
        cfg.PruneConfig("soft_topk", ratio=0.5, ending_epoch=3, temperature_update="step")


def test_compress_min_channels_defaults_to_the_methods():
    soft = cfg.PruneConfig("soft_topk", compression=4, ending_epoch=2)
    assert soft.min_channels is None
    timeline = methods.Timeline.of(soft, steps_per_epoch=5, total_steps=20)
    callback = methods.METHODS["soft_topk"].callback(soft, 0.75, timeline)
    assert callback.options.min_channels == 8  # ACoSP's min_remaining_elements
    assert methods.ranking_options(soft).min_channels == 8
    assert methods.ranking_options(cfg.PruneConfig("l1_filter", ratio=0.5)).min_channels == 1
    given = cfg.PruneConfig("soft_topk", compression=4, ending_epoch=2, min_channels=2)
    assert methods.METHODS["soft_topk"].callback(given, 0.75, timeline).options.min_channels == 2
    with pytest.raises(ValueError, match="Received: min_channels=0"):
        cfg.PruneConfig("soft_topk", compression=4, min_channels=0)


def test_soft_topk_hardens_when_fit_ends_at_ending_epoch():
    # the last step of fit(epochs=2) reaches epoch 2.0 = ending_epoch; no batch follows
    # (before, the masks stayed soft and strip kept more channels than k, silently)
    x = keras.random.normal((64, 8, 8, 3), seed=0)
    y = keras.ops.arange(64) % 4
    masked = tfc.wrap(_net(), "soft_topk")
    masked.compile(keras.optimizers.Adam(1e-2),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = cb.SoftTopK(schedules.ACoSPTemperature(0.5, ending_epoch=2), min_channels=2)
    masked.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[callback])
    assert callback.hardened_at == 8 and callback.is_hard()
    compact = tfc.strip(masked)
    assert [compact.get_layer(f"conv{i}").filters for i in range(3)] == [8, 16, 16]
    masked.fit(x, y, batch_size=16, initial_epoch=2, epochs=3, shuffle=False, verbose=0,
               callbacks=[callback])
    assert callback.hardened_at == 8  # hard already: not again
