"""`callbacks.StepLog`: a line and TensorBoard scalars every N steps of a fit (the
deep_compression recipe's `--skip_step`), counted on the optimizer's step."""

import re

import keras
import numpy as np
import pytest

from tfcompress.callbacks import StepLog

from .summaries import scalars


def _model(**compile_args):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), metrics=["accuracy"], run_eagerly=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  **compile_args)  # fmt: skip
    return model


def _data(n=32):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype("float32")
    return x, x[:, :3].argmax(1)


def _lines(caplog, name):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{name}: ")]


def _steps(lines):
    return [re.match(r"\w+: step (\S+)", line).group(1) for line in lines]




def test_a_line_every_n_steps_and_at_the_last_counted_on_the_optimizers_step(caplog, tmp_path):
    model, (x, y) = _model(), _data()
    with caplog.at_level("INFO", logger="absl"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0,
                  callbacks=[StepLog(3, "pruned", tmp_path)])  # fmt: skip
        model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                  callbacks=[StepLog(3, "pruned")])  # fmt: skip  (fitted again: counts on)
    lines = _lines(caplog, "pruned")
    assert _steps(lines) == ["3/8", "6/8", "8/8", "9/12", "12/12"]
    assert re.fullmatch(r"pruned: step 3/8  loss \d\.\d{4}  lr 0\.100000  "
                        r"accuracy \d\.\d{4}  [\d.]+ steps/s", lines[0]), lines[0]  # fmt: skip
    written = scalars(tmp_path)
    assert set(written) == {"train/pruned/loss", "train/pruned/accuracy",
                            "train/pruned/learning_rate"}  # fmt: skip
    assert sorted(written["train/pruned/loss"]) == [3, 6, 8]
    assert written["train/pruned/learning_rate"][8] == pytest.approx(0.1)


def test_several_steps_per_execution_log_once_past_each_multiple(caplog):
    model, (x, y) = _model(steps_per_execution=2), _data()
    with caplog.at_level("INFO", logger="absl"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[StepLog(3, "dense")])
    assert _steps(_lines(caplog, "dense")) == ["4/8", "6/8", "8/8"]


def test_steps_per_execution_not_dividing_the_epoch_counts_the_optimizers_steps(caplog):
    """8 steps per epoch in executions of 3 (the optimizer at 3, 6, 8, 11, 14, 16): Keras
    passes batch 7 for the epoch's last, partial execution (2 steps); counted from
    `batch`, the step ran one ahead per epoch (6, 9, 12, 18/16: past the end)."""
    model, (x, y) = _model(steps_per_execution=3), _data(64)
    with caplog.at_level("INFO", logger="absl"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[StepLog(4, "dense")])
    assert _steps(_lines(caplog, "dense")) == ["6/16", "8/16", "14/16", "16/16"]
    assert int(model.optimizer.iterations) == 16


def test_initial_epoch_ends_where_this_fit_ends():
    """fit(epochs=3, initial_epoch=1) trains 2 epochs: the end is 8 steps on, not 12,
    and the last step has its line."""
    model, (x, y) = _model(), _data()
    with pytest.MonkeyPatch.context() as patch:
        logged = []
        patch.setattr("tfcompress.callbacks.step_log.logging.info", logged.append)
        model.fit(x, y, batch_size=8, epochs=3, initial_epoch=1, verbose=0,
                  callbacks=[StepLog(5, "dense")])  # fmt: skip
    assert _steps(logged) == ["5/8", "8/8"]


@pytest.mark.parametrize("every", [0, 2.5, True, None])
def test_every_must_be_a_positive_integer(every):
    with pytest.raises(ValueError, match=re.escape(
            f"every must be an integer >= 1. Received: every={every!r}")):  # fmt: skip
        StepLog(every, "dense")
