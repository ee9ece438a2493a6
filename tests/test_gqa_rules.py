"""keras.layers.GroupQueryAttention (`tfcompress.graph.gqa_rules`): a key/value head is
pruned with its query heads; wrap alone <= 1e-6, prune then strip <= 1e-4."""

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, prune_with_parity, sample_input
from tfcompress.graph.gqa_rules import AXIS, query_heads


def _transformer(use_gate=False, cross=False):
    x = keras.Input((6, 16))
    h = layers.Dense(16, name="embed")(x)
    context = layers.Dense(16, name="context")(x) if cross else h
    a = layers.GroupQueryAttention(
        head_dim=4, num_query_heads=6, num_key_value_heads=3, use_gate=use_gate, name="gqa"
    )(h, context)
    h = layers.Add()([h, a])
    y = layers.Dense(3, name="head")(layers.GlobalAveragePooling1D()(h))
    return keras.Model(x, y)


def _randomize_biases(model):
    rng = np.random.default_rng(1)
    for var in model.weights:
        if var.path.endswith("bias"):
            var.assign(rng.normal(0, 0.5, var.shape).astype("float32"))
    return model


def test_query_heads_of_kept_kv_heads():
    layer = layers.GroupQueryAttention(head_dim=2, num_query_heads=6, num_key_value_heads=3)
    assert query_heads(layer, [0, 2]).tolist() == [0, 1, 4, 5]
    assert query_heads(layer, None) is None


@pytest.mark.parametrize("use_gate, cross", [(False, False), (True, True)])
def test_kv_heads_prune_with_parity(use_gate, cross):
    model = _randomize_biases(_transformer(use_gate, cross))
    graph = tfc.DependencyGraph(model)
    kv = [g for g in graph.prunable_groups if any(m.internal == AXIS for m in g.members)]
    assert [g.size for g in kv] == [3]
    _, compact, x = prune_with_parity(model, 0.34, method="l1_filter")
    gqa = compact.get_layer("gqa")
    assert (gqa.num_key_value_heads, gqa.num_query_heads) == (2, 4)
    assert compact.count_params() < model.count_params()
    macs = {r.name: (r.macs, a.macs) for r, a in tfc.report(model, compact).pairs()}
    # t = s = 6 tokens, width 16, head_dim 4: projections, then scores and weighted values
    gate = 1 if use_gate else 0
    assert macs["gqa"] == tuple(
        6 * 16 * q * 4 * (2 + gate) + 2 * 6 * 16 * kv * 4 + 2 * 6 * 6 * q * 4
        for q, kv in ((6, 3), (4, 2))
    )
    restored = keras.Model.from_config(compact.get_config())
    restored.set_weights(compact.get_weights())
    assert max_rel_error(outputs(compact, x), outputs(restored, x)) <= 1e-6


def test_taylor_scores_and_soft_scales_of_kv_heads():
    model = _randomize_biases(_transformer(use_gate=True))
    x = sample_input(model, batch=4)
    masked = tfc.wrap(model, method="taylor")
    masked.compile(loss=keras.losses.MeanSquaredError())
    plan = tfc.prune(masked, ratio=0.34, data=[(x, np.zeros((4, 3), "float32"))])
    assert len(plan.keep["gqa_kv_heads_mask"]) == 2
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4

    soft = tfc.wrap(model, method="soft_topk")
    heads = soft.get_layer("gqa_kv_heads_mask")
    heads.keep.assign(2.0)
    heads.temperature.assign(0.5)  # every key/value head scaled, none zero
    compact = tfc.strip(soft)
    assert max_rel_error(outputs(soft, x), outputs(compact, x)) <= 1e-4
    assert max_rel_error(outputs(model, x), outputs(soft, x)) > 1e-3
