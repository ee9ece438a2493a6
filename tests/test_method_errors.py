"""Bad input to the pruning methods gives a clear error naming the value."""

import re

import keras
import numpy as np
import pytest
from keras import layers

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.pruners import prune_weights, ratio_for_compression, recalibrate_bn

from .pruning_models import compile_model, conv_bn_net, data


def _no_bn_net():
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, activation="relu", name="c0")(inputs)
    x = layers.Conv2D(4, 3, activation="relu", name="c1")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(2)(x))


@pytest.mark.parametrize("ratio", [1.0, -0.2, 1.5])
def test_sparsity_outside_unit_interval(ratio):
    with pytest.raises(ValueError, match=f"ratio={ratio}"):
        tfc.prune(tfc.wrap(conv_bn_net(), "taylor"), ratio, method="taylor")
    with pytest.raises(ValueError, match=f"ratio={ratio}"):
        prune_weights(tfc.wrap(conv_bn_net(), "magnitude"), ratio=ratio)
    with pytest.raises(ValueError, match=f"final_ratio={ratio}"):
        schedules.Polynomial(0.0, ratio, 0, 100)


def test_taylor_without_data():
    masked = tfc.wrap(conv_bn_net(), "taylor")
    with pytest.raises(ValueError, match="taylor needs data"):
        tfc.prune(masked, 0.5, method="taylor")


def test_taylor_data_needs_a_compiled_loss():
    x, y = data(8)
    with pytest.raises(ValueError, match="compile model"):
        tfc.prune(tfc.wrap(conv_bn_net(), "taylor"), 0.5, method="taylor", data=[(x, y)])


def test_taylor_data_in_a_form_it_cannot_read_is_named():
    """Inputs without labels, a list of such batches, an unbatched dataset: each refused
    with what data must be and what was received (before: Keras's "Attempt to convert a
    value (None)" or an input shape error)."""
    import tensorflow as tf

    x, y = data(8)
    masked = compile_model(tfc.wrap(conv_bn_net(), "taylor"))
    forms = (
        "taylor's data must be an iterable of (x, y) or (x, y, sample_weight) batches (e.g. "
        "a batched tf.data.Dataset, or [(x, y)] for one batch), or a tuple (x, y) of arrays "
        "as fit takes them (cut into batches of 32)"
    )
    with pytest.raises(ValueError) as info:
        tfc.prune(masked, 0.5, data=x)
    assert str(info.value) == (
        "taylor measures gradients of the loss, which needs labels: data must be "
        + forms.removeprefix("taylor's data must be ")
        + ". Received: data=ndarray of shape (8, 12, 12, 1) (inputs alone)"
    )
    with pytest.raises(ValueError) as info:
        tfc.prune(masked, 0.5, data=[x])
    assert str(info.value) == (
        f"{forms}. Received: batch=ndarray of shape (8, 12, 12, 1) from data=list of 1 "
        "(ndarray of shape (8, 12, 12, 1))"
    )
    with pytest.raises(ValueError) as info:
        tfc.prune(masked, 0.5, data=tf.data.Dataset.from_tensor_slices((x, y)))
    assert str(info.value).startswith(
        f"{forms}; its batches hold single examples (x of shape (12, 12, 1), model "
        f"'{masked.name}' takes batches of shape (None, 12, 12, 1)): batch it, e.g. "
        "`dataset.batch(32)`. Received: data="
    )
    with pytest.raises(TypeError, match=r"Received: data=int$"):
        tfc.prune(masked, 0.5, data=3)


def test_taylor_data_as_fit_takes_it():
    """`data=(x, y)` arrays, as fit takes them, are cut into batches of 32: the same
    scores as the batches given one by one."""
    import tensorflow as tf

    x, y = data(40)
    plans = []
    for given in ((x, y), tf.data.Dataset.from_tensor_slices((x, y)).batch(32)):
        masked = compile_model(tfc.wrap(conv_bn_net(), "taylor"))
        plans.append(tfc.prune(masked, 0.5, data=given).keep)
    assert plans[0] == plans[1] and plans[0]


