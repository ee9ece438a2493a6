"""Taylor importance under mixed precision: the gradients of a `LossScaleOptimizer`'s step
carry its loss scale (32768 at first), and a step it skips (overflow) has non-finite ones.
The scores used to carry the scale and to turn NaN, the pruning event then failing with
"No Taylor importance has been accumulated"."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules


def _net():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1))
    x = inputs
    for i, filters in enumerate((8, 8)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"c{i}")(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, dtype="float32")(x))


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 12, 12, 1)).astype("float32"), rng.integers(0, 4, 64)


def _scores(loss_factor=1.0, learning_rate=0.0, event=1000, epochs=1):
    x, y = _data()
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    masked = tfc.wrap(_net(), "taylor")
    masked.compile(keras.optimizers.SGD(learning_rate), lambda t, p: loss_factor * ce(t, p))
    callback = cb.StructuredPruning(schedules.OneShot(0.5, step=event), scope="global")
    masked.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False, callbacks=[callback])
    score = keras.ops.convert_to_numpy(masked.get_layer("c0_mask").score)
    return masked, callback, score


# the callback only gathers Taylor scores here: its event lies after the fit on purpose
@pytest.mark.filterwarnings("ignore::tfcompress.callbacks.ScheduleSkippedWarning")
def test_scores_do_not_carry_the_loss_scale(mixed_float16):
    _, _, mixed = _scores()
    keras.mixed_precision.set_global_policy("float32")
    _, _, full = _scores()
    # float16 activations and gradients: the same scores to ~20 % (they were 32768x)
    np.testing.assert_allclose(mixed, full, rtol=0, atol=0.25 * np.abs(full).max())


def test_a_skipped_overflowing_step_leaves_the_scores_finite_and_pruning_runs(mixed_float16):
    # a loss 1e3 times larger overflows float16 at the first loss scales: the optimizer
    # skips those steps (and lowers its scale); the event at step 3 still prunes
    masked, callback, score = _scores(loss_factor=1e3, learning_rate=1e-3, event=3, epochs=3)
    assert np.isfinite(score).all() and np.abs(score).max() > 0
    assert float(keras.ops.convert_to_numpy(masked.optimizer.dynamic_scale)) < 32768
    assert [step for step, _ in callback.events] == [3]


def test_a_float16_layer_reading_through_a_channel_map_runs_and_strips(mixed_float16):
    # Flatten -> Dense reads each conv channel at several inputs (a channel map): the
    # factor 1 of the channels no group holds was a float32 constant joined to float16
    # scales, and the masked model failed at its first call after the Taylor event
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, name="conv")(inputs))
    x = keras.layers.Dense(6, name="fc")(x)  # float16: the global policy
    model = keras.Model(inputs, keras.layers.Dense(3, dtype="float32", name="head")(x))
    x, _ = _data()
    x = x[:16, :8, :8]
    masked = tfc.wrap(model, "taylor")
    masked.compile(keras.optimizers.SGD(0.0), "mse")
    masked.fit(x, np.zeros((16, 3), "float32"), batch_size=8, epochs=1, verbose=0)
    tfc.prune(masked, 0.5)
    compact = tfc.strip(masked)
    assert compact.get_layer("conv").filters == 4
    out, ref = np.asarray(compact(x)), np.asarray(masked(x))
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-3 * np.abs(ref).max())


@pytest.mark.filterwarnings("ignore::tfcompress.callbacks.ScheduleSkippedWarning")
def test_scores_measured_with_data_after_a_mixed_precision_fit_are_not_unscaled(mixed_float16):
    """`score_groups(data=)` / `prune(data=)` take gradients of the loss itself; after a
    fit with the callback, whose masks watch the LossScaleOptimizer, the measured scores
    came out divided by its scale (32768x smaller: a `threshold=` kept 1 channel of 12)."""
    x, y = _data()
    masked = tfc.wrap(_net(), "taylor")
    masked.compile(keras.optimizers.SGD(0.0),  # weights unchanged by the fit
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    _, _, before = tfc.pruners.score_groups(masked, "taylor", data=(x, y))
    callback = cb.StructuredPruning(schedules.OneShot(0.5, step=1000))
    masked.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    assert isinstance(masked.optimizer, keras.optimizers.LossScaleOptimizer)
    _, _, after = tfc.pruners.score_groups(masked, "taylor", data=(x, y))
    assert sorted(before) == sorted(after)
    for group in before:
        np.testing.assert_allclose(after[group], before[group], rtol=1e-6)
