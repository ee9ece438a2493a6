"""`RankingOptions`: one ranking-options object, validated once (issue 14), and what
prune says when there is nothing to rank."""

import dataclasses
import re

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.pruners import ranking
from tfcompress.pruners.budget import ratio_for_params
from tfcompress.pruners.ranking import RankingOptions

SCORES = {0: np.array([1.0, 5.0, 3.0]), 1: np.array([0.5, 0.2, 4.0, 6.0])}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ratio=1.0), "ratio must be a number in [0, 1). Received: ratio=1.0"),
        (dict(ratio=True), "ratio must be a number in [0, 1). Received: ratio=True"),
        (dict(ratio=0.5, threshold=1.0), "Give exactly one of ratio, threshold or num_remove"),
        (dict(threshold="low"), "threshold must be a number. Received: threshold='low'"),
        (dict(num_remove=-1), "num_remove must be an integer >= 0. Received: num_remove=-1"),
        (dict(scope="layer"), "scope must be one of ('local', 'global'). Received: scope='layer'"),
        (dict(min_channels=0), "min_channels must be an integer >= 1. Received: min_channels=0"),
        (dict(round_to=2.0), "round_to must be an integer >= 1. Received: round_to=2.0"),
        (dict(normalize="z"), "normalize must be one of ['l2', 'max', 'mean', 'none']"),
        (dict(rule="vggprune"), "rule must be one of ('safe', 'strict_quantile')"),
        (dict(rule="strict_quantile", threshold=0.1), "takes no threshold or num_remove"),
        (dict(rule="strict_quantile", min_channels=2), "applies no channel floor"),
    ],
)
def test_ranking_options_are_validated_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RankingOptions(**kwargs)


def test_numpy_scalars_are_numbers_kept_as_python_numbers():
    options = RankingOptions(np.float32(0.5), min_channels=np.int64(2), round_to=np.int32(4))
    assert (options.ratio, options.min_channels, options.round_to) == (0.5, 2, 4)
    assert type(options.ratio) is float and type(options.min_channels) is int
    assert RankingOptions(num_remove=np.int64(3)).num_remove == 3
    with pytest.raises(ValueError, match=r"Received: ratio=np.float32\(1.0\)"):
        RankingOptions(np.float32(1.0))
    with pytest.raises(ValueError, match=r"Received: ratio=np.True_"):
        RankingOptions(np.True_)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    masked = tfc.wrap(model, "l1_filter")
    tfc.prune(masked, ratio=np.float32(0.5))  # refused before: "a number ... np.float32(0.5)"
    assert int(masked.get_layer("dense_mask").kept().sum()) == 4


def test_a_scope_left_out_is_told_from_local_and_ranks_locally():
    # scope defaulted to "local", so a "local" given could not be told from none (which
    # budget="latency" refuses: tests/test_latency_budget.py)
    default, local = RankingOptions(3 / 7), RankingOptions(3 / 7, scope="local")
    assert default.scope is None and default != local
    assert default.with_defaults() == local.with_defaults() == local
    assert RankingOptions(3 / 7, scope="global").with_defaults().scope == "global"
    for options in (default, local):  # the fields round-trip, None as None
        assert RankingOptions(**dataclasses.asdict(options)) == options
    def kept(options):
        return {g: k.tolist() for g, k in ranking.select(SCORES, options).items()}

    assert kept(default) == kept(local) != kept(RankingOptions(3 / 7, scope="global"))
    strict = dict(rule="strict_quantile")
    assert kept(RankingOptions(0.5, **strict)) == kept(RankingOptions(0.5, scope="local", **strict))


def test_ranking_options_are_frozen_and_keyword_only_after_ratio():
    options = RankingOptions(0.5, scope="global")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.ratio = 0.2
    with pytest.raises(TypeError):
        RankingOptions(0.5, "global")


def test_select_needs_exactly_one_amount_and_an_options_object():
    with pytest.raises(ValueError, match="Give exactly one of ratio, threshold or num_remove"):
        ranking.select(SCORES, RankingOptions(scope="global"))
    with pytest.raises(TypeError, match="options must be a .*RankingOptions. Received: options="):
        ranking.select(SCORES, {"ratio": 0.5})