def test_prune_reads_steps_batches_of_endless_data():
    # taylor read every batch: prune(data=<endless>) never returned
    x, y = data(16)
    read = []

    def endless():
        while len(read) < 50:  # a guard for the test, not the fix
            read.append(1)
            yield x[:8], y[:8]

    masked = compile_model(tfc.wrap(conv_bn_net(), "taylor"))
    plan = tfc.prune(masked, 0.5, data=endless(), steps=3)
    assert len(read) == 3 and plan.keep
    other = compile_model(tfc.wrap(conv_bn_net(), "taylor"))
    assert tfc.prune(other, 0.5, data=[(x[:8], y[:8])] * 3).keep == plan.keep
    with pytest.raises(ValueError, match=re.escape(
            "steps must be an integer >= 1 or None. Received: steps=0")):
        tfc.prune(masked, 0.5, data=endless(), steps=0)


@pytest.mark.parametrize("method", ["l1_filter", "slimming", "soft_topk"])
def test_data_and_steps_are_refused_by_criteria_that_read_no_data(method):
    # accepted and left unread (the plan was the same as without them), while the
    # magnitude path refused them
    x, y = data(8)
    masked = compile_model(tfc.wrap(conv_bn_net(), method))
    criterion = {"soft_topk": "soft_topk"}.get(method)  # soft_topk's own ranking: on purpose
    with pytest.raises(ValueError, match=re.escape(
            f"Criterion {method!r} scores channels from the model's weights and reads no "
            "data; data and steps would be left unread.") + ".*" + re.escape(
            "Received: data=tuple of 2 (ndarray of shape (8, 12, 12, 1), ndarray of shape "
            "(8,)), steps=3")):
        tfc.prune(masked, 0.5, data=(x, y), steps=3, criterion=criterion)
    with pytest.raises(ValueError, match=re.escape(
            "data would be left unread. Leave it out")):
        tfc.prune(masked, 0.5, data=[(x, y)], criterion=criterion)
    with pytest.raises(ValueError, match=re.escape("Received: steps=2")):
        tfc.prune(masked, 0.5, steps=2, criterion=criterion)
    assert tfc.pruners.mask_stats(masked)["channel_sparsity"] == 0.0  # nothing applied


def test_data_is_refused_by_the_budget_search_of_criteria_that_read_no_data():
    x, y = data(8)
    masked = tfc.wrap(conv_bn_net(), "l1_filter")
    with pytest.raises(ValueError, match=re.escape(
            "Criterion 'l1_filter' scores channels from the model's weights")):
        ratio_for_compression(masked, 2, data=[(x, y)])


def test_taylor_steps_without_data_is_refused():
    # steps= without data= was left unread (the accumulated scores ranked)
    masked = compile_model(tfc.wrap(conv_bn_net(), "taylor"))
    with pytest.raises(ValueError, match=re.escape(
            "steps is how many batches of data to measure; without data it would be left "
            "unread. Pass data= with it, or leave steps out. Received: data=None, steps=3")):
        tfc.prune(masked, 0.5, steps=3)


def test_taylor_callback_needs_taylor_masks():
    x, y = data(32)
    masked = compile_model(tfc.wrap(conv_bn_net(), "l1_filter"))
    callback = cb.StructuredPruning(schedules.OneShot(0.5, 1), method="taylor")
    with pytest.raises(ValueError, match="method='taylor'"):
        masked.fit(x, y, epochs=1, verbose=0, callbacks=[callback])


def test_slimming_without_batchnorm():
    with pytest.raises(ValueError, match="no BatchNormalization"):
        tfc.wrap(_no_bn_net(), "slimming")


