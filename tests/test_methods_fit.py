"""Each method driven by its callback inside one ordinary `fit`, then stripped: the
compact model computes what the masked model computes (rel. error <= 1e-4)."""

import glob

import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.pruners import mask_stats, recalibrate_bn
from tfcompress.pruners.weights import weight_masks

from .parity import max_rel_error, outputs
from .pruning_models import compile_model, conv_bn_net, data

STEPS = 8  # batches per epoch below (128 images, batch 16)

RECIPES = {
    "magnitude": ({}, lambda: cb.MagnitudePruning(
        schedules.Polynomial(0.0, 0.8, begin_step=0, end_step=2 * STEPS, frequency=4))),
    "l1_filter": ({}, lambda: cb.StructuredPruning(
        schedules.Iterative(0.5, begin_step=0, end_step=STEPS, frequency=4), method="l1_filter",
        scope="global")),
    "taylor": ({}, lambda: cb.StructuredPruning(
        schedules.Iterative(0.5, begin_step=4, end_step=2 * STEPS, frequency=6), method="taylor",
        scope="global", round_to=2)),
    "slimming": ({"penalty": 1e-3}, lambda: cb.StructuredPruning(
        schedules.OneShot(0.5, step=2 * STEPS), method="slimming", scope="global")),
    "soft_topk": ({}, lambda: cb.SoftTopK(
        schedules.ACoSPTemperature(0.5, ending_epoch=2), min_channels=2)),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(RECIPES))
def test_method_in_fit_then_strip_parity(method, tmp_path):
    x, y = data(128)
    options, make_callback = RECIPES[method]
    model = conv_bn_net()
    masked = compile_model(tfc.wrap(model, method, **options))
    history = masked.fit(
        x, y, batch_size=16, epochs=3, verbose=0,
        callbacks=[make_callback(), cb.PruningSummaries(tmp_path / "tb")],
    )
    stats = mask_stats(masked)
    key = "weight_sparsity" if method == "magnitude" else "channel_sparsity"
    # 0.5 targeted; taylor's round_to=2 may add back one channel in each of the 3 groups
    assert stats[key] >= 0.4 and history.history[key][-1] == pytest.approx(stats[key])
    assert glob.glob(str(tmp_path / "tb" / "pruning" / "events.out.tfevents.*"))
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x[:32]), outputs(compact, x[:32])) <= 1e-4
    if method != "magnitude":
        assert compact.count_params() < 0.6 * model.count_params()


def test_masked_weights_stay_zero_while_training():
    x, y = data(128)
    masked = compile_model(tfc.wrap(conv_bn_net(), "magnitude"))
    masked.fit(x, y, batch_size=16, epochs=1, verbose=0)  # Adam moments for every weight
    tfc.pruners.prune_weights(masked, ratio=0.7)
    masked.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for name in ("conv0_wm", "conv1_wm", "conv2_wm", "logits_wm"):
        wrapper = masked.get_layer(name)
        mask = np.asarray(wrapper.masks["kernel"])
        kernel = np.asarray(wrapper.layer.kernel)
        assert (mask == 0).sum() == int(np.floor(0.7 * mask.size))
        assert np.all(kernel[mask == 0] == 0)
        assert np.count_nonzero(kernel[mask == 1]) == int(mask.sum())


def test_global_magnitude_in_fit_reaches_the_overall_sparsity():
    x, y = data(128)
    masked = compile_model(tfc.wrap(conv_bn_net(), "magnitude"))
    callback = cb.MagnitudePruning(
        schedules.Polynomial(0.0, 0.8, begin_step=0, end_step=STEPS, frequency=4),
        scope="global")
    masked.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
    masks = [np.asarray(w.masks["kernel"]) for w in weight_masks(masked)]
    total = sum(m.size for m in masks)
    assert sum(int((m == 0).sum()) for m in masks) == int(np.floor(0.8 * total))
    per_layer = [float((m == 0).mean()) for m in masks]
    assert max(per_layer) - min(per_layer) > 0.05  # one threshold, uneven layers
    for w in weight_masks(masked):
        assert np.all(np.asarray(w.layer.kernel)[np.asarray(w.masks["kernel"]) == 0] == 0)


def test_han_quality_rule_iterates_to_higher_sparsity():
    x, y = data(128)
    masked = compile_model(tfc.wrap(conv_bn_net(), "magnitude"))
    callback = cb.MagnitudePruning(
        schedules.Iterative(0.9, begin_step=0, end_step=16, frequency=8), quality=0.7)
    masked.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[callback])
    sparsities = [float(np.mean(list(a.values()))) for _, a in callback.events]
    assert len(sparsities) == 3 and sparsities[0] > 0.3
    assert sparsities[0] < sparsities[1] < sparsities[2]


