"""Pruning to a latency budget with hand-built cost tables: the channel counts the greedy
cut picks, computed by hand in the comments, and bad targets refused by name."""

import re

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tfcompress.latency import CostTable, LayerCost
from tfcompress.pruners import apply_plan
from tfcompress.pruners.latency_budget import (
    UnreachableTarget,
    allowed_counts,
    plan_for_latency,
)
from tfcompress.pruners.ranking import RankingOptions

# Per-channel scores (l1_filter: each 1x1 filter has one nonzero weight), four channels
# per block of the table's multiple (4), lowest block first. Block sums:
# group A (conv_a's 16 filters): 1, 4, 8, 16;  group B (conv_b's 16): 1.6, 6, 12, 16.
A_SCORES = np.repeat([0.25, 1.0, 2.0, 4.0], 4)
B_SCORES = np.repeat([0.4, 1.5, 3.0, 4.0], 4)
COUNTS = (4, 8, 12, 16)


def _net():
    """conv_a (16) -> conv_b (16) -> GAP -> dense (3): groups A (conv_a's outputs, read by
    conv_b) and B (conv_b's outputs, read by the dense head); filters shuffled so the
    kept channels are not simply the first ones."""
    inputs = keras.Input((4, 4, 3))
    x = layers.Conv2D(16, 1, use_bias=False, name="conv_a")(inputs)
    x = layers.Conv2D(16, 1, use_bias=False, name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, layers.Dense(3, name="dense")(x))
    rng = np.random.default_rng(0)
    for name, scores in (("conv_a", A_SCORES), ("conv_b", B_SCORES)):
        layer = model.get_layer(name)
        kernel = np.zeros(layer.kernel.shape, np.float32)
        kernel[0, 0, 0, :] = rng.permutation(scores)
        layer.kernel.assign(kernel)
    return model


def _table(base_ms=1.0):
    """conv_a: kA / 4 ms; conv_b: kA * kB / 64 ms; dense: kB / 16 ms; the rest 1 ms.
    Full model: 1 + 4 + 4 + 1 = 10 ms."""
    return CostTable(
        {
            "conv_a": LayerCost(("out",), (COUNTS,), [c / 4 for c in COUNTS]),
            "conv_b": LayerCost(("in", "out"), (COUNTS, COUNTS),
                                [[a * b / 64 for b in COUNTS] for a in COUNTS]),
            "dense": LayerCost(("in",), ((4, 16),), [0.25, 1.0]),
        },
        base_ms=base_ms, multiple=4)


def test_half_latency_cuts_least_importance_per_ms_then_gives_back():
    masked = tfc.wrap(_net(), "l1_filter")
    budget = plan_for_latency(masked, _table(), target_latency=0.5, min_channels=1,
                              normalize="none")
    # Target 5 ms. Each step: importance lost / ms saved over the next counts down.
    # (16,16) 10 ms: A->12 loses 1 for 2 ms (conv_a 1 + conv_b 1) = 0.5; B->12 1.6/1.25;
    #   A->8 5/4; ... -> A=12, 8 ms.
    # (12,16): A->8 4/2 = 2; B->12 1.6/(0.75 + 0.25) = 1.6 -> B=12, 7 ms.
    # (12,12): A->8 4/(1 + 0.75) = 2.29; A->4 12/3.5; B->8 6/1 -> A=8, 5.25 ms.
    # (8,12): A->4 8/(1 + 0.75) = 4.57; B->8 6/0.75 = 8; B->4 18/1.5 -> A=4, 3.5 ms.
    # Give back 1.5 ms: A->8 needs 1 + 0.75 = 1.75 (too much); B->16 needs 0.25 + 0.25
    #   for 16 -> B=16, 4 ms; then A->8 needs 1 + 1 = 2 > 1: done at (4, 16), 4 ms.
    assert budget.kept == {"conv_a_mask": 4, "conv_b_mask": 16}
    assert budget.target_ms == pytest.approx(5.0)
    assert budget.original_ms == pytest.approx(10.0)
    assert budget.predicted_ms == pytest.approx(4.0)
    # the best channels are the ones kept: conv_a's top block (score 4)
    apply_plan(masked, budget.plan)
    compact = tfc.strip(masked)
    kernel = np.asarray(compact.get_layer("conv_a").kernel)
    np.testing.assert_allclose(np.sort(np.abs(kernel[0, 0, 0])), [4.0] * 4)
    assert "predicted 4.000 ms for a target of 5.000 ms" in budget.summary()