def test_slimming_criterion_without_batchnorm_is_refused_as_wrap_refuses_it():
    # prune(criterion="slimming") scored every channel +inf and pruned nothing, silently
    model = _no_bn_net()
    with pytest.raises(ValueError) as refused:
        tfc.wrap(model, "slimming")
    masked = tfc.wrap(model)
    with pytest.raises(ValueError) as info:
        tfc.prune(masked, 0.5, criterion="slimming")
    assert str(info.value) == str(refused.value) == (
        f"slimming ranks channels by their BatchNorm scale, but model '{masked.name}' has "
        "no BatchNormalization (with scale=True; on its own or in a TimeDistributed) on "
        "prunable channels. Use method='l1_filter' or 'taylor' for this model.")
    with pytest.raises(ValueError, match="no BatchNormalization"):
        ratio_for_compression(masked, 2, criterion="slimming")
    assert tfc.prune(tfc.wrap(conv_bn_net()), 0.5, criterion="slimming").keep  # with BN


@pytest.mark.parametrize("penalty", [0, -1e-4, "big"])
def test_slimming_bad_penalty(penalty):
    with pytest.raises(ValueError, match="penalty="):
        tfc.wrap(conv_bn_net(), "slimming", penalty=penalty)


def test_options_for_a_method_without_them():
    with pytest.raises(ValueError, match="takes no wrap options"):
        tfc.wrap(conv_bn_net(), "l1_filter", penalty=1e-4)


def test_an_unknown_option_is_named_with_the_methods_own():
    with pytest.raises(ValueError, match=r"Method 'slimming' takes the wrap options \['penalty'\], "
                                         r"not \['penalti'\]. Received: \{'penalti': 0.0001\}"):
        tfc.wrap(conv_bn_net(), "slimming", penalti=1e-4)  # was bn_gamma_l1()'s TypeError


def test_exclude_takes_one_name_or_a_list_of_names():
    model = conv_bn_net()
    masked = tfc.wrap(model, "l1_filter", exclude="conv1")
    assert tfc.methods.wrapping_of(masked).exclude == ("conv1",)
    assert len(tfc.methods.graph_of(masked).prunable_groups) == 1  # conv2: conv1 keeps both sides
    graph = tfc.DependencyGraph(model, exclude="conv0")  # one name, not 'c', 'o', ...
    assert graph.exclude == ("conv0",)
    with pytest.raises(TypeError, match=r"exclude must be layer names: a list of str \(or one "
                                        r"str\). Received: exclude=\[3\]"):
        tfc.wrap(model, "l1_filter", exclude=[3])


def test_exclude_names_a_nested_model_for_all_its_layers():
    inner = keras.Sequential([keras.Input((8, 8, 8)), layers.Conv2D(8, 3, name="ic1"),
                              layers.ReLU(name="ir"), layers.Conv2D(8, 1, name="ic2")],
                             name="inner")
    inputs = keras.Input((10, 10, 3))
    x = inner(layers.Conv2D(8, 3, name="c0")(inputs))
    x = layers.Conv2D(16, 1, name="c3")(x)
    model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x)))
    graph = tfc.DependencyGraph(model, exclude=["inner"])  # was "not in model"
    assert graph.exclude == ("ic1", "ir", "ic2")
    assert [g.pinned_by for g in graph.groups if "ic1" in {m.layer.name for m in g.members}] \
        == ["excluded layer ic1"] * 2
    masked = tfc.wrap(model, "l1_filter", exclude="inner")
    tfc.prune(masked, ratio=0.5)
    compact = tfc.strip(masked)
    assert compact.get_layer("c3").filters == 8 and compact.get_layer("c0").filters == 8


def test_soft_topk_epochs_out_of_order():
    with pytest.raises(ValueError, match="starting_epoch=4, ending_epoch=3"):
        cb.SoftTopK(schedules.ACoSPTemperature(0.5, ending_epoch=3, starting_epoch=4))


