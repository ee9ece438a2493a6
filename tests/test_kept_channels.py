"""One definition of a kept channel (issue 14): `ChannelMask.kept`, read by every
reporting path -- `mask_stats`, `PruningSummaries`, the training loop's log, plans,
the ranking's alive channels and `strip`'s kept components."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.callbacks.summaries import PruningSummaries
from tfcompress.graph import DependencyGraph
from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, SoftTopKMask
from tfcompress.pruners.plan import plan_from_masks
from tfcompress.pruners.scores import alive_channels
from tfcompress.pruners.stats import mask_stats
from tfcompress.surgery.masks import kept_components, mask_sites

from .pruning_models import compile_model, conv_bn_net

PATTERNS = {  # conv0 (8), conv1 (8), conv2 (16) masks' binary states
    "conv0_mask": [1, 0, 1, 1, 0, 1, 1, 1],
    "conv1_mask": [0, 1, 1, 1, 1, 1, 0, 1],
    "conv2_mask": [1] * 10 + [0] * 6,
}


def _set_patterns(masked):
    for name, pattern in PATTERNS.items():
        masked.get_layer(name).mask.assign(np.asarray(pattern, np.float32))
    return {name: np.asarray(p, bool) for name, p in PATTERNS.items()}


def _soft_topk_states(masked):
    """conv0: hard; conv1: soft with keep = units (factor 1); conv2: soft, keep 8 of 16
    at a vanishing temperature (factor exactly 0 below the top 8 logits)."""
    expected = _set_patterns(masked)
    conv0, conv1, conv2 = (masked.get_layer(f"conv{i}_mask") for i in range(3))
    conv0.hard.assign(1.0)
    conv1.hard.assign(0.0)
    conv1.keep.assign(8.0)
    conv2.hard.assign(0.0)
    conv2.keep.assign(8.0)
    conv2.temperature.assign(1e-30)
    logits = np.arange(16, dtype=np.float32)[::-1].copy()  # channels 0..7 are the top 8
    conv2.logits.assign(logits)
    expected["conv2_mask"] = expected["conv2_mask"] & (np.arange(16) < 8)
    return expected


def _reports(masked):
    """`{path: {mask name: kept flags or count}}` from every reporting path."""
    masks = layers_of(masked, ChannelMask)
    graph = DependencyGraph(masked)
    sites = mask_sites(graph)
    components = kept_components(graph)
    alive = alive_channels(graph, sites)
    plan = plan_from_masks(masked)
    stats = mask_stats(masked)
    flags = {m.name: m.kept() for m in masks}
    return {
        "kept": flags,
        "strip": {s.layer.name: components[s.components] for s in sites},
        "alive": {s.layer.name: alive[s.group][s.group_channel] for s in sites},
        "plan": {
            name: np.isin(np.arange(len(flags[name])), kept) for name, kept in plan.keep.items()
        },
        "stats": {m.name: stats[f"kept_channels/{m.name}"] for m in masks},
    }


@pytest.mark.parametrize("method", ["l1_filter", "taylor", "soft_topk"])
def test_kept_channel_has_one_definition(method, tmp_path):
    masked = tfc.wrap(conv_bn_net(), method)
    if method == "soft_topk":
        expected = _soft_topk_states(masked)
        assert isinstance(masked.get_layer("conv2_mask"), SoftTopKMask)
    else:
        expected = _set_patterns(masked)
    reports = _reports(masked)
    for path in ("kept", "strip", "alive", "plan"):
        for name, flags in expected.items():
            np.testing.assert_array_equal(reports[path][name], flags, err_msg=f"{path} {name}")
    # mask_stats: also what the training loop's lines and StepLog log
    assert reports["stats"] == {n: int(f.sum()) for n, f in expected.items()}
    compile_model(masked)
    logs = {}
    summaries = PruningSummaries(tmp_path)
    summaries.set_model(masked)
    summaries.on_epoch_end(0, logs)
    summaries.on_train_end()
    kept = sum(int(f.sum()) for f in expected.values())
    assert logs["channel_sparsity"] == pytest.approx(1.0 - kept / 32)
    compact = tfc.strip(masked)
    assert [compact.get_layer(f"conv{i}").filters for i in range(3)] == [
        int(expected[f"conv{i}_mask"].sum()) for i in range(3)
    ]


def test_soft_topk_target_is_reported_apart_from_kept_channels():
    masked = tfc.wrap(conv_bn_net(), "soft_topk")
    _soft_topk_states(masked)
    summary = mask_stats(masked)
    # kept: 6 (hard) + 6 (soft, factor 1) + 8 (soft, the top 8 of the 10 on)
    assert summary["kept_channels"] == 6 + 6 + 8
    assert summary["target_channels"] == 6 + 6 + 8
    masked.get_layer("conv2_mask").temperature.assign(1.0)  # soft factors all non-zero
    summary = mask_stats(masked)
    assert summary["kept_channels"] == 6 + 6 + 10  # what strip would keep now
    assert summary["target_channels"] == 6 + 6 + 8  # what hardening will keep


def test_soft_topk_mask_read_now_equals_its_channel_scale_in_every_state():
    # scale_now skips the soft factor (its quantile) when hard or keeping every channel
    masked = tfc.wrap(conv_bn_net(), "soft_topk")
    _soft_topk_states(masked)
    masked.get_layer("conv0_mask").logits.assign(np.full(8, np.nan, np.float32))  # hard
    for mask in layers_of(masked, SoftTopKMask):
        np.testing.assert_array_equal(
            mask.scale_now(), keras.ops.convert_to_numpy(mask.channel_scale()), err_msg=mask.name
        )