def test_target_in_ms_never_stops_at_a_slower_narrower_count():
    # conv_b's kernels run 16 outputs faster than 8 or 12: conv_b(kA, kB) = kA/16, kA/8,
    # kA/8, 3 kA/32 for kB = 4, 8, 12, 16 (1, 2, 2, 1.5 ms at kA = 16). Full model:
    # 1.5 + 4 + 1.5 + 1 = 8 ms; target 7 ms.
    # (16,16): A->12 loses 1 for conv_a 1 + conv_b (1.5 - 1.125) = 1.375 ms (0.73);
    #   A->8 5 / 2.75; A->4 13 / 4.125; B->12 saves -0.5 + 0.25 < 0 and B->8
    #   -0.5 + 0.5 = 0 (no candidates: narrower is not faster); B->4 19.6 / 1.25
    #   -> A=12, 6.625 ms <= 7. Give back 0.375 ms: A->16 needs 1.375: done at (12, 16).
    conv_b = [[a / 16, a / 8, a / 8, 3 * a / 32] for a in COUNTS]
    layers_ = {**_table().layers, "conv_b": LayerCost(("in", "out"), (COUNTS, COUNTS), conv_b)}
    masked = tfc.wrap(_net(), "l1_filter")
    budget = plan_for_latency(masked, CostTable(layers_, base_ms=1.5, multiple=4),
                              target_ms=7.0, min_channels=1, normalize="none")
    assert budget.original_ms == pytest.approx(8.0)
    assert budget.kept == {"conv_a_mask": 12, "conv_b_mask": 16}
    assert budget.predicted_ms == pytest.approx(6.625)


def test_only_cuts_the_groups_named_and_reports_their_floor():
    # only conv_b's group may change; conv_a keeps 16: conv_a 4 ms, conv_b kB / 4,
    # dense kB / 16, base 1 -> 5 + 5 kB / 16 ms. Target 7 ms: kB <= 6.4 -> kB = 4,
    # 6.25 ms; giving back B -> 8 costs 1.25 ms (7.5 > 7): done at (16, 4).
    masked = tfc.wrap(_net(), "l1_filter")
    for only in (["conv_b_mask"], {"conv_b_mask": [0]}.keys(), lambda n: n.startswith("conv_b")):
        budget = plan_for_latency(masked, _table(), target_ms=7.0, min_channels=1,
                                  normalize="none", only=only)
        assert budget.kept == {"conv_a_mask": 16, "conv_b_mask": 4}
        assert budget.predicted_ms == pytest.approx(6.25)
    # half the latency (5 ms) is below what cutting conv_b alone reaches: 5 + 5 * 4 / 16
    with pytest.raises(UnreachableTarget, match="below 6.25 ms") as caught:
        plan_for_latency(masked, _table(), target_latency=0.5, min_channels=1,
                         normalize="none", only=["conv_b_mask"])
    assert caught.value.floor_ms == pytest.approx(6.25)


def test_only_refuses_unknown_names_empty_selections_and_other_types():
    masked = tfc.wrap(_net(), "l1_filter")
    with pytest.raises(ValueError, match=re.escape(
            "only names layers that are not mask layers of model") + ".*\\['conv_b'\\]"):
        plan_for_latency(masked, _table(), target_latency=0.5, only=["conv_b"])
    with pytest.raises(ValueError, match="only selects none of the 2 mask layers"):
        plan_for_latency(masked, _table(), target_latency=0.5, only=lambda name: False)
    with pytest.raises(TypeError, match="Received: only='conv_b_mask'"):
        plan_for_latency(masked, _table(), target_latency=0.5, only="conv_b_mask")