def test_soft_topk_on_a_model_without_soft_masks():
    x, y = data(32)
    masked = compile_model(tfc.wrap(conv_bn_net(), "l1_filter"))
    with pytest.raises(ValueError, match="method='soft_topk'"):
        masked.fit(x, y, epochs=1, verbose=0,
                   callbacks=[cb.SoftTopK(schedules.ACoSPTemperature(0.5, 2))])


def test_magnitude_callback_on_a_channel_masked_model():
    x, y = data(32)
    masked = compile_model(tfc.wrap(conv_bn_net(), "l1_filter"))
    with pytest.raises(ValueError, match="method='magnitude'"):
        masked.fit(x, y, epochs=1, verbose=0,
                   callbacks=[cb.MagnitudePruning(schedules.OneShot(0.5))])


def test_structured_callback_on_a_soft_topk_model_names_its_callback():
    # it ranked by the never-trained logits (only SoftTopK trains them), silently
    x, y = data(32)
    masked = compile_model(tfc.wrap(conv_bn_net(), "soft_topk"))
    with pytest.raises(ValueError, match=r"method='soft_topk', whose masks SoftTopK drives; "
                                         r".* untrained 'soft_topk' scores"):  # fmt: skip
        masked.fit(x, y, epochs=1, verbose=0,
                   callbacks=[cb.StructuredPruning(schedules.OneShot(0.5))])
    # another criterion on purpose: accepted
    masked.fit(x, y, epochs=1, verbose=0,
               callbacks=[cb.StructuredPruning(schedules.OneShot(0.5), criterion="l1_filter")])


def test_prune_on_a_soft_topk_model_names_its_callback_as_the_callback_does():
    # tfc.prune ranked by the never-trained logits, silently, where StructuredPruning refused
    masked = tfc.wrap(conv_bn_net(), "soft_topk")
    with pytest.raises(ValueError, match=re.escape(
            f"Model '{masked.name}' was wrapped with method='soft_topk', whose masks SoftTopK "
            "drives; prune would rank its channels by their untrained 'soft_topk' scores. "
            "Use tfcompress.callbacks.SoftTopK, or pass criterion= to rank by another "
            "criterion on purpose.")):
        tfc.prune(masked, 0.5)
    assert tfc.pruners.mask_stats(masked)["channel_sparsity"] == 0.0  # nothing applied
    for criterion in ("l1_filter", "soft_topk"):  # on purpose: accepted
        assert tfc.prune(tfc.wrap(conv_bn_net(), "soft_topk"), 0.5, criterion=criterion).keep


def test_soft_topk_steps_per_epoch_is_a_count():
    assert cb.SoftTopK(schedules.ACoSPTemperature(0.5, 2), steps_per_epoch=np.int64(8)
                       ).steps_per_epoch == 8  # fmt: skip
    for bad in (True, 0, 2.5):
        with pytest.raises(ValueError, match=rf"Received: steps_per_epoch={bad!r}"):
            cb.SoftTopK(schedules.ACoSPTemperature(0.5, 2), steps_per_epoch=bad)


def test_callbacks_reject_non_schedules_and_bad_options():
    with pytest.raises(TypeError, match="schedule=0.5"):
        cb.StructuredPruning(0.5)
    with pytest.raises(ValueError, match="scope='layer'"):
        cb.StructuredPruning(schedules.OneShot(0.5), scope="layer")
    with pytest.raises(ValueError, match="round_to=0"):
        cb.StructuredPruning(schedules.OneShot(0.5), round_to=0)
    with pytest.raises(ValueError, match="min_channels=0"):
        tfc.prune(tfc.wrap(conv_bn_net()), 0.5, min_channels=0)
    with pytest.raises(ValueError, match="method='fisher'"):
        cb.StructuredPruning(schedules.OneShot(0.5), method="fisher")
    with pytest.raises(ValueError, match="quality=-1"):
        cb.MagnitudePruning(schedules.OneShot(0.5), quality=-1)
    with pytest.raises(ValueError, match="scope='layer'"):
        cb.MagnitudePruning(schedules.OneShot(0.5), scope="layer")
    with pytest.raises(ValueError, match="scope='all'"):
        prune_weights(tfc.wrap(conv_bn_net(), "magnitude"), ratio=0.5, scope="all")


