"""Each criterion against values computed by hand on a tiny model."""

import re

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.graph.trace import layers_of
from tfcompress.layers import SoftTopKMask, TaylorMask
from tfcompress.pruners import prune_weights, ranking

from .pruning_models import compile_model, conv_bn_net, data, mask_values


def _linear_net():
    inputs = keras.Input((3,))
    hidden = layers.Dense(4, name="d1")(inputs)
    outputs = layers.Dense(2, name="d2")(hidden)
    return keras.Model(inputs, outputs)


def _taylor_by_hand(model, x, y):
    """|mean over the batch of a * dL/da| per hidden unit, with L Keras's mean squared
    error: L = mean_b mean_o (out - y)^2."""
    w1, b1 = model.get_layer("d1").get_weights()
    w2, b2 = model.get_layer("d2").get_weights()
    a = x @ w1 + b1
    out = a @ w2 + b2
    d_out = 2 * (out - y) / out.size
    d_a = d_out @ w2.T
    return np.abs((a * d_a).sum(axis=0)) / len(x)


# the callback only gathers Taylor scores here: its event lies after the fit on purpose
@pytest.mark.filterwarnings("ignore::tfcompress.callbacks.ScheduleSkippedWarning")
def test_taylor_on_a_linear_layer_inside_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    masked = tfc.wrap(_linear_net(), "taylor")
    masked.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    expected = _taylor_by_hand(masked, x, y)
    masked.fit(x, y, batch_size=8, epochs=1, verbose=0,
               callbacks=[cb.StructuredPruning(schedules.OneShot(0.5, step=5), method="taylor")])
    (mask,) = layers_of(masked, TaylorMask)
    np.testing.assert_allclose(np.asarray(mask.importance()), expected, rtol=1e-5)
    # two batches with unchanged weights: the scores add up, pruning happens at step 1
    masked.fit(x, y, batch_size=8, epochs=5, verbose=0,
               callbacks=[cb.StructuredPruning(schedules.OneShot(0.5, step=2), method="taylor")])
    kept = np.nonzero(np.asarray(mask.mask))[0]
    np.testing.assert_array_equal(kept, np.sort(np.argsort(-expected)[:2]))


def test_taylor_measuring_pass_matches_hand_value_unnormalised():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 3)).astype("float32")
    y = rng.normal(size=(6, 2)).astype("float32")
    masked = tfc.wrap(_linear_net(), "taylor")
    masked.compile(optimizer="sgd", loss="mse")
    expected = 2 * _taylor_by_hand(masked, x, y)  # the same batch twice
    graph, sites, scores = tfc.pruners.score_groups(masked, "taylor", data=[(x, y), (x, y)])
    (s,) = scores.values()
    np.testing.assert_allclose(s, expected, rtol=1e-5)  # l2 is the ranking's `normalize`
    (mask,) = layers_of(masked, TaylorMask)
    np.testing.assert_allclose(np.asarray(mask.importance()), expected, rtol=1e-5)


# the callback only gathers Taylor scores here: its event lies after the fit on purpose
@pytest.mark.filterwarnings("ignore::tfcompress.callbacks.ScheduleSkippedWarning")
def test_taylor_measuring_pass_scores_in_training_mode_as_fit_and_leaves_bn_alone():
    # the reference ranks with model.train() (BatchNorm on batch statistics), as the
    # scores accumulate inside fit; the measuring pass puts the moving statistics back
    inputs = keras.Input((3,))
    hidden = layers.BatchNormalization(name="bn")(layers.Dense(4, name="d1")(inputs))
    model = keras.Model(inputs, layers.Dense(2, name="d2")(layers.ReLU()(hidden)))
    rng = np.random.default_rng(2)
    x = rng.normal(2.0, 3.0, size=(8, 3)).astype("float32")
    y = rng.normal(size=(8, 2)).astype("float32")
    scores = {}
    for path in ("fit", "data"):
        masked = tfc.wrap(model, "taylor")
        masked.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        (mask,) = layers_of(masked, TaylorMask)
        bn = [v.numpy() for v in masked.get_layer("bn").non_trainable_weights]
        if path == "fit":
            masked.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[
                cb.StructuredPruning(schedules.OneShot(0.5, step=5), method="taylor")])
        else:
            tfc.pruners.score_groups(masked, "taylor", data=[(x, y)])
            for before, after in zip(bn, masked.get_layer("bn").non_trainable_weights):
                np.testing.assert_array_equal(after.numpy(), before)
        scores[path] = np.asarray(mask.importance())
    np.testing.assert_allclose(scores["data"], scores["fit"], rtol=1e-5)