def test_predict_masked_reads_the_masks_as_they_are():
    masked = tfc.wrap(_net(), "l1_filter")
    assert tfc.pruners.predict_masked(masked, _table()) == pytest.approx((10.0, 10.0))
    budget = plan_for_latency(masked, _table(), target_latency=0.5, min_channels=1,
                              normalize="none")
    apply_plan(masked, budget.plan)  # (4, 16): 1 + 1 + 1 + 1 = 4 ms
    assert tfc.pruners.predict_masked(masked, _table()) == pytest.approx((4.0, 10.0))
    with pytest.raises(TypeError, match="Received: cost_table=None"):
        tfc.pruners.predict_masked(masked, None)


def test_allowed_counts_are_multiples_from_the_floor_and_the_full_width():
    assert allowed_counts(16, 4, 1) == [4, 8, 12, 16]
    assert allowed_counts(20, 8, 10) == [16, 20]
    assert allowed_counts(6, 8, 1) == [6]


def test_bad_targets_and_tables_are_refused_by_name():
    masked = tfc.wrap(_net(), "l1_filter")
    table = _table()
    with pytest.raises(ValueError, match="Received: target_latency=None, target_ms=None"):
        plan_for_latency(masked, table)
    with pytest.raises(ValueError, match="Received: target_latency=0.5, target_ms=3"):
        plan_for_latency(masked, table, target_latency=0.5, target_ms=3)
    with pytest.raises(ValueError, match=r"in \(0, 1\].*Received: target_latency=1.5"):
        plan_for_latency(masked, table, target_latency=1.5)
    with pytest.raises(ValueError, match="Received: target_latency=0"):
        plan_for_latency(masked, table, target_latency=0)
    with pytest.raises(ValueError, match="target_ms must be a number > 0. Received: target_ms=-2"):
        plan_for_latency(masked, table, target_ms=-2)
    with pytest.raises(ValueError, match="Received: min_channels=0"):
        plan_for_latency(masked, table, target_latency=0.5, min_channels=0)
    with pytest.raises(ValueError, match="Received: normalize='z'"):
        plan_for_latency(masked, table, target_latency=0.5, normalize="z")
    with pytest.raises(TypeError, match="Received: cost_table={}"):
        plan_for_latency(masked, {}, target_latency=0.5)
    # the narrowest allowed widths (4, 4): 1 + 1 + 0.25 + 0.25 = 2.5 ms
    with pytest.raises(UnreachableTarget, match="no cut saves predicted time below 2.5 ms") as e:
        plan_for_latency(masked, table, target_ms=2.0, min_channels=1)
    assert e.value.floor_ms == pytest.approx(2.5)
    missing = CostTable({k: v for k, v in table.layers.items() if k != "conv_b"})
    with pytest.raises(ValueError, match="no entry for layer 'conv_b'"):
        plan_for_latency(masked, missing, target_latency=0.5)
    wider = CostTable({**table.layers, "dense": LayerCost(("in",), ((4, 32),), [1, 2])})
    with pytest.raises(ValueError, match="'dense' has 32 input channels at full width; the "
                                         "layer has 16"):
        plan_for_latency(masked, wider, target_latency=0.5)


def test_plan_for_latency_refuses_data_a_criterion_reads_not():
    # plan_for_latency(data=) with l1_filter (the method's and taylor's budget criterion)
    # accepted the batches and left them unread
    x = np.zeros((2, 4, 4, 3), "float32")
    for method in ("l1_filter", "taylor"):
        with pytest.raises(ValueError, match=re.escape(
                "Criterion 'l1_filter' scores channels from the model's weights and reads "
                "no data; data would be left unread.")):
            plan_for_latency(tfc.wrap(_net(), method), _table(), target_latency=0.5,
                             data=[(x, np.zeros(2))])


def _latency_callback(schedule=None, **kwargs):
    from tfcompress import callbacks, schedules

    return callbacks.StructuredPruning(schedule or schedules.OneShot(0.5), budget="latency",
                                       **kwargs)


