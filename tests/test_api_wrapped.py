"""`prune`, `strip` and the callbacks use the method and exclude list a model was wrapped
with (issue 14, items 1 and 2)."""

import re

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import methods, schedules
from tfcompress.pruners.weights import weight_masks

from .pruning_models import compile_model, conv_bn_net, data, mask_values


@keras.saving.register_keras_serializable(package="tests")
class Odd(keras.layers.Layer):
    """A layer class the dependency graph has no rule for (and does not see through)."""

    def build(self, *shapes):  # a weight of its own: the graph does not see through it
        self.one = self.add_weight(shape=(), initializer="ones", trainable=False, name="one")

    def call(self, x):
        return x * 2.0 * self.one


def _odd_net():
    inputs = keras.Input((12, 12, 1))
    x = layers.Conv2D(8, 3, padding="same", name="conv0")(inputs)
    x = Odd(name="odd")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4, name="logits")(x), name="odd_net")


def _kept(masked):
    return {k: np.nonzero(v)[0].tolist() for k, v in mask_values(masked).items()}


def test_prune_uses_wrapped_method():
    x, y = data(32)
    model = conv_bn_net()

    def pruned(**kwargs):
        masked = compile_model(tfc.wrap(model, "taylor"))
        reads = kwargs.get("criterion") != "l1_filter"  # l1_filter refuses data
        tfc.prune(masked, ratio=0.5, data=[(x, y)] if reads else None, **kwargs)
        return _kept(masked)

    by_taylor = pruned(criterion="taylor")
    assert pruned() == by_taylor
    assert pruned(criterion="l1_filter") != by_taylor  # the two criteria disagree here


def _slimming_net_with_gammas():
    """A slimming-wrapped net whose BatchNorm scales rank channels against their L1 norm."""
    model = conv_bn_net(widths=(4, 4, 4))
    masked = compile_model(tfc.wrap(model, "slimming", penalty=1e-4))
    for i in range(3):
        kernel = masked.get_layer(f"conv{i}").get_weights()[0]
        l1 = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(0)
        gamma = np.empty(4, "float32")
        gamma[np.argsort(l1)] = [0.9, 0.8, 0.2, 0.1]  # the smallest filters: largest gammas
        masked.get_layer(f"bn{i}").gamma.assign(gamma)
    return masked


def test_structured_pruning_uses_wrapped_method():
    x, y = data(32)
    masked = _slimming_net_with_gammas()
    gammas = {f"conv{i}_mask": np.asarray(masked.get_layer(f"bn{i}").gamma) for i in range(3)}
    callback = cb.StructuredPruning(schedules.OneShot(0.5, step=0))  # before any update
    masked.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    expected = {k: sorted(np.argsort(-g)[:2].tolist()) for k, g in gammas.items()}
    assert _kept(masked) == expected


def test_prune_with_other_method_is_an_error():
    masked = tfc.wrap(conv_bn_net(), "taylor")
    with pytest.raises(
        ValueError, match="wrapped with method='taylor', but prune was given method='l1_filter'"
    ):
        tfc.prune(masked, ratio=0.5, method="l1_filter")
    with pytest.raises(ValueError, match="pass criterion='l1_filter' to re-score"):
        tfc.prune(masked, ratio=0.5, method="l1_filter")
    tfc.prune(masked, ratio=0.5, criterion="l1_filter")  # re-scoring on purpose
    assert all(len(v) == 4 for k, v in _kept(masked).items() if k != "conv2_mask")


def test_structured_pruning_with_other_method_is_an_error():
    x, y = data(32)
    masked = compile_model(tfc.wrap(conv_bn_net(), "taylor"))
    callback = cb.StructuredPruning(schedules.OneShot(0.5, step=0), method="slimming")
    with pytest.raises(ValueError, match="but StructuredPruning was given method='slimming'"):
        masked.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    with pytest.raises(ValueError, match="structured method. Received: method='magnitude'"):
        cb.StructuredPruning(schedules.OneShot(0.5), method="magnitude")


def test_strip_refuses_a_model_that_was_never_wrapped():
    # a keras_hub backbone used to die inside Keras ("The name 'self_attention_layer' is
    # used 2 times in the model"), a plain model came back as a copy
    model = conv_bn_net()
    everything = [lay.name for lay in model.layers if not isinstance(lay, layers.InputLayer)]
    for unmasked in (model, tfc.wrap(model, exclude=everything)):  # as prune refuses them
        with pytest.raises(ValueError, match=rf"Model '{model.name}' holds no mask layers "
                                             r"\(it was not wrapped with `tfcompress.wrap`, or "
                                             r"wrap found no prunable channel group in it\)"):
            tfc.strip(unmasked)