def test_with_defaults_fills_only_a_missing_normalize():
    assert RankingOptions(0.5).with_defaults(normalize="mean").normalize == "mean"
    assert RankingOptions(0.5, normalize="l2").with_defaults(normalize="mean").normalize == "l2"
    # None selects like "none"
    keep = ranking.select(SCORES, RankingOptions(3 / 7, scope="global"))
    same = ranking.select(SCORES, RankingOptions(3 / 7, scope="global", normalize="none"))
    assert all((keep[g] == same[g]).all() for g in SCORES)


def test_with_ratio_leaves_an_explicit_count_or_threshold_alone():
    assert RankingOptions().with_ratio(0.3).ratio == 0.3
    assert RankingOptions(num_remove=2).with_ratio(0.3) == RankingOptions(num_remove=2)
    assert RankingOptions(threshold=1.0).with_ratio(0.3).ratio is None


def test_strict_quantile_removes_one_more_than_safe_at_the_cut():
    scores = {0: np.arange(1.0, 11.0)}  # 10 distinct scores
    safe = ranking.select(scores, RankingOptions(0.3))
    strict = ranking.select(scores, RankingOptions(0.3, rule="strict_quantile"))
    assert safe[0].sum() == 7 and strict[0].sum() == 6  # floor(3) vs floor(3) + 1
    # local strict_quantile cuts each group at its own sorted value; it may empty one
    keep = ranking.select({0: np.ones(4), 1: np.arange(4.0)},
                          RankingOptions(0.5, rule="strict_quantile"))
    assert [keep[0].sum(), keep[1].sum()] == [0, 1]


def test_budget_search_takes_ranking_options_without_an_amount():
    with pytest.raises(ValueError, match="cannot set threshold or num_remove"):
        ratio_for_params(None, [], SCORES, 10, RankingOptions(threshold=1.0))
    with pytest.raises(TypeError, match="options must be a .*RankingOptions"):
        ratio_for_params(None, [], SCORES, 10, {"scope": "global"})


def test_prune_says_wrap_found_no_prunable_group():
    inputs = keras.Input((6,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(inputs), name="tiny")
    masked = tfc.wrap(model, "l1_filter")
    with pytest.raises(ValueError, match=(
        r"Model 'tiny.*' has no prunable channel group, so `tfcompress.wrap` placed no mask "
        r"layer and there is nothing to prune: every group of channels is pinned by "
        r"model input \(1 group\), model output \(1 group\)"
    )):
        tfc.prune(masked, 0.5)


def test_prune_after_wrap_excluded_every_group_says_exclude_pinned_it(tmp_path):
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(5, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(hidden), name="two")
    masked = tfc.wrap(model, "l1_filter", exclude=["head"])
    with pytest.raises(ValueError, match=r"no prunable channel group, so `tfcompress.wrap` "
                       r"placed no mask .* excluded layer head \(1 group\)"):
        tfc.prune(masked, 0.5)  # wrap's exclude list is known without a mask to carry it
    path = tmp_path / "two.keras"
    masked.save(path)  # a file keeps no exclude list when no mask carries it
    with pytest.raises(ValueError, match="exclude` list pinned every channel group"):
        tfc.prune(keras.saving.load_model(path), 0.5)


def test_pruned_channels_stay_pruned_under_a_lower_ratio():
    """A second step at a lower ratio than reached brought masked channels back (16 kept
    after 8 of 16 were pruned, asked for 0.25: 12); with alive they stay pruned."""
    scores = {0: np.arange(16.0), 1: np.arange(8.0)}
    alive = {0: np.arange(16) >= 8, 1: np.arange(8) >= 4}
    for scope in ("local", "global"):
        keep = ranking.select(scores, RankingOptions(0.25, scope=scope, round_to=4), alive=alive)
        assert [keep[0].sum(), keep[1].sum()] == [8, 4], scope
        assert not (keep[0] & ~alive[0]).any() and not (keep[1] & ~alive[1]).any()
    fresh = ranking.select(scores, RankingOptions(0.25))  # no alive: a fresh ranking
    assert [fresh[0].sum(), fresh[1].sum()] == [12, 6]
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16), keras.layers.Dense(2)])
    masked = tfc.wrap(model, "l1_filter")
    tfc.prune(masked, 0.5)
    tfc.prune(masked, 0.25, keep_pruned=True)
    assert int(masked.get_layer("dense_mask").kept().sum()) == 8
    weights = tfc.wrap(model, "magnitude")
    tfc.pruners.prune_weights(weights, 0.5)
    sparsity = tfc.pruners.prune_weights(weights, 0.25)  # keep_pruned=True by default
    assert min(sparsity.values()) >= 0.5  # (0.25 before: half the masked weights back)