def test_structured_pruning_latency_budget_steps_from_the_kept_channels():
    masked = tfc.wrap(_net(), "l1_filter")
    callback = _latency_callback(cost_table=_table(), normalize="none")
    callback.set_model(masked)
    callback.on_train_begin()
    callback.prune_now(0.5)  # target 0.5 x 10 ms: the plan_for_latency test's (4, 16), 4 ms
    assert callback.kept_channels() == {"conv_a_mask": 4, "conv_b_mask": 16}
    assert callback.last_budget.predicted_ms == pytest.approx(4.0)
    first = {m: set(k) for m, k in callback.last_budget.plan.keep.items()}
    callback.prune_now(0.7)  # target 3 ms, from (4, 16): conv_a stays at 4 (its floor);
    # B->12 loses 1.6 for conv_b 0.25 + dense 0.25 ms (3.2 / ms), B->8 7.6 / 1 ms:
    # B=12, 3.5 ms; then B->8 6 / 0.5, B->4 18 / 1 -> B=8, 3.0 ms; nothing fits back.
    assert callback.kept_channels() == {"conv_a_mask": 4, "conv_b_mask": 8}
    assert callback.last_budget.target_ms == pytest.approx(3.0)
    assert callback.last_budget.predicted_ms == pytest.approx(3.0)
    for mask, kept in callback.last_budget.plan.keep.items():
        assert set(kept) <= first[mask]  # pruned channels stay pruned


def test_structured_pruning_latency_budget_cuts_only_the_groups_named():
    # as test_only_cuts_the_groups_named_and_reports_their_floor: conv_a keeps 16, and a
    # target of 0.7 x 10 ms (7 ms) leaves conv_b 4 (6.25 ms)
    for only in (["conv_b_mask"], lambda n: n.startswith("conv_b")):
        masked = tfc.wrap(_net(), "l1_filter")
        callback = _latency_callback(cost_table=_table(), normalize="none", only=only)
        callback.set_model(masked)
        callback.on_train_begin()
        callback.prune_now(0.3)
        assert callback.kept_channels() == {"conv_a_mask": 16, "conv_b_mask": 4}
        assert callback.last_budget.predicted_ms == pytest.approx(6.25)


def test_prune_with_a_latency_budget_plans_as_the_callback():
    # one tfc.prune step: the plan_for_latency test's (4, 16) at half of 10 ms; with only=
    # conv_b's group, 0.7 of 10 ms leaves it 4 (6.25 ms)
    masked = tfc.wrap(_net(), "l1_filter")
    tfc.prune(masked, 0.5, budget="latency", cost_table=_table(), normalize="none")
    assert {k: len(v) for k, v in tfc.plan_from_masks(masked).keep.items()} == {
        "conv_a_mask": 4, "conv_b_mask": 16}
    assert tfc.pruners.predict_masked(masked, _table())[0] == pytest.approx(4.0)
    masked = tfc.wrap(_net(), "l1_filter")
    tfc.prune(masked, 0.3, budget="latency", cost_table=_table(), normalize="none",
              only=["conv_b_mask"])
    assert tfc.pruners.predict_masked(masked, _table())[0] == pytest.approx(6.25)
    with pytest.raises(TypeError, match="budget='latency' needs cost_table"):
        tfc.prune(masked, 0.5, budget="latency")
    with pytest.raises(ValueError, match="only is read only by budget='latency'"):
        tfc.prune(masked, 0.5, only=["conv_b_mask"])
    with pytest.raises(ValueError, match="no entry for layer 'conv_b'"):
        tfc.prune(masked, 0.5, budget="latency",
                  cost_table=CostTable({"conv_a": _table().layers["conv_a"]}))
    magnitude = tfc.wrap(_net(), "magnitude")
    with pytest.raises(ValueError, match="method='magnitude', which prunes weights, not "
                                         "channels.*Received: budget='latency'"):
        tfc.prune(magnitude, 0.5, budget="latency", cost_table=_table())