def test_recalibrate_bn_matches_population_statistics():
    x, _ = data(96)
    model = conv_bn_net()
    recalibrate_bn(model, [x[i:i + 32] for i in range(0, 96, 32)])
    bn = model.get_layer("bn0")
    conv = model.get_layer("conv0")
    z = np.asarray(conv(x)).reshape(3, -1, conv.filters)  # three batches
    np.testing.assert_allclose(np.asarray(bn.moving_mean), z.mean(axis=1).mean(0), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), z.var(axis=1).mean(0),
                               rtol=1e-3, atol=1e-6)
    assert bn.momentum == 0.99


def _statistics(model):
    return [np.asarray(w) for bn in ("bn0", "bn1", "bn2") for w in
            (model.get_layer(bn).moving_mean, model.get_layer(bn).moving_variance)]


def test_recalibrate_bn_recalibrates_frozen_batch_norms():
    """A frozen BatchNorm (its own trainable=False, or its model's) gets the statistics a
    trainable one gets, and stays frozen (before: Keras ran it in inference mode and
    recalibrate_bn left it unchanged, returning the batch count all the same)."""
    x, _ = data(64)
    batches = [x[:32], x[32:]]
    reference = conv_bn_net()
    assert recalibrate_bn(reference, batches) == 2
    frozen_model = conv_bn_net()
    frozen_model.trainable = False
    frozen_layers = conv_bn_net()
    for name in ("bn0", "bn2"):
        frozen_layers.get_layer(name).trainable = False
    for model in (frozen_model, frozen_layers):
        flags = [(w.path, w.trainable) for w in model.weights]
        assert recalibrate_bn(model, batches) == 2
        for got, want in zip(_statistics(model), _statistics(reference)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert [(w.path, w.trainable) for w in model.weights] == flags
    assert not frozen_model.get_layer("bn1").trainable
    assert not frozen_layers.get_layer("bn0").trainable
    assert frozen_layers.get_layer("bn1").trainable


def test_recalibrate_bn_data_as_fit_takes_it():
    """An array x, or (x, y) arrays, are cut into batches of 32, as fit cuts them: the
    statistics of the same batches given as a list (before: an array was iterated image
    by image and Keras refused the first image's shape)."""
    x, y = data(64)
    reference = conv_bn_net()
    recalibrate_bn(reference, [x[:32], x[32:]])
    for given in (x, (x, y)):
        model = conv_bn_net()
        assert recalibrate_bn(model, given) == 2
        for got, want in zip(_statistics(model), _statistics(reference)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_recalibrate_bn_refuses_data_it_cannot_read():
    """Unbatched examples and a non-iterable are refused naming data and what it must be
    (the validator of taylor's data); the statistics are left as they were."""
    import tensorflow as tf

    x, _ = data(8)
    model = conv_bn_net()
    before = _statistics(model)
    forms = (
        "recalibrate_bn's data must be an iterable of input batches or of (x, ...) tuples "
        "(e.g. a batched tf.data.Dataset, or [x] for one batch), or an array x or a tuple "
        "(x, y) of arrays as fit takes them (cut into batches of 32)"
    )
    with pytest.raises(ValueError) as info:
        recalibrate_bn(model, tf.data.Dataset.from_tensor_slices(x))
    assert str(info.value).startswith(
        f"{forms}; its batches hold single examples (x of shape (12, 12, 1), model "
        "'conv_bn_net' takes batches of shape (None, 12, 12, 1)): batch it, e.g. "
        "`dataset.batch(32)`. Received: data="
    )
    with pytest.raises(ValueError) as info:
        recalibrate_bn(model, list(x))
    assert str(info.value).endswith(
        "Received: data=list of 8 (ndarray of shape (12, 12, 1), ndarray of shape "
        "(12, 12, 1), ndarray of shape (12, 12, 1), ndarray of shape (12, 12, 1), ...)"
    )
    with pytest.raises(TypeError) as info:
        recalibrate_bn(model, 3)
    assert str(info.value) == f"{forms}. Received: data=int"
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1 or None\. "
                       r"Received: steps=0"):
        recalibrate_bn(model, [x], steps=0)
    with pytest.raises(ValueError) as info:  # an array of 2 batches of 4: examples, cut
        recalibrate_bn(model, x.reshape(2, 4, 12, 12, 1))
    assert str(info.value) == (
        f"{forms}; its batches hold batches (x of shape (2, 4, 12, 12, 1), model "
        "'conv_bn_net' takes batches of shape (None, 12, 12, 1)): an array is examples, "
        "cut into batches of 32 as fit does; give batches as a list (`list(array)`) or a "
        "dataset. Received: data=ndarray of shape (2, 4, 12, 12, 1)"
    )
    for got, want in zip(_statistics(model), before):
        np.testing.assert_array_equal(got, want)


def test_ratio_for_compression_reaches_the_budget():
    masked = tfc.wrap(conv_bn_net(widths=(16, 16, 32)), "l1_filter")
    ratio, params = tfc.pruners.ratio_for_compression(
        masked, 2.0, options=tfc.pruners.RankingOptions(scope="local")
    )
    tfc.prune(masked, ratio)
    compact = tfc.strip(masked)
    assert compact.count_params() == params <= conv_bn_net(widths=(16, 16, 32)).count_params() / 2