def test_magnitude_prune_keeps_the_zeroed_weights_pruned():
    """prune(w, 0.5) then prune(w, 0.25) on a magnitude model: the plan and mask_stats
    said 0.25, while the weights the first step zeroed stayed zero (keep_pruned was
    False there too). The magnitude path keeps them pruned by default now."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, name="d1"),
                              keras.layers.Dense(2, name="d2")])
    weights = tfc.wrap(model, "magnitude")
    tfc.prune(weights, 0.5)
    sparsity = tfc.prune(weights, 0.25).weight_sparsity
    assert min(sparsity.values()) >= 0.5
    stripped = tfc.strip(weights)
    zeros = float(np.mean(np.asarray(stripped.get_layer("d1").kernel) == 0))
    assert sparsity["d1"] == pytest.approx(zeros)
    assert tfc.pruners.mask_stats(weights)["weight_sparsity"] >= 0.5
    with pytest.raises(ValueError, match=re.escape(
            "ratio=0.25 with keep_pruned=False would unmask") + ".*Received: keep_pruned=False"):
        tfc.prune(weights, 0.25, keep_pruned=False)
    for masked in (weights, tfc.wrap(model, "l1_filter")):
        with pytest.raises(ValueError, match=re.escape(
                "keep_pruned must be True or False. Received: keep_pruned='False'")):
            tfc.prune(masked, 0.5, keep_pruned="False")
    with pytest.raises(ValueError, match="Received: keep_pruned=0"):
        tfc.pruners.prune_weights(weights, 0.5, keep_pruned=0)


def test_the_methods_min_channels_applies_however_the_options_come():
    """soft_topk's min_channels (8) applied to loose arguments only: options= and
    ratio_for_compression ranked with 1, so the budget search predicted other channels
    than prune kept."""
    from tfcompress import callbacks, schedules

    from .pruning_models import conv_bn_net

    def wrapped():
        return tfc.wrap(conv_bn_net(widths=(12, 12, 24)), "soft_topk")

    def kept(masked):
        return [len(v) for v in tfc.plan_from_masks(masked).keep.values()]

    assert RankingOptions().min_channels is None
    loose, given = wrapped(), wrapped()
    own = "soft_topk"  # on purpose: prune refuses the untrained logits without criterion=
    tfc.prune(loose, 0.75, criterion=own)
    tfc.prune(given, options=RankingOptions(0.75), criterion=own)
    assert kept(loose) == kept(given) == [8, 8, 8]
    explicit = wrapped()
    tfc.prune(explicit, options=RankingOptions(0.75, min_channels=2), criterion=own)
    assert kept(explicit) == [3, 3, 6]
    strict = wrapped()  # the strict rule applies no floor, the method's neither
    tfc.prune(strict, options=RankingOptions(0.5, rule="strict_quantile"), criterion=own)
    assert kept(strict) == [5, 5, 11]
    callback = callbacks.StructuredPruning(schedules.OneShot(0.75), options=RankingOptions(),
                                           criterion="l1_filter")  # SoftTopK trains logits
    callback.set_model(wrapped())
    callback.on_train_begin()
    callback.prune_now(0.75)
    assert list(callback.kept_channels().values()) == [8, 8, 8]
    masked = wrapped()
    ratio, predicted = tfc.pruners.ratio_for_compression(masked, 1.5)
    tfc.prune(masked, ratio, criterion=own)
    assert tfc.strip(masked).count_params() == predicted