def test_latency_step_ranks_by_the_wrapped_criterion():
    # prune's docstring said it keeps "the channels plan_for_latency keeps"; on a taylor
    # model plan_for_latency ranks by the budget criterion (l1_filter), the step by taylor
    from tfcompress import callbacks, schedules

    masked = tfc.wrap(_net(), "taylor")
    for name, scores in (("conv_a_mask", A_SCORES), ("conv_b_mask", B_SCORES)):
        masked.get_layer(name).score.assign(scores[::-1])  # taylor reverses l1's order
    by_taylor = plan_for_latency(masked, _table(), target_latency=0.5, criterion="taylor")
    by_default = plan_for_latency(masked, _table(), target_latency=0.5)
    assert by_taylor.plan.keep != by_default.plan.keep
    assert by_default.plan.keep == plan_for_latency(
        masked, _table(), target_latency=0.5, criterion="l1_filter").plan.keep
    assert tfc.prune(masked, 0.5, budget="latency", cost_table=_table()).keep == (
        by_taylor.plan.keep)
    assert tfc.prune(masked, 0.5, budget="latency", cost_table=_table(),
                     criterion="l1_filter").keep == by_default.plan.keep
    callback = callbacks.StructuredPruning(schedules.OneShot(0.5), budget="latency",
                                           cost_table=_table())
    callback.set_model(tfc.wrap(_net(), "taylor"))
    for name, scores in (("conv_a_mask", A_SCORES), ("conv_b_mask", B_SCORES)):
        callback.model.get_layer(name).score.assign(scores[::-1])
    callback.on_train_begin()
    callback.prune_now(0.5)
    assert tfc.plan_from_masks(callback.model).keep == by_taylor.plan.keep


def test_latency_budget_refuses_scope_local_and_reads_no_scope_by_default():
    # budget="latency" ranks globally; scope="local" was accepted and ranked globally
    from tfcompress import callbacks, schedules

    message = re.escape(
        "budget='latency' ranks all groups together, cutting where the least importance is "
        "lost per millisecond; it cannot be combined with scope='local'. Leave scope out "
        "(or give 'global').")
    masked = tfc.wrap(_net(), "l1_filter")
    with pytest.raises(ValueError, match=message):
        tfc.prune(masked, 0.5, budget="latency", cost_table=_table(), scope="local")
    with pytest.raises(ValueError, match=message):
        callbacks.StructuredPruning(schedules.OneShot(0.5), budget="latency",
                                    cost_table=_table(), scope="local")
    # the same scope given in options: it was not told from the default and was accepted
    local = RankingOptions(scope="local")
    with pytest.raises(ValueError, match=message):
        tfc.prune(masked, 0.5, budget="latency", cost_table=_table(), options=local)
    with pytest.raises(ValueError, match=message):
        callbacks.StructuredPruning(schedules.OneShot(0.5), budget="latency",
                                    cost_table=_table(), options=local)
    assert tfc.pruners.mask_stats(masked)["channel_sparsity"] == 0.0  # nothing applied
    by_default = tfc.prune(masked, 0.5, budget="latency", cost_table=_table()).keep
    masked = tfc.wrap(_net(), "l1_filter")
    assert tfc.prune(masked, 0.5, budget="latency", cost_table=_table(),
                     scope="global").keep == by_default
    for given in (RankingOptions(), RankingOptions(scope="global")):  # none, or global
        assert tfc.prune(tfc.wrap(_net(), "l1_filter"), 0.5, budget="latency",
                         cost_table=_table(), options=given).keep == by_default
    # the default scope of the other budgets is still "local": None, none given
    assert callbacks.StructuredPruning(schedules.OneShot(0.5)).options.scope is None
    assert RankingOptions().with_defaults().scope == "local"
    local = tfc.prune(tfc.wrap(_net(), "l1_filter"), 0.5, scope="local").keep
    assert tfc.prune(tfc.wrap(_net(), "l1_filter"), 0.5).keep == local
    assert tfc.prune(tfc.wrap(_net(), "l1_filter"), 0.5, options=RankingOptions()).keep == local


