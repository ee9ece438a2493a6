"""Parameter budgets during fit, and the default normalisation of a global Taylor ranking."""

import re

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.pruners import ranking
from tfcompress.pruners.budget import ratio_for_params

from .pruning_models import compile_model, conv_bn_net, data


@pytest.mark.slow
def test_params_budget_ends_at_the_parameter_target():
    x, y = data(48)
    full = conv_bn_net(widths=(8, 8, 16)).count_params()
    masked = compile_model(tfc.wrap(conv_bn_net(widths=(8, 8, 16)), "taylor"))
    callback = cb.StructuredPruning(
        schedules.Iterative(0.75, begin_step=1, end_step=5, frequency=2), method="taylor",
        scope="global", min_channels=2, budget="params")
    masked.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
    params = tfc.strip(masked).count_params()
    assert [step for step, _ in callback.events] == [1, 3, 5]
    # at most a quarter of the parameters, and no channel more than needed: the last
    # pruning step stopped at the first ranking ratio that met the budget
    assert 0.2 * full < params <= 0.25 * full


def test_prune_with_a_params_budget_keeps_what_the_callback_keeps():
    # one step of each, same criterion and options: the same channels, at most half the
    # parameters (the fewest lowest-ranked channels that get there)
    full = conv_bn_net(widths=(8, 8, 16)).count_params()
    by_prune = tfc.wrap(conv_bn_net(widths=(8, 8, 16)), "l1_filter")
    plan = tfc.prune(by_prune, 0.5, scope="global", min_channels=2, budget="params")
    by_callback = tfc.wrap(conv_bn_net(widths=(8, 8, 16)), "l1_filter")
    callback = cb.StructuredPruning(schedules.OneShot(0.5), scope="global", min_channels=2,
                                    budget="params")
    callback.set_model(by_callback)
    callback.on_train_begin()
    callback.prune_now(0.5)
    assert tfc.plan_from_masks(by_callback).keep == plan.keep
    assert 0.4 * full < tfc.strip(by_prune).count_params() <= 0.5 * full
    with pytest.raises(ValueError, match="budget='params' reads the ratio as a fraction of "
                                         "the model's params; .* num_remove=2"):
        tfc.prune(by_prune, num_remove=2, budget="params")
    with pytest.raises(ValueError, match="cost_table is read only by budget='latency'"):
        tfc.prune(by_prune, 0.5, budget="params", cost_table=object())


def test_params_budget_counts_models_with_keras_ops_operations():
    # a keras.ops operation (as in every keras_hub transformer's padding mask) holds no
    # weights: the count read its `.weights` and raised AttributeError
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="d1")(inputs)
    h = keras.layers.Dense(16, activation="relu", name="d2")(keras.ops.expand_dims(h, 1))
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(keras.layers.Flatten()(h)))
    by_ratio, by_budget = tfc.wrap(model), tfc.wrap(model)
    ratio, predicted = tfc.pruners.budget.ratio_for_compression(by_ratio, 2.0)
    tfc.prune(by_ratio, ratio)
    assert tfc.strip(by_ratio).count_params() == predicted <= model.count_params() / 2
    tfc.prune(by_budget, 0.5, budget="params")
    assert tfc.strip(by_budget).count_params() <= model.count_params() / 2