def test_slimming_global_threshold_picks_exact_channels():
    model = conv_bn_net(widths=(4, 4, 4))
    masked = tfc.wrap(model, "slimming", penalty=1e-4)
    gammas = {
        "bn0": [0.9, 0.05, 0.5, 0.02],
        "bn1": [0.01, 0.03, 0.04, 0.015],  # all below the threshold: keeps its best one
        "bn2": [0.8, 0.7, 0.06, 0.6],
    }
    for name, g in gammas.items():
        masked.get_layer(name).gamma.assign(np.array(g, "float32"))
    # 12 channels, percent 0.5 -> remove the 6 smallest |gamma|, never emptying bn1
    tfc.prune(masked, 0.5, method="slimming", scope="global")
    kept = {k: np.nonzero(v)[0].tolist() for k, v in mask_values(masked).items()}
    assert kept == {"conv0_mask": [0, 2], "conv1_mask": [2], "conv2_mask": [0, 1, 3]}
    compact = tfc.strip(masked)
    assert [compact.get_layer(f"conv{i}").filters for i in range(3)] == [2, 1, 3]


def test_slimming_penalty_is_l1_on_gamma():
    masked = tfc.wrap(conv_bn_net(widths=(4, 4, 4)), "slimming", penalty=0.5)
    gamma = masked.get_layer("bn0").gamma
    gamma.assign(np.array([1.0, -2.0, 0.5, 0.0], "float32"))
    expected = 0.5 * (3.5 + 4 + 4)  # bn1, bn2 gammas start at 1
    assert float(sum(masked.losses)) == pytest.approx(expected)


def test_slimming_adds_its_penalty_to_the_users_and_strip_takes_it_off(tmp_path):
    """A BatchNorm's own gamma regularizer stays under slimming's L1 (it was replaced),
    and the compact model has only the user's again (the penalty survived strip, so a
    fine-tune of the compact model still trained towards sparsity)."""
    from tfcompress.training.methods import disable_penalties

    model = conv_bn_net(widths=(4, 4, 4))
    model = keras.Model.from_config(model.get_config())  # a copy to give bn0 an L2
    config = model.get_config()
    for layer in config["layers"]:
        if layer["config"]["name"] == "bn0":
            layer["config"]["gamma_regularizer"] = keras.regularizers.serialize(
                keras.regularizers.L2(0.25))
    model = keras.Model.from_config(config)
    x = np.zeros((1, 12, 12, 1), "float32")
    model(x)
    own = 0.25 * 4  # bn0's L2 on gammas of 1
    assert float(sum(model.losses)) == pytest.approx(own)
    masked = tfc.wrap(model, "slimming", penalty=0.5)
    masked(x)
    assert float(sum(masked.losses)) == pytest.approx(own + 0.5 * 12)
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    loaded = keras.models.load_model(path)
    loaded(x)
    assert float(sum(loaded.losses)) == pytest.approx(own + 0.5 * 12)
    tfc.prune(masked, 0.5)
    compact = tfc.strip(masked)
    compact(x)
    kept_gamma = np.asarray(compact.get_layer("bn0").gamma)
    assert len(kept_gamma) < 4
    assert float(sum(compact.losses)) == pytest.approx(0.25 * np.sum(kept_gamma**2))
    assert compact.get_layer("bn1").gamma_regularizer is None
    disable_penalties(masked)  # the scripts' refine phase: the user's L2 stays
    masked(x)
    assert float(sum(masked.losses)) == pytest.approx(own)