def test_structured_pruning_only_is_refused_by_name():
    from tfcompress import callbacks, schedules

    with pytest.raises(ValueError, match=re.escape(
            "only is read only by budget='latency' (the groups a latency budget may cut). "
            "Received: budget='channels', only=['conv_b_mask']")):
        callbacks.StructuredPruning(schedules.OneShot(0.5), only=["conv_b_mask"])
    callback = _latency_callback(cost_table=_table(), only=["conv_b"])
    callback.set_model(tfc.wrap(_net(), "l1_filter"))
    with pytest.raises(ValueError, match=re.escape(
            "only names layers that are not mask layers of model") + ".*\\['conv_b'\\]"):
        callback.on_train_begin()  # before the first step, not at the first pruning step


def test_structured_pruning_latency_budget_bad_values_are_named():
    from tfcompress import callbacks, schedules

    with pytest.raises(ValueError, match=r"one of \('channels', 'params', 'latency'\). "
                                         "Received: budget='flops'"):
        callbacks.StructuredPruning(schedules.OneShot(0.5), budget="flops")
    with pytest.raises(TypeError, match="budget='latency' needs cost_table.*Received: "
                                        "cost_table=None"):
        _latency_callback()
    with pytest.raises(TypeError, match="Received: cost_table={}"):
        _latency_callback(cost_table={})
    with pytest.raises(ValueError, match="only by budget='latency'. Received: budget='params'"):
        callbacks.StructuredPruning(schedules.OneShot(0.5), budget="params", cost_table=_table())
    with pytest.raises(ValueError, match=r"multiple \(4\); it cannot be combined with round_to=8"):
        _latency_callback(cost_table=_table(), round_to=8)
    with pytest.raises(ValueError, match="budget='latency' .* num_remove=2"):
        _latency_callback(cost_table=_table(), num_remove=2)
    with pytest.raises(ValueError, match="cannot be combined with rule='strict_quantile'"):
        _latency_callback(cost_table=_table(), rule="strict_quantile")
    callback = _latency_callback(cost_table=CostTable({"conv_a": _table().layers["conv_a"]}))
    callback.set_model(tfc.wrap(_net(), "l1_filter"))
    with pytest.raises(ValueError, match="no entry for layer 'conv_b'"):
        callback.on_train_begin()


def _measured(slowdown):
    """A stand-in for timing: the table's own prediction for the compact model's widths
    (as `_table` computes it, 10 ms in full), times `slowdown`, as a fraction of 10 ms."""

    def measure(compact):
        a, b = compact.get_layer("conv_a").filters, compact.get_layer("conv_b").filters
        return slowdown * (1 + a / 4 + a * b / 64 + b / 16) / 10

    return measure


def test_measured_latency_replans_with_the_corrected_target():
    # Runs 1.5x slower than predicted; target 0.5 of the original.
    # Round 1 plans for 0.5 (5 ms): (4, 16), predicted 4 ms (see the first test), measured
    #   0.6: the next working target is 0.5 * 0.5 / 0.6 = 0.4167 (4.167 ms).
    # Round 2: the same cut reaches 3.5 ms at (4, 12), gives B back to 16 (+0.5): (4, 16)
    #   again, measured 0.6: next 0.4167 * 0.5 / 0.6 = 0.3472 (3.472 ms).
    # Round 3: (4, 12) is 3.5 ms > 3.472: B->8 saves conv_b 0.25 + dense 0.25 for 6
    #   (12/ms); no give back fits (B->12 needs 0.5 > 0.472): (4, 8), 3 ms, measured 0.45.
    masked = tfc.wrap(_net(), "l1_filter")
    result = tfc.pruners.plan_to_measured_latency(
        masked, _table(), 0.5, _measured(1.5), rounds=3, min_channels=1, normalize="none")
    working = [r[0] for r in result.rounds]
    np.testing.assert_allclose(working, [0.5, 0.5 * 0.5 / 0.6, 0.5 * (0.5 / 0.6) ** 2])
    np.testing.assert_allclose([r[1] for r in result.rounds], [0.4, 0.4, 0.3])
    np.testing.assert_allclose([r[2] for r in result.rounds], [0.6, 0.6, 0.45])
    assert result.budget.kept == {"conv_a_mask": 4, "conv_b_mask": 8}
    assert result.measured == pytest.approx(0.45)  # the closest of the three: 0.9 x
    compact = tfc.strip(masked)  # the closest plan is the one left applied
    assert (compact.get_layer("conv_a").filters, compact.get_layer("conv_b").filters) == (4, 8)
    assert result.summary().startswith(
        "measured 0.450 of the original for a target of 0.500 (0.90 x) after 3 round(s)")


