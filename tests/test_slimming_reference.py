"""Network Slimming's threshold as vggprune.py computes it (issue 14, item 6).

Eric-mingjie/network-slimming, vggprune.py:

    bn = torch.zeros(total); index = 0
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            size = m.weight.data.shape[0]
            bn[index:(index+size)] = m.weight.data.abs().clone()
            index += size
    y, i = torch.sort(bn)
    thre_index = int(total * args.percent)
    thre = y[thre_index]
    ...  mask = weight_copy.gt(thre).float()   # strictly greater; a layer may be emptied
"""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.models import vgg
from tfcompress.pruners import ranking
from tfcompress.pruners.stats import mask_stats

from .pruning_models import conv_bn_net, mask_values

VGG16_WIDTHS = [v for v in vgg.VGG16_CFG if v != "M"]
PERCENT = 0.5


def vggprune_cfg(gammas, percent):
    """vggprune.py's per-layer kept channel counts, transcribed in NumPy."""
    total = sum(len(g) for g in gammas)
    bn = np.zeros(total, np.float32)
    index = 0
    for g in gammas:
        bn[index : index + len(g)] = np.abs(g)
        index += len(g)
    y = np.sort(bn)
    thre = y[int(total * percent)]
    return [int(np.sum(np.abs(g) > thre)) for g in gammas]


def vgg16_gammas(seed=0):
    """Seeded |gamma| per BN layer of VGG16-BN; conv10 all tiny (the reference empties
    it), conv12 tiny but for three channels (it keeps three)."""
    rng = np.random.default_rng(seed)
    gammas = [rng.uniform(0.0, 1.0, c).astype(np.float32) for c in VGG16_WIDTHS]
    gammas[9] = rng.uniform(0.0, 1e-3, 512).astype(np.float32)
    gammas[11] = rng.uniform(0.0, 1e-3, 512).astype(np.float32)
    gammas[11][:3] = [0.995, 0.996, 0.997]
    return gammas


def strict_options(ratio):
    return ranking.RankingOptions(ratio, scope="global", rule="strict_quantile")


def test_slimming_reference_rule_matches_vggprune_on_scores():
    gammas = vgg16_gammas()
    expected = vggprune_cfg(gammas, PERCENT)
    assert expected[9] == 0 and expected[11] == 3  # the test covers an emptied layer
    total = sum(VGG16_WIDTHS)
    assert total - sum(expected) == int(total * PERCENT) + 1  # floor(p N) + 1 removed
    scores = {i: np.abs(g).astype(np.float64) for i, g in enumerate(gammas)}
    keep = ranking.select(scores, strict_options(PERCENT))
    assert [int(keep[i].sum()) for i in range(len(gammas))] == expected
    for i, g in enumerate(gammas):  # and the very channels vggprune.py keeps
        np.testing.assert_array_equal(keep[i], np.abs(g) > np.sort(np.concatenate(gammas))[
            int(total * PERCENT)])


def test_safe_rule_removes_floor_of_p_n_and_never_empties_a_layer():
    gammas = vgg16_gammas()
    scores = {i: np.abs(g).astype(np.float64) for i, g in enumerate(gammas)}
    keep = ranking.select(scores, ranking.RankingOptions(PERCENT, scope="global"))
    total = sum(VGG16_WIDTHS)
    assert total - sum(int(k.sum()) for k in keep.values()) == int(total * PERCENT)
    assert min(int(k.sum()) for k in keep.values()) == 1


def test_slimming_reference_rule_matches_vggprune():
    # through the model: wrap VGG16-BN for slimming, set the BN scales, prune
    model = vgg.vgg16_bn(10, (32, 32, 3))
    masked = tfc.wrap(model, "slimming")
    gammas = vgg16_gammas()
    for i, g in enumerate(gammas):
        masked.get_layer(f"conv{i + 1}_bn").gamma.assign(g)
    tfc.prune(masked, PERCENT, method="slimming", scope="global", rule="strict_quantile")
    stats = mask_stats(masked)
    kept = [stats[f"kept_channels/conv{i + 1}_mask"] for i in range(len(gammas))]
    assert kept == vggprune_cfg(gammas, PERCENT)
    with pytest.raises(ValueError, match=r"\['conv10_mask'\] keep no channel"):
        tfc.strip(masked)


def _set_gammas(masked, gammas):
    for i, g in enumerate(gammas):
        masked.get_layer(f"bn{i}").gamma.assign(np.asarray(g, np.float32))


def test_strict_quantile_emptied_layer_strip_names_the_layer():
    masked = tfc.wrap(conv_bn_net(), "slimming")
    gammas = [np.linspace(0.5, 1.0, 8), np.full(8, 1e-4), np.linspace(0.55, 0.95, 16)]
    _set_gammas(masked, gammas)
    tfc.prune(masked, 0.25, method="slimming", scope="global", rule="strict_quantile")
    kept = [int(v.sum()) for v in mask_values(masked).values()]
    assert kept == vggprune_cfg(gammas, 0.25) == [7, 0, 16]
    with pytest.raises(ValueError, match=r"Mask layers \['conv1_mask'\] keep no channel"):
        tfc.strip(masked)