def test_strip_names_the_compact_model_and_refuses_an_empty_or_slashed_name():
    masked = tfc.wrap(conv_bn_net())
    assert tfc.strip(masked).name == masked.name  # None: the masked model's
    assert tfc.strip(masked, name="compact").name == "compact"
    # name="" kept the masked model's name, saying nothing (Keras would make a model
    # named "", which every message then names as '')
    for bad in ("", 3):
        with pytest.raises(ValueError, match=re.escape(
                "name must be a non-empty string, or None to keep the masked model's name. "
                f"Received: name={bad!r}")):
            tfc.strip(masked, name=bad)
    # a "/" was refused by Keras only after the whole surgery, in Keras's words
    with pytest.raises(ValueError, match=re.escape(
            "name may not contain '/' (Keras refuses it in a model or layer name). "
            "Received: name='a/b'")):
        tfc.strip(masked, name="a/b")


def test_unknown_criterion_names_it():
    with pytest.raises(ValueError, match="criterion='fisher'"):
        tfc.prune(tfc.wrap(conv_bn_net()), ratio=0.5, criterion="fisher")


def test_exclude_survives_prune_and_strip(tmp_path):
    x, y = data(32)
    with pytest.raises(ValueError, match=r"exclude=\['odd'\]"):
        tfc.wrap(_odd_net())
    masked = tfc.wrap(_odd_net(), exclude=["odd"])
    assert methods.wrapping_of(masked).exclude == ("odd",)
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    assert [compact.get_layer(n).filters for n in ("conv0", "conv1", "conv2")] == [8, 4, 4]
    np.testing.assert_allclose(masked(x[:4]), compact(x[:4]), rtol=1e-4, atol=1e-5)

    fitted = compile_model(tfc.wrap(_odd_net(), exclude=["odd"]))
    fitted.fit(x, y, batch_size=16, epochs=1, verbose=0,
               callbacks=[cb.StructuredPruning(schedules.OneShot(0.5, step=1))])
    assert sorted(len(v) for v in _kept(fitted).values()) == [4, 4]

    path = str(tmp_path / "masked.keras")
    fitted.save(path)
    loaded = keras.saving.load_model(path)
    tfc.prune(loaded, ratio=0.75)
    assert tfc.strip(loaded).get_layer("conv1").filters == 2


def test_magnitude_pruning_ratio_is_keyword_and_named_ratio():
    masked = tfc.wrap(conv_bn_net(), "magnitude")
    achieved = tfc.pruners.prune_weights(masked, ratio=0.5)
    assert all(v == pytest.approx(0.5, abs=0.02) for v in achieved.values())
    with pytest.raises(TypeError):
        tfc.pruners.prune_weights(masked, 0.5, None)
    with pytest.raises(TypeError):
        cb.StructuredPruning(schedules.OneShot(0.5), "taylor")


def test_prune_on_magnitude_refuses_channel_arguments():
    """prune's weight path reads ratio, scope and keep_pruned only; it ignored the rest."""
    import re

    from tfcompress.pruners import RankingOptions

    masked = tfc.wrap(conv_bn_net(), "magnitude")
    for given in [dict(threshold=0.1), dict(num_remove=2), dict(min_channels=4),
                  dict(round_to=8), dict(rule="strict_quantile"), dict(normalize="l2"),
                  dict(criterion="l1_filter"), dict(data=[(np.zeros((2, 16, 16, 3)), [0, 1])])]:
        (name, value), = given.items()
        with pytest.raises(ValueError, match=re.escape(
                f"Model '{masked.name}' was wrapped with method='magnitude', which prunes "
                "weights, not channels: prune reads only ratio, scope and keep_pruned (or "
                f"options=RankingOptions(ratio, scope=...)) for it; {name} is for channel "
                f"pruning. Received: {name}=")):
            tfc.prune(masked, 0.5, **given)
    with pytest.raises(ValueError, match=re.escape(
            "round_to, threshold are for channel pruning. Received: round_to=8, "
            "threshold=0.1")):
        tfc.prune(masked, threshold=0.1, round_to=8)
    with pytest.raises(ValueError, match=re.escape(
            "options.min_channels is for channel pruning. Received: options.min_channels=4")):
        tfc.prune(masked, 0.5, options=RankingOptions(min_channels=4))
    with pytest.raises(ValueError, match=r"not both.*'scope': 'global'"):
        tfc.prune(masked, options=RankingOptions(0.5), scope="global")
    with pytest.raises(ValueError, match=re.escape(
            f"prune needs ratio, the fraction of weights to remove, for model '{masked.name}' "
            "(method='magnitude'); Han's quality rule is "
            "tfcompress.pruners.prune_weights(masked, quality=q). Received: ratio=None")):
        tfc.prune(masked)
    sparsity = tfc.prune(masked, options=RankingOptions(0.5, scope="global")).weight_sparsity
    assert max(sparsity.values()) - min(sparsity.values()) > 0.05  # one global threshold