def test_measured_latency_cuts_only_the_groups_named():
    # Only B, measured as predicted (5 + 5 kB / 16 ms of 10), target 0.7:
    # round 1 (7 ms): kB = 4, 0.625 (0.89 x); next 0.7 * 0.7 / 0.625 = 0.784 (7.84 ms):
    # round 2: kB = 8, 0.75 (1.07 x); next 0.784 * 0.7 / 0.75 = 0.7317: round 3 kB = 4
    # again. The closest is round 2; conv_a keeps its 16 channels throughout.
    masked = tfc.wrap(_net(), "l1_filter")
    result = tfc.pruners.plan_to_measured_latency(
        masked, _table(), 0.7, _measured(1.0), rounds=3, min_channels=1, normalize="none",
        only=["conv_b_mask"])
    np.testing.assert_allclose([r[2] for r in result.rounds], [0.625, 0.75, 0.625])
    assert result.budget.kept == {"conv_a_mask": 16, "conv_b_mask": 8}
    compact = tfc.strip(masked)
    assert (compact.get_layer("conv_a").filters, compact.get_layer("conv_b").filters) == (16, 8)


def test_measured_latency_stops_once_within_tolerance():
    masked = tfc.wrap(_net(), "l1_filter")
    result = tfc.pruners.plan_to_measured_latency(
        masked, _table(), 0.5, _measured(1.25), rounds=3, min_channels=1, normalize="none")
    assert len(result.rounds) == 1 and result.measured == pytest.approx(0.5)
    assert result.budget.kept == {"conv_a_mask": 4, "conv_b_mask": 16}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rounds": 0}, "rounds must be an integer >= 1. Received: rounds=0"),
        ({"tolerance": 1.5}, "tolerance must be a number in (0, 1). Received: tolerance=1.5"),
        ({"measure": None}, "measure must be a function of the compact model"),
        ({"target_latency": 2}, "target_latency must be a number in (0, 1]"),
        ({"measure": lambda compact: float("nan")}, "measure returned nan for a compact model"),
    ],
)
def test_measured_latency_bad_arguments_are_named(kwargs, message):
    args = {"target_latency": 0.5, "measure": _measured(1.0), **kwargs}
    masked = tfc.wrap(_net(), "l1_filter")
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        tfc.pruners.plan_to_measured_latency(masked, _table(), args.pop("target_latency"),
                                             args.pop("measure"), min_channels=1, **args)


def test_measured_latency_keeps_the_closest_plan_when_the_floor_is_reached():
    # 3x slower than predicted, target 0.5: round 1 (4, 16), 0.4 predicted, 1.2 measured;
    # the working target 0.5 * 0.5 / 1.2 = 0.208 (2.08 ms) is below the narrowest model's
    # prediction (4, 4): 1 + 1 + 0.25 + 0.25 = 2.5 ms, 0.25 of the original.
    masked = tfc.wrap(_net(), "l1_filter")
    result = tfc.pruners.plan_to_measured_latency(
        masked, _table(), 0.5, _measured(3.0), rounds=3, min_channels=1, normalize="none")
    assert len(result.rounds) == 1 and result.measured == pytest.approx(1.2)
    assert result.floor == pytest.approx(0.25)
    assert result.summary().endswith("then the working target fell below the predicted floor 0.250")
