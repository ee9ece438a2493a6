"""A weight restore that undoes pruning (EarlyStopping(restore_best_weights=True), a
reload of a best checkpoint) is named, not passed through silently
(`tfcompress.pruners.restored`)."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.pruners import restored

STEPS = 4  # per epoch: 64 examples in batches of 16


def _model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


def _pruning(method):
    if method == "magnitude":
        return tfc.callbacks.MagnitudePruning(tfc.schedules.OneShot(0.5, step=STEPS + 1))
    if method == "soft_topk":
        return tfc.callbacks.SoftTopK(
            tfc.schedules.ACoSPTemperature(0.5, ending_epoch=1), min_channels=1
        )
    return tfc.callbacks.StructuredPruning(tfc.schedules.OneShot(0.5, step=STEPS + 1))


class _FirstIsBest(keras.callbacks.Callback):
    """Logs `age` = -epoch: its best epoch (mode "max") is the first one, whatever the
    losses."""

    def on_epoch_end(self, epoch, logs=None):
        logs["age"] = -epoch


def _fit(method, restore, first=False):
    """Fits a wrapped model 3 epochs, pruning in the second; `restore`: the arguments of
    an EarlyStopping that brings back the weights of its best epoch, the first
    (`_FirstIsBest`), listed before the pruning callback when `first`."""
    keras.utils.set_random_seed(0)
    masked = tfc.wrap(_model(), method=method)
    masked.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 3), np.float32), rng.integers(0, 4, 64)
    callbacks = [_pruning(method)]
    if restore is not None:
        stopping = keras.callbacks.EarlyStopping(
            monitor="age", mode="max", patience=5, restore_best_weights=True, **restore
        )
        callbacks[0 if first else 1 : 0 if first else 1] = [_FirstIsBest(), stopping]
    masked.fit(x, y, batch_size=16, epochs=3, shuffle=False, callbacks=callbacks, verbose=0)
    return masked


def _nonzero(model):
    return sum(int(np.count_nonzero(w)) for w in model.get_weights())


def _warnings(caplog):
    messages = [record.getMessage() for record in caplog.records]
    return [m for m in messages if "keep more than pruning left" in m]


@pytest.mark.parametrize("method", ["l1_filter", "magnitude", "soft_topk"])
def test_strip_names_the_masks_a_restore_brought_back(method, caplog):
    masked = _fit(method, restore={})
    grown = restored.restored_masks(masked)
    channels = method != "magnitude"  # channels kept grow, or weight sparsity shrinks
    assert grown and all((now > left) == channels for left, now in grown.values())
    with caplog.at_level("WARNING", logger="absl"):
        compact = tfc.strip(masked)
    (message,) = _warnings(caplog)
    assert f"Model '{masked.name}'" in message and "EarlyStopping(start_from_epoch" in message
    for key, (left, now) in grown.items():
        assert f"{key}: {left:.4g} -> {now:.4g}" in message
    # what the warning is about: the compact model is larger than pruning left it
    assert _nonzero(compact) > _nonzero(tfc.strip(_fit(method, restore=None)))


def test_a_restore_before_the_pruning_callback_ends_is_named_at_the_end_of_fit(caplog):
    with caplog.at_level("WARNING", logger="absl"):
        _fit("l1_filter", restore={}, first=True)
    (message,) = _warnings(caplog)
    assert "kept_channels/c1_mask: 8 -> 16" in message and "(step 5)" in message


@pytest.mark.parametrize("method", ["l1_filter", "magnitude"])
def test_no_warning_when_the_restore_watches_epochs_after_pruning(method, caplog):
    with caplog.at_level("WARNING", logger="absl"):
        masked = _fit(method, restore={"start_from_epoch": 2})
        tfc.strip(masked)
        unrestored = _fit(method, restore=None)
        tfc.strip(unrestored)
    assert not _warnings(caplog)
    assert not restored.restored_masks(masked)
