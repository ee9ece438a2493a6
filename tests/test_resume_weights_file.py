"""A run resumed from a weights file into an unbuilt optimizer restarts its schedule at
step 0 on pruned masks: the scheduled callbacks say so (`ScheduleRestartWarning`), and
stay quiet for a fresh model, a built optimizer and a `.keras` file, which resume."""

import re
import warnings

import keras
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules

from .pruning_models import conv_bn_net, data

BATCH, EPOCHS = 16, 2  # 64 images: 4 steps per epoch, 8 per fit


def _wrapped(method):
    """A wrapped model compiled with a fresh optimizer, not built (as `compile` leaves it)."""
    masked = tfc.wrap(conv_bn_net(seed=0), method)
    masked.compile(optimizer=keras.optimizers.Adam(1e-2),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return masked


def _callback(method):
    """Events at steps 2, 8 and 14: the first fit prunes at 2, a resumed one at 8 and 14."""
    schedule = schedules.Iterative(0.5, begin_step=2, end_step=14, frequency=6)
    if method == "magnitude":
        return cb.MagnitudePruning(schedule)
    return cb.StructuredPruning(schedule)


def _fit(model, method):
    """Fits `model` one run of `EPOCHS`; returns the steps of its pruning events."""
    callback = _callback(method)
    x, y = data(64)
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[callback])
    return [step for step, _ in callback.events]


def _quiet_fit(model, method):
    """`_fit`, failing on a `ScheduleRestartWarning`."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", cb.ScheduleRestartWarning)
        return _fit(model, method)


def _weights_file(method, tmp_path):
    """A weights file of a model pruned at step 2 of 8 (its first fit's only event)."""
    first = _wrapped(method)
    assert _quiet_fit(first, method) == [2]  # a fresh wrapped model: no warning
    path = str(tmp_path / "pruned.weights.h5")
    first.save_weights(path)
    return path


@pytest.mark.parametrize("method, pruned", [
    ("l1_filter", "4 of 32 channels (0.125)"),
    ("magnitude", "310 of 1864 masked weights (0.166)"),
])
def test_a_weights_file_into_an_unbuilt_optimizer_warns_of_the_restart(
        method, pruned, tmp_path):
    path = _weights_file(method, tmp_path)
    resumed = _wrapped(method)
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        resumed.load_weights(path)  # Keras's own warning: the step is not restored
    name = type(_callback(method)).__name__
    with pytest.warns(cb.ScheduleRestartWarning, match=re.escape(
            f"Model 'conv_bn_net': {name} starts its schedule from step 0 (the optimizer's "
            f"iterations = 0), but the model's masks already prune {pruned}")) as caught:
        steps = _fit(resumed, method)
    assert steps == [2]  # the event of step 2 again, on the pruned model
    (message,) = [str(w.message) for w in caught
                  if issubclass(w.category, cb.ScheduleRestartWarning)]
    for fix in ("model.optimizer.build(model.trainable_variables)", "model.load_weights",
                ".keras file", "keras.callbacks.BackupAndRestore",
                "warnings.filterwarnings('ignore', "
                "category=tfcompress.callbacks.ScheduleRestartWarning)"):
        assert fix in message, fix


@pytest.mark.parametrize("method", ["l1_filter", "magnitude"])
def test_a_weights_file_into_a_built_optimizer_resumes_without_a_warning(method, tmp_path):
    path = _weights_file(method, tmp_path)
    resumed = _wrapped(method)
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(path)
    assert int(resumed.optimizer.iterations) == 8
    assert _quiet_fit(resumed, method) == [8, 14]  # the schedule's next events, not 2


def test_a_keras_file_resumes_without_a_warning(tmp_path):
    first = _wrapped("l1_filter")
    _quiet_fit(first, "l1_filter")
    path = str(tmp_path / "pruned.keras")
    first.save(path)
    resumed = keras.saving.load_model(path)
    assert int(resumed.optimizer.iterations) == 8
    assert _quiet_fit(resumed, "l1_filter") == [8, 14]


def test_a_fit_from_a_pruned_model_on_purpose_is_silenced_by_the_category():
    masked = _wrapped("l1_filter")
    tfc.prune(masked, 0.25)
    with pytest.warns(cb.ScheduleRestartWarning, match="already prune 8 of 32 channels"):
        _fit(masked, "l1_filter")
    again = _wrapped("l1_filter")
    tfc.prune(again, 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cb.ScheduleRestartWarning)
        warnings.filterwarnings("ignore", category=cb.ScheduleRestartWarning)  # the advice
        assert _fit(again, "l1_filter") == [2]