def test_soft_topk_hardening_keeps_exactly_k():
    x, y = data(64)
    masked = compile_model(tfc.wrap(conv_bn_net(), "soft_topk"))
    callback = cb.SoftTopK(schedules.ACoSPTemperature(0.6, ending_epoch=2), min_channels=2)
    with pytest.warns(cb.ScheduleSkippedWarning, match="still soft"):  # before epoch 2
        masked.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    masks = [layer for layer in masked.layers if isinstance(layer, SoftTopKMask)]
    assert all(float(m.temperature) < 1.0 and float(m.hard) == 0 for m in masks)
    masked.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, verbose=0, callbacks=[callback])
    assert callback.hardened_at == 2 * 4  # the end of the fit, at epoch 2
    assert all(float(m.hard) == 1 for m in masks)
    logits = [np.asarray(m.standardized_logits()) for m in masks]
    masked.fit(x, y, batch_size=16, epochs=3, initial_epoch=2, verbose=0, callbacks=[callback])
    assert callback.hardened_at == 2 * 4  # not again
    for layer, z in zip(masks, logits):
        k = ranking.keep_count(layer.units, 0.6, min_channels=2)
        mask = np.asarray(layer.mask)
        assert mask.sum() == k == float(layer.keep)
        assert set(np.nonzero(mask)[0].tolist()) == set(np.argsort(-z)[:k].tolist())
        np.testing.assert_array_equal(np.asarray(layer.channel_scale()), mask)


def test_soft_topk_mask_formula():
    layer = SoftTopKMask(5, seed=3)
    layer.build((None, 5))
    logits = np.array([0.3, -1.0, 2.0, 0.1, -0.4], "float32")
    layer.logits.assign(logits)
    layer.keep.assign(2.0)
    layer.temperature.assign(0.5)
    z = (logits - logits.mean()) / logits.std(ddof=1)  # torch.std: unbiased
    x0 = np.quantile(z, 1 - 2 / 5)
    expected = 1 / (1 + np.exp(-(z - x0) / 0.5))
    np.testing.assert_allclose(np.asarray(layer.channel_scale()), expected, rtol=1e-5)


def test_l1_filter_local_global_min_channels_and_rounding():
    model = conv_bn_net(widths=(8, 8, 16))
    masked = tfc.wrap(model, "l1_filter")
    k = masked.get_layer("conv0").kernel
    norms = np.arange(1, 9, dtype="float32")
    k.assign(np.ones(k.shape, "float32") * norms)  # filter j has L1 norm 9 * (j + 1)
    tfc.prune(masked, 0.5, min_channels=1)
    assert np.nonzero(mask_values(masked)["conv0_mask"])[0].tolist() == [4, 5, 6, 7]
    tfc.prune(masked, 0.9, min_channels=3)
    assert mask_values(masked)["conv0_mask"].sum() == 3
    tfc.prune(masked, 0.7, round_to=4)  # keeps 3 -> rounded up to 4
    assert [v.sum() for v in mask_values(masked).values()] == [4, 4, 8]
    plan = tfc.prune(masked, 0.5, scope="global")
    assert sum(len(v) for v in plan.keep.values()) == 16