def test_register_criterion_refuses_a_taken_name_and_a_non_callable():
    # register_criterion("l1_filter", fn) replaced the built-in for every later prune,
    # and register_criterion("mine", 42) was accepted
    from tfcompress import importance

    builtin = importance.CRITERIA["l1_filter"]
    with pytest.raises(ValueError, match=re.escape(
            "A criterion named 'l1_filter' is already registered; register yours under "
            "another name. Received: name='l1_filter', fn=")):
        importance.register_criterion("l1_filter", lambda group, **context: None)
    assert importance.CRITERIA["l1_filter"] is builtin
    with pytest.raises(TypeError, match=re.escape(
            "fn must be callable: fn(group, **context) -> one score per channel. "
            "Received: fn=42")):
        importance.register_criterion("mine", 42)
    with pytest.raises(ValueError, match=re.escape(
            "name must be a non-empty string. Received: name=''")):
        importance.register_criterion("", builtin)
    assert "mine" not in importance.CRITERIA and "" not in importance.CRITERIA


def test_han_quality_is_per_layer_so_not_with_a_global_scope():
    # MagnitudePruning(schedule, quality=0.7, scope="global") was accepted, scope unused
    message = re.escape(
        "quality thresholds each layer by its own weights' std; scope='global' applies to "
        "a ratio only. Received: quality=0.7, scope='global'")
    with pytest.raises(ValueError, match=message):
        cb.MagnitudePruning(schedules.OneShot(0.5), quality=0.7, scope="global")
    with pytest.raises(ValueError, match=message):
        prune_weights(tfc.wrap(conv_bn_net(), "magnitude"), quality=0.7, scope="global")
    cb.MagnitudePruning(schedules.OneShot(0.5), quality=0.7)
    cb.MagnitudePruning(schedules.OneShot(0.5), scope="global")


def test_exactly_one_removal_rule():
    with pytest.raises(ValueError, match="exactly one of ratio, threshold or num_remove"):
        tfc.prune(tfc.wrap(conv_bn_net()), 0.5, threshold=0.1)
    with pytest.raises(ValueError, match="exactly one of ratio or quality"):
        prune_weights(tfc.wrap(conv_bn_net(), "magnitude"))


def test_uncompiled_model_in_fit_loop():
    masked = tfc.wrap(conv_bn_net())
    callback = cb.StructuredPruning(schedules.OneShot(0.5))
    callback.set_model(masked)
    callback.on_train_begin()
    with pytest.raises(ValueError, match="not compiled"):
        callback.on_train_batch_begin(0)


def test_compression_below_one_and_bn_free_recalibration():
    with pytest.raises(ValueError, match="compression=0.5"):
        ratio_for_compression(tfc.wrap(conv_bn_net()), 0.5)
    with pytest.raises(ValueError, match="no BatchNormalization"):
        recalibrate_bn(_no_bn_net(), [np.zeros((1, 8, 8, 1), "float32")])


def test_structured_pruning_refuses_a_magnitude_model_before_any_restart_warning():
    """A magnitude model already pruned: the refusal came after a ScheduleRestartWarning
    about its masked weights, a warning about a run that never starts."""
    import warnings

    x, y = data(16)
    masked = tfc.wrap(conv_bn_net(), "magnitude")
    tfc.prune(masked, 0.5)
    compile_model(masked)
    callback = cb.StructuredPruning(schedules.OneShot(0.5, step=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=re.escape(
                f"StructuredPruning prunes channels, but model '{masked.name}' was wrapped "
                "with method='magnitude'. Use MagnitudePruning.")):  # fmt: skip
            masked.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    assert not [w for w in caught if issubclass(w.category, cb.ScheduleRestartWarning)]