def test_magnitude_masks_depthwise_separable_and_embedding_weights(tmp_path):
    """Han et al. prune every weight matrix: a depthwise kernel, both kernels of a
    separable conv and an embedding table are masked as conv and dense kernels are."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((12,), dtype="int32")
    t = layers.Embedding(50, 8, mask_zero=True, name="embed")(tokens)
    t = layers.LSTM(4, name="lstm")(t)  # reads the embedding's padding mask
    images = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", name="conv")(images)
    x = layers.SeparableConv2D(16, 3, padding="same", name="sep")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(3, name="fc")(layers.Concatenate()([x, t]))
    model = keras.Model([images, tokens], out)
    masked = tfc.wrap(model, "magnitude", exclude=["lstm"])
    masks = {wm.layer.name: sorted(wm.masks) for wm in weight_masks(masked)}
    assert masks == {"conv": ["kernel"], "sep": ["depthwise_kernel", "pointwise_kernel"],
                     "dw": ["kernel"], "embed": ["embeddings"], "fc": ["kernel"]}
    achieved = tfc.pruners.prune_weights(masked, ratio=0.75)
    assert set(achieved) == set(masks)
    assert all(v == pytest.approx(0.75, abs=0.01) for v in achieved.values())
    compact = tfc.strip(masked)
    sep = compact.get_layer("sep")
    for w in (sep.depthwise_kernel, sep.pointwise_kernel, compact.get_layer("embed").embeddings):
        assert np.mean(np.asarray(w) == 0) == pytest.approx(0.75, abs=0.01)
    ids = np.random.default_rng(0).integers(1, 50, (2, 12)).astype("int32")
    ids[:, 6:] = 0  # padding: the compact LSTM skips it, the masked one only if the
    # embedding's mask passes its WeightMask
    x = [np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype("float32"), ids]
    np.testing.assert_allclose(masked.predict(x, verbose=0), compact.predict(x, verbose=0),
                               atol=1e-5)


@pytest.mark.parametrize("method", ["l1_filter", "taylor", "soft_topk", "magnitude"])
def test_wrapped_layers_keep_their_activity_regularizers(method, tmp_path):
    """The wrappers run their layer with `stateless_call`, which skips Keras's activity
    regularization: `model.losses` was empty, so fit trained another objective."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = layers.Conv2D(4, 3, name="c1")(inp)
    h = layers.Conv2D(4, 3, name="c2", activity_regularizer=keras.regularizers.L1(0.01))(h)
    out = layers.Dense(3, name="out", activity_regularizer=keras.regularizers.L2(0.01))(
        layers.Flatten()(h))
    model = keras.Model(inp, out)
    x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype("float32")
    model(x)
    expected = sorted(float(v) for v in model.losses)
    assert len(expected) == 2
    masked = tfc.wrap(model, method)
    masked(x)
    np.testing.assert_allclose(sorted(float(v) for v in masked.losses), expected, rtol=1e-5)
    path = str(tmp_path / "m.keras")
    masked.save(path)
    loaded = keras.models.load_model(path)
    loaded(x)
    np.testing.assert_allclose(sorted(float(v) for v in loaded.losses), expected, rtol=1e-5)


def test_exclude_survives_soft_topk_fit():
    x, y = data(32)
    masked = compile_model(tfc.wrap(_odd_net(), "soft_topk", exclude=["odd"]))
    callback = cb.SoftTopK(schedules.ACoSPTemperature(0.5, ending_epoch=1), min_channels=2)
    masked.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[callback])
    compact = tfc.strip(masked)
    assert [compact.get_layer(n).filters for n in ("conv0", "conv1", "conv2")] == [8, 4, 4]


def test_prune_and_callback_take_one_ranking_options_object():
    from tfcompress.pruners import RankingOptions

    options = RankingOptions(scope="global", round_to=2)
    a, b = tfc.wrap(conv_bn_net()), tfc.wrap(conv_bn_net())
    tfc.prune(a, 0.5, options=options)
    tfc.prune(b, 0.5, scope="global", round_to=2)
    assert _kept(a) == _kept(b)
    with pytest.raises(ValueError, match=r"not both.*'round_to': 4"):
        tfc.prune(a, 0.5, options=options, round_to=4)
    with pytest.raises(ValueError, match=r"not both.*'scope': 'global'"):
        cb.StructuredPruning(schedules.OneShot(0.5), options=RankingOptions(), scope="global")
    with pytest.raises(TypeError, match="options=0.5"):
        cb.StructuredPruning(schedules.OneShot(0.5), options=0.5)
    callback = cb.StructuredPruning(schedules.OneShot(0.5), options=options)
    assert callback.options is options


def test_compression_budget_ranks_with_the_wrapped_methods_budget_criterion():
    from tfcompress.pruners import ratio_for_compression

    masked = tfc.wrap(conv_bn_net(widths=(16, 16, 32)), "taylor")  # no scores before fit
    assert ratio_for_compression(masked, 2.0) == ratio_for_compression(
        masked, 2.0, criterion="l1_filter"
    )
    with pytest.raises(ValueError, match="taylor needs data"):
        ratio_for_compression(masked, 2.0, criterion="taylor")