def test_strict_quantile_strips_when_no_layer_is_emptied():
    masked = tfc.wrap(conv_bn_net(), "slimming")
    gammas = [np.linspace(0.1, 0.8, 8), np.linspace(0.15, 0.85, 8), np.linspace(0.2, 1.0, 16)]
    _set_gammas(masked, gammas)
    tfc.prune(masked, 0.5, method="slimming", scope="global", rule="strict_quantile")
    kept = [int(v.sum()) for v in mask_values(masked).values()]
    assert kept == vggprune_cfg(gammas, 0.5)
    assert sum(kept) == 32 - 17  # floor(0.5 * 32) + 1 removed
    compact = tfc.strip(masked)
    assert [compact.get_layer(f"conv{i}").filters for i in range(3)] == kept


def test_slimming_config_uses_the_reference_rule(monkeypatch):
    from tfcompress.training import config as config_lib
    from tfcompress.training import methods

    from .test_scripts_helpers import REPO, parse

    assert config_lib.RANKING_RULES == ranking.RULES
    monkeypatch.chdir(REPO)
    config = parse("compress", ["--flagfile=configs/vgg19_bn_cifar10_slimming.cfg"])
    assert config.prune.ranking_rule == "strict_quantile"
    steps_per_epoch = 50000 // config.train.batch_size
    total = config.train.total_steps(steps_per_epoch)
    timeline = methods.Timeline.of(config.prune, steps_per_epoch, total)
    callback = methods.METHODS["slimming"].callback(config.prune, 0.7, timeline)
    assert callback.options.rule == "strict_quantile"
    assert callback.options.scope == "global"


def test_ranking_rule_is_refused_for_methods_without_a_channel_ranking():
    from tfcompress.training.config import PruneConfig

    with pytest.raises(ValueError, match="ranking_rule='strict_quantile' cuts a channel ranking"):
        PruneConfig(method="soft_topk", ratio=0.5, ranking_rule="strict_quantile")
    with pytest.raises(ValueError, match="ranking_rule"):
        PruneConfig(method="slimming", ratio=0.5, ranking_rule="vggprune")


def test_slimming_config_learning_rate_is_main_py_twice(monkeypatch):
    # main.py: lr 0.1, x0.1 when epoch in [epochs * 0.5, epochs * 0.75], 160 epochs; the
    # refine (`main.py --refine --epochs 160`) starts again from 0.1
    from tfcompress.training import common

    from .test_scripts_helpers import REPO, parse

    monkeypatch.chdir(REPO)
    train = parse("compress", ["--flagfile=configs/vgg19_bn_cifar10_slimming.cfg"]).train
    steps = 50000 // train.batch_size  # 781

    class Plan:
        steps_per_epoch = steps
        total_steps = train.total_steps(steps)

    def main_py(epochs, epoch):  # the learning rate main.py trains `epoch` with
        lr = 0.1
        for e in range(epoch + 1):
            if e in (epochs * 0.5, epochs * 0.75):
                lr *= 0.1
        return lr

    schedule = common.learning_rate_of(train, Plan)
    for epoch in range(320):
        expected = main_py(160, epoch) if epoch < 160 else main_py(160, epoch - 160)
        for step in (epoch * steps, (epoch + 1) * steps - 1):  # its first and last step
            assert float(schedule(step)) == pytest.approx(expected, rel=1e-6), epoch
    assert train.epochs == 320


def test_slimming_config_builds_the_seeds_vgg(monkeypatch):
    # network slimming's models/vgg.py _initialize_weights, and PyTorch's BN momentum 0.1
    from tfcompress.training import weights

    from .test_scripts_helpers import REPO, parse

    monkeypatch.chdir(REPO)
    config = parse("compress", ["--flagfile=configs/vgg19_bn_cifar10_slimming.cfg"])
    model_config = config.train.model
    assert dict(model_config.options) == {"style": "slimming"}
    keras.utils.set_random_seed(0)
    model = weights.build_model(model_config, (32, 32, 3))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            np.testing.assert_array_equal(layer.gamma.numpy(), 0.5)
            np.testing.assert_array_equal(layer.beta.numpy(), 0.0)
            assert layer.momentum == 0.9
    conv = model.get_layer("conv16").kernel.numpy()  # 3x3x512x512: std sqrt(2 / (9 * 512))
    assert np.std(conv) == pytest.approx(np.sqrt(2 / (9 * 512)), rel=0.01)
    assert abs(np.mean(conv)) < 1e-3
    logits = model.get_layer("logits")
    assert np.std(logits.kernel.numpy()) == pytest.approx(0.01, rel=0.1)  # 5,120 values
    np.testing.assert_array_equal(logits.bias.numpy(), 0.0)
    # the library default stays Keras's
    default = vgg.vgg19_bn(10, (32, 32, 3), width=0.25)
    assert default.get_layer("conv1_bn").momentum == 0.99
    message = r"style must be one of \['keras', 'slimming'\]. Received: style='torch'"
    with pytest.raises(ValueError, match=message):
        vgg.vgg19_bn(10, (32, 32, 3), style="torch")