def test_ranking_global_counts_threshold_and_num_remove():
    scores = {0: np.array([1.0, 5.0, 3.0]), 1: np.array([0.5, 0.2, 4.0, 6.0])}
    keep = ranking.select(scores, ranking.RankingOptions(3 / 7, scope="global"))
    assert [keep[0].tolist(), keep[1].tolist()] == [[False, True, True], [False, False, True,
                                                                          True]]
    options = ranking.RankingOptions(threshold=3.5, scope="global", min_channels=1)
    keep = ranking.select(scores, options)
    assert [keep[0].sum(), keep[1].sum()] == [1, 2]
    alive = {0: np.array([True, True, False]), 1: np.ones(4, bool)}
    keep = ranking.select(scores, ranking.RankingOptions(num_remove=1, scope="global"), alive=alive)
    assert [keep[0].tolist(), keep[1].tolist()] == [[True, True, False], [True, False, True,
                                                                          True]]
    only_inf = {0: np.full(3, np.inf), 1: scores[1]}
    keep = ranking.select(only_inf, ranking.RankingOptions(0.5, scope="global"))
    assert keep[0].all() and keep[1].sum() == 2


def test_global_magnitude_one_threshold_over_all_layers():
    masked = tfc.wrap(_linear_net(), "magnitude")
    k1 = masked.get_layer("d1_wm").layer.kernel  # 3 x 4
    k2 = masked.get_layer("d2_wm").layer.kernel  # 4 x 2
    k1.assign(np.arange(1, 13, dtype="float32").reshape(3, 4) * 0.1)  # 0.1 .. 1.2
    k2.assign(-np.arange(1, 9, dtype="float32").reshape(4, 2))  # -1 .. -8
    achieved = prune_weights(masked, ratio=0.5, scope="global")
    # 20 weights, 10 masked: the ten smallest |w| are d1's 0.1 .. 1.0
    m1 = np.asarray(masked.get_layer("d1_wm").masks["kernel"])
    m2 = np.asarray(masked.get_layer("d2_wm").masks["kernel"])
    np.testing.assert_array_equal(m1.reshape(-1), [0] * 10 + [1, 1])
    np.testing.assert_array_equal(m2, np.ones((4, 2)))
    assert achieved == pytest.approx({"d1": 10 / 12, "d2": 0.0})
    np.testing.assert_array_equal(np.asarray(k1) == 0, m1 == 0)
    # iterative: the masked weights stay masked and count; 15 of 20 -> d2's -1 .. -5 go
    k1.assign(np.full((3, 4), 100.0, "float32"))  # masked weights cannot come back
    prune_weights(masked, ratio=0.75, scope="global")
    m1 = np.asarray(masked.get_layer("d1_wm").masks["kernel"])
    m2 = np.asarray(masked.get_layer("d2_wm").masks["kernel"])
    np.testing.assert_array_equal(m1.reshape(-1), [0] * 10 + [1, 1])
    np.testing.assert_array_equal(m2.reshape(-1), [0] * 5 + [1] * 3)
    # local, afresh: 50 % of each layer would unmask four of d1's zeroed weights and one of
    # d2's (the masks then counted 0.5 while they stayed zero): refused
    with pytest.raises(ValueError, match=re.escape(
            "has 0.75 of its masked weights pruned already, and pruning set them to zero: "
            "ratio=0.5 with keep_pruned=False would unmask 5 of them")):
        prune_weights(masked, ratio=0.5, keep_pruned=False)
    assert np.asarray(masked.get_layer("d1_wm").masks["kernel"]).sum() == 2  # unchanged
    fresh = tfc.wrap(_linear_net(), "magnitude")
    prune_weights(fresh, ratio=0.5, keep_pruned=False)  # nothing masked yet: allowed
    assert np.asarray(fresh.get_layer("d2_wm").masks["kernel"]).mean() == 0.5


def test_han_quality_times_std_rule():
    values = np.array([[0.1, -2.0], [0.5, 3.0], [-0.05, 1.0]], "float32")
    masked = tfc.wrap(_linear_net(), "magnitude")
    k = masked.get_layer("d1_wm").layer.kernel
    k.assign(np.resize(values, k.shape))
    v = np.asarray(k)
    prune_weights(masked, quality=0.5)
    expected = (np.abs(v) > 0.5 * v.std()).astype("float32")
    np.testing.assert_array_equal(np.asarray(masked.get_layer("d1_wm").masks["kernel"]),
                                  expected)
