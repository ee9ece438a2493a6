"""TaylorMask's aggregation options, each against a NumPy computation by hand on a tiny
conv model with fixed weights and two batches (of different sizes)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from tfcompress.layers import MaskedKernel, TaylorMask
from tfcompress.layers.taylor_mask import AGGREGATIONS, DEFAULT_AGGREGATION


def _weights():
    rng = np.random.default_rng(7)
    return [rng.normal(size=s).astype("float32") for s in ((1, 1, 2, 3), (3,), (1, 1, 3, 2), (2,))]


def _batches():
    rng = np.random.default_rng(8)
    return [
        (rng.normal(size=(n, 2, 2, 2)).astype("float32"), rng.normal(size=(n, 2)).astype("float32"))
        for n in (3, 2)
    ]


def _model(aggregation, folded):
    """conv 1x1 (3) -> TaylorMask -> conv 1x1 (2) -> global average pool."""
    inputs = keras.Input((2, 2, 2))
    a = layers.Conv2D(3, 1, name="c1")(inputs)
    mask = TaylorMask(3, aggregation=aggregation, name="m")
    second = layers.Conv2D(2, 1, name="c2")
    if folded:
        out = MaskedKernel(second, axis=2, name="c2")(mask(a, folded=True))
    else:
        out = second(mask(a))
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(out))
    w1, b1, w2, b2 = _weights()
    model.get_layer("c1").set_weights([w1, b1])
    (second if folded else model.get_layer("c2")).set_weights([w2, b2])
    return model, mask


def _measured(aggregation, folded):
    model, mask = _model(aggregation, folded)
    for x, y in _batches():
        with tf.GradientTape() as tape:
            loss = keras.losses.MeanSquaredError()(y, model(x))
        tape.gradient(loss, model.trainable_variables)
        mask.fold()
    return np.asarray(mask.importance())


def _products():
    """Per batch: a * dL/da, shape (examples, 2, 2, 3), with L Keras's mean squared error
    of the pooled output."""
    w1, b1, w2, b2 = _weights()
    w1, w2 = w1[0, 0], w2[0, 0]
    products = []
    for x, y in _batches():
        a = x @ w1 + b1
        pooled = (a @ w2 + b2).mean(axis=(1, 2))
        d_pooled = 2 * (pooled - y) / pooled.size
        d_out = np.broadcast_to(d_pooled[:, None, None, :] / 4, (len(x), 2, 2, 2))
        products.append(a * (d_out @ w2.T))
    return products


def _count(p):
    return p.shape[0] * p.shape[1] * p.shape[2]


def _check(aggregation, expected):
    for folded in (False, True):
        np.testing.assert_allclose(_measured(aggregation, folded), expected, rtol=1e-5)


def test_taylor_aggregation_sum_then_abs_matches_hand_computation():
    expected = np.abs(sum(p.sum(axis=(0, 1, 2)) / _count(p) for p in _products()))
    _check("sum_then_abs", expected)


def test_taylor_aggregation_batch_abs_matches_hand_computation():
    expected = sum(np.abs(p.sum(axis=(0, 1, 2))) / _count(p) for p in _products())
    _check("batch_abs", expected)


def test_taylor_aggregation_example_abs_matches_hand_computation():
    # Molchanov et al. 2017, Eq. 8: |1/M sum_m a g| per example, averaged over the batch
    expected = sum(np.abs(p.mean(axis=(1, 2))).mean(axis=0) for p in _products())
    _check("example_abs", expected)


def test_taylor_aggregation_mean_abs_matches_hand_computation():
    expected = sum(np.abs(p).mean(axis=(0, 1, 2)) for p in _products())
    _check("mean_abs", expected)


def test_taylor_aggregations_differ_on_the_hand_example():
    values = [_measured(name, False) for name in sorted(AGGREGATIONS)]
    for i in range(len(values)):
        for j in range(i):
            assert not np.allclose(values[i], values[j], rtol=1e-3)


def test_taylor_aggregation_default_is_the_seeds_sum_then_abs():
    assert DEFAULT_AGGREGATION == "sum_then_abs"
    assert TaylorMask(3).aggregation == "sum_then_abs"


def test_taylor_mask_config_round_trips_the_aggregation():
    mask = TaylorMask(4, channel_maps=[[0, -1, 1, 2, 3]], aggregation="example_abs", name="m")
    config = mask.get_config()
    assert config["aggregation"] == "example_abs"
    clone = TaylorMask.from_config(config)
    assert clone.aggregation == "example_abs"
    assert clone.get_config() == config


def test_taylor_mask_rejects_an_unknown_aggregation():
    with pytest.raises(
        ValueError, match=r"aggregation must be one of .*Received: aggregation='abs'"
    ):
        TaylorMask(3, aggregation="abs")


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_taylor_aggregation_through_a_channel_map_matches_hand_computation(aggregation):
    # input channels 0 and 3 are group channel 1, input 2 is group channel 0, input 1
    # belongs to another group (as after a Concatenate)
    channel_map = [1, -1, 0, 1]
    mask = TaylorMask(2, channel_maps=[channel_map], aggregation=aggregation)
    rng = np.random.default_rng(9)
    expected = np.zeros(2)
    batches = [(rng.normal(size=(n, 3, 4)), rng.normal(size=(n, 3, 4))) for n in (2, 3)]
    for x, weight in batches:
        x = tf.constant(x, "float32")
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(mask(x, site=0) * weight)
        tape.gradient(loss, x)
        mask.fold()
        product = x.numpy() * weight  # a * dL/da: dL/da is `weight` where the mask is 1
        per_example = np.stack(  # (examples, group channels): sum over positions and inputs
            [product[..., [2]].sum(axis=(1, 2)), product[..., [0, 3]].sum(axis=(1, 2))], 1
        )
        count = product.shape[0] * product.shape[1]
        per_element = np.stack(
            [np.abs(product[..., [2]]).sum(axis=(0, 1, 2)),
             np.abs(product[..., [0, 3]]).sum(axis=(0, 1, 2))]
        )  # fmt: skip
        expected += {
            "sum_then_abs": per_example.sum(0) / count,
            "batch_abs": np.abs(per_example.sum(0)) / count,
            "example_abs": np.abs(per_example).sum(0) / count,
            "mean_abs": per_element / count,
        }[aggregation]
    if aggregation == "sum_then_abs":
        expected = np.abs(expected)
    np.testing.assert_allclose(np.asarray(mask.importance()), expected, rtol=1e-5)


def test_wrap_gives_every_taylor_mask_the_aggregation_and_saving_keeps_it(tmp_path):
    import tfcompress as tfc

    from .pruning_models import conv_bn_net

    masked = tfc.wrap(conv_bn_net(), "taylor", aggregation="example_abs")
    masks = [m for m in masked.layers if isinstance(m, TaylorMask)]
    assert masks and {m.aggregation for m in masks} == {"example_abs"}
    assert tfc.methods.wrapping_of(masked).options == {"aggregation": "example_abs"}
    masked.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert {m.aggregation for m in loaded.layers if isinstance(m, TaylorMask)} == {"example_abs"}
    plain = tfc.wrap(conv_bn_net(), "taylor")
    assert {m.aggregation for m in plain.layers if isinstance(m, TaylorMask)} == {
        DEFAULT_AGGREGATION
    }


def test_wrap_rejects_bad_taylor_options():
    import tfcompress as tfc

    from .pruning_models import conv_bn_net

    with pytest.raises(ValueError, match="Received: aggregation='abs'"):
        tfc.wrap(conv_bn_net(), "taylor", aggregation="abs")
    with pytest.raises(ValueError, match=r"aggregation only. Received: \['penalty'\]"):
        tfc.wrap(conv_bn_net(), "taylor", penalty=1e-4)


def test_taylor_aggregation_flag_reaches_wrap():
    from tfcompress.training import methods

    from .test_scripts_helpers import parse

    base = ["--model=lenet5", "--num_classes=10", "--train_data=x", "--checkpoint=y"]
    config = parse("compress", [*base, "--epochs=3", "--method=taylor", "--ratio=0.5",
                                "--taylor_aggregation=example_abs"])  # fmt: skip
    assert config.prune.taylor_aggregation == "example_abs"
    assert methods.wrap_options(config.prune) == {"aggregation": "example_abs"}
    config = parse("compress", [*base, "--epochs=3", "--method=taylor", "--ratio=0.5"])
    assert methods.wrap_options(config.prune) == {}


def test_prune_config_rejects_taylor_aggregation_for_another_method_or_an_unknown_one():
    from tfcompress.training import config as cfg

    with pytest.raises(ValueError, match="option of method 'taylor', not 'l1_filter'"):
        cfg.PruneConfig("l1_filter", ratio=0.5, taylor_aggregation="batch_abs")
    with pytest.raises(ValueError, match="Received: taylor_aggregation='abs'"):
        cfg.PruneConfig("taylor", ratio=0.5, taylor_aggregation="abs")
