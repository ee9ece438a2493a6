"""The AdapNet++ compression recipe: Taylor scores l2-normalised per layer, then one
global threshold, exactly as computed by hand (and not what "mean" keeps)."""

import numpy as np
import pytest

from tfcompress.pruners import ranking

from .test_scripts_helpers import REPO, parse

# A narrow layer and a wide one: l2 divides the wide one by a larger norm (~sqrt(n)),
# so its channels fall below the narrow layer's middle one; "mean" keeps them above.
SCORES = {0: np.array([1.0, 5.0, 9.0]), 1: np.arange(10.0, 20.0)}
RATIO = 0.62  # 8 of 13 channels


def _by_hand(scores, n_remove, normalise):
    """Normalise each layer, pool, remove the `n_remove` lowest (one global threshold)."""
    pooled = np.concatenate([normalise(s) for s in scores.values()])
    threshold = np.sort(pooled)[n_remove - 1]
    keep, start = {}, 0
    for g, s in scores.items():
        keep[g] = pooled[start : start + len(s)] > threshold
        start += len(s)
    return keep


def _select(normalize):
    options = ranking.RankingOptions(RATIO, scope="global", normalize=normalize)
    return ranking.select(SCORES, options)


def test_taylor_l2_recipe_keeps_the_l2_ranking():
    n_remove = 8
    expected = _by_hand(SCORES, n_remove, lambda s: s / np.linalg.norm(s))
    keep = _select("l2")
    for g in SCORES:
        np.testing.assert_array_equal(keep[g], expected[g])
    assert [int(k.sum()) for k in keep.values()] == [2, 3]
    mean = _select("mean")
    np.testing.assert_array_equal(
        mean[0], _by_hand(SCORES, n_remove, lambda s: s / np.abs(s).mean())[0]
    )
    np.testing.assert_array_equal(
        mean[1], _by_hand(SCORES, n_remove, lambda s: s / np.abs(s).mean())[1]
    )
    assert [int(k.sum()) for k in mean.values()] == [1, 4]  # l2 is not a no-op


def test_l2_then_mean_is_mean_alone():
    # why "mean" cannot carry the recipe: s/|s| / mean(s/|s|) == s / mean(s)
    for s in SCORES.values():
        l2 = s / np.linalg.norm(s)
        np.testing.assert_allclose(
            ranking.normalized(l2, "mean"), ranking.normalized(s, "mean"), rtol=1e-12
        )


def test_l2_normalises_over_the_channels_still_alive():
    # jacobgil's normalize_ranks_per_layer divides by the l2 norm of the filters a layer
    # still has (pruned ones were removed); a pruned channel's score must not count.
    # A's pruned channel scores 3: counted, it would shrink A's live scores below B's.
    scores = {"A": np.array([0.5, 1.0, 1.0, 3.0]), "B": np.array([0.45, 1.0, 1.0, 0.0])}
    alive = {g: np.array([True, True, True, False]) for g in scores}
    options = ranking.RankingOptions(0.375, scope="global", normalize="l2", min_channels=1)
    keep = ranking.select(scores, options, alive=alive)
    # by hand: A -> [0.333, 0.667, 0.667], B -> [0.303, 0.674, 0.674]: B's channel 0 goes
    assert {g: np.flatnonzero(k).tolist() for g, k in keep.items()} == {
        "A": [0, 1, 2], "B": [1, 2]
    }
    np.testing.assert_allclose(
        ranking.normalized(scores["A"], "l2", alive["A"])[:3], [1 / 3, 2 / 3, 2 / 3]
    )


@pytest.mark.parametrize(
    "name", ["adapnet_pp_cityscapes_taylor.cfg", "adapnet_pp_mosaic_taylor_small.cfg"]
)
def test_taylor_adapnet_configs_use_the_l2_recipe(name, monkeypatch):
    monkeypatch.chdir(REPO)
    config = parse("compress", [f"--flagfile=configs/{name}"])
    assert (config.prune.method, config.prune.scope, config.prune.normalize) == (
        "taylor",
        "global",
        "l2",
    )
    assert config.prune.taylor_aggregation == "sum_then_abs"  # the seed's
    assert config.train.weight_decay_mode == "coupled"
    with open(f"configs/{name}") as f:
        header = f.read().split("\n--", 1)[0]
    assert "l2" in header and "global" in header


def test_normalize_flag_reaches_the_callback_and_the_budget_search(monkeypatch):
    from tfcompress.training import compress_lib, methods

    config = parse(
        "compress",
        [
            "--model=lenet5",
            "--num_classes=10",
            "--train_data=x",
            "--checkpoint=y",
            "--epochs=3",
            "--method=taylor",
            "--compression=2",
            "--normalize=l2",
        ],
    )
    prune = config.prune
    assert prune.normalize == "l2"
    callback = methods.METHODS["taylor"].callback(prune, 0.5, methods.Timeline(1, 2, 1, 3))
    assert callback.options.normalize == "l2"
    seen = {}

    def search(masked, compression, *, criterion, options):
        seen["options"] = options
        return 0.25, 100

    monkeypatch.setattr(compress_lib.pruners, "ratio_for_compression", search)
    assert compress_lib.resolve_ratio(None, prune) == 0.25
    assert seen["options"].normalize == "l2"