def test_an_unreachable_params_budget_raises_naming_the_most_that_can_be_removed():
    # prune(0.9, budget="params", min_channels=8) removed 0.321 of the parameters, silently
    masked = tfc.wrap(conv_bn_net(widths=(8, 8, 16)), "l1_filter")
    reach = ("the most a ranking can remove leaves 1356 of 1996 parameters (1.47x fewer, "
             "0.321 of them removed); of these, min_channels=8 keeps 1309; the other 47 are "
             "those of the channels no mask may remove (model inputs and outputs, pinned or "
             "excluded layers) and of the one channel every group keeps.")
    asked = ("No ratio reaches ratio=0.9 of the parameters removed (budget='params') in "
             "model 'conv_bn_net': ")
    with pytest.raises(ValueError, match=re.escape(asked + reach)):
        tfc.prune(masked, 0.9, budget="params", min_channels=8)
    callback = cb.StructuredPruning(schedules.OneShot(0.9), min_channels=8, budget="params")
    callback.set_model(masked)
    callback.on_train_begin()
    with pytest.raises(ValueError, match=re.escape(asked + reach)):
        callback.prune_now(0.9)
    assert [len(k) for k in tfc.plan_from_masks(masked).keep.values()] == [8, 8, 16]
    with pytest.raises(ValueError, match=re.escape(
            "No ratio reaches 10x fewer parameters in model 'conv_bn_net': " + reach)):
        tfc.pruners.ratio_for_compression(
            masked, 10, options=ranking.RankingOptions(min_channels=8))
    with pytest.raises(ValueError, match=re.escape(
            "leaves 47 of 1996 parameters (42.5x fewer, 0.976 of them removed); of these, 47 "
            "are those of the channels no mask may remove")):
        tfc.prune(masked, 0.99, budget="params")


def test_params_budget_rejects_counts_and_thresholds():
    with pytest.raises(ValueError, match="budget='params'"):
        cb.StructuredPruning(schedules.OneShot(0.5), method="taylor", num_remove=2, budget="params")
    with pytest.raises(ValueError, match="Received: budget='flops'"):
        cb.StructuredPruning(schedules.OneShot(0.5), method="taylor", budget="flops")


def test_mean_normalize_compares_channels_with_their_layer_mean():
    # two layers with the same relative importances: l2-normalised, the wide layer's
    # scores are half as large; normalize="mean" cuts both layers alike
    rel = np.linspace(1.0, 2.0, 4)
    wide = np.repeat(rel, 4)
    scores = {0: rel / np.linalg.norm(rel), 1: wide / np.linalg.norm(wide)}
    options = ranking.RankingOptions(0.5, scope="global", normalize="mean")
    keep = ranking.select(scores, options)
    assert keep[0].sum() == 2 and keep[1].sum() == 8
    keep_l2 = ranking.select(scores, ranking.RankingOptions(0.5, scope="global", normalize="none"))
    assert keep_l2[0].sum() == 4  # l2 alone: the narrow layer is never cut


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "2", True])
def test_compression_must_be_a_finite_number(bad):
    # nan was accepted (nan < 1 is False) and the search pruned 99.9 % of the channels
    masked = tfc.wrap(conv_bn_net(widths=(8, 8, 16)))
    with pytest.raises(ValueError, match=re.escape(
            f"compression must be a finite number >= 1. Received: compression={bad!r}")):
        tfc.pruners.ratio_for_compression(masked, bad)
    assert tfc.pruners.ratio_for_compression(masked, np.float32(2.0))[0] < 0.999


@pytest.mark.parametrize("bad", [0, 0.0, -1e-3, float("nan"), float("inf"), "1e-3", True, None])
def test_tolerance_must_be_a_finite_number_above_zero(bad):
    # tolerance=0 never returned: the bisection `while hi - lo > tolerance` cannot get
    # below the spacing of two adjacent floats
    masked = tfc.wrap(conv_bn_net(widths=(8, 8, 16)))
    message = re.escape(f"tolerance must be a finite number > 0. Received: tolerance={bad!r}")
    with pytest.raises(ValueError, match=message):
        tfc.pruners.ratio_for_compression(masked, 2, tolerance=bad)
    graph, sites, scores = tfc.pruners.score_groups(masked)
    with pytest.raises(ValueError, match=message):
        ratio_for_params(graph, sites, scores, 100, tolerance=bad)


def test_ratio_for_compression_refuses_options_with_a_ratio():
    # options=RankingOptions(0.9) returned the 2x ratio as if no ratio had been given
    masked = tfc.wrap(conv_bn_net(widths=(8, 8, 16)))
    with pytest.raises(ValueError, match=re.escape(
            "ratio_for_compression searches the ratio; options cannot set it (it would be "
            "left unread). Received: options.ratio=0.9")):
        tfc.pruners.ratio_for_compression(masked, 2, options=ranking.RankingOptions(0.9))
    assert tfc.pruners.ratio_for_compression(
        masked, 2, options=ranking.RankingOptions(scope="global"))[0] < 0.999
