"""The learning-rate policies of the seeds: poly (DeepLab, AdapNet++, PSPNet) and steps
(network slimming's `main.py`: x0.1 at 50 % and 75 % of the epochs)."""

import keras
from keras import ops

from tfcompress.numbers import check_count, is_int, is_number, plain


@keras.saving.register_keras_serializable(package="tfcompress")
class PolyLR(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate * (1 - step / max_iteration) ** power`, 0 from `max_iteration` on.

        optimizer = keras.optimizers.SGD(PolyLR(0.01, max_iteration=150000, power=0.9))

    Args:
        learning_rate: the rate at step 0 (> 0).
        max_iteration: the step at which the rate reaches 0 (>= 1).
        power: the exponent (>= 0; 0 keeps the rate constant, 1 is linear decay).
    """

    def __init__(self, learning_rate, max_iteration, power=0.9):
        if not is_number(learning_rate) or learning_rate <= 0:
            raise ValueError(
                f"learning_rate must be a number > 0. Received: learning_rate={learning_rate!r}"
            )
        check_count("max_iteration", max_iteration)
        if not is_number(power) or power < 0:
            raise ValueError(f"power must be a number >= 0. Received: power={power!r}")
        # Python numbers: the config is JSON (an np.int64 from an array is taken too)
        self.learning_rate = plain(learning_rate)
        self.max_iteration = plain(max_iteration)
        self.power = plain(power)

    def __call__(self, step):
        step = ops.minimum(ops.cast(step, "float32"), float(self.max_iteration))
        remaining = 1.0 - step / float(self.max_iteration)
        return float(self.learning_rate) * ops.power(remaining, float(self.power))

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "max_iteration": self.max_iteration,
            "power": self.power,
        }


def check_step_policy(boundaries, values, unit="steps", names=("boundaries", "values")):
    """Raises naming ``names`` unless ``values[i]`` from ``boundaries[i - 1]`` on
    (``values[0]`` before the first) is a step policy: ``boundaries`` strictly increasing
    (``unit`` "steps": integers >= 1; "epochs": numbers > 0), ``values`` one more numbers
    > 0. The one check of ``StepLR`` and of ``TrainConfig.lr_boundaries`` (epochs)."""
    b_name, v_name = names
    steps = unit == "steps"
    counted = is_int if steps else is_number
    if not all(counted(b) and b > 0 for b in boundaries) or any(
        a >= b for a, b in zip(boundaries, boundaries[1:])
    ):
        kind = "integers >= 1" if steps else "numbers > 0"
        raise ValueError(
            f"{b_name} must be strictly increasing {kind} ({unit}). Received: "
            f"{b_name}={list(boundaries)!r}"
        )
    if len(values) != len(boundaries) + 1 or not all(is_number(v) and v > 0 for v in values):
        raise ValueError(
            f"{v_name} must be {len(boundaries) + 1} numbers > 0 (one more than {b_name}). "
            f"Received: {v_name}={list(values)!r}"
        )


@keras.saving.register_keras_serializable(package="tfcompress")
class StepLR(keras.optimizers.schedules.LearningRateSchedule):
    """`values[i]` from step `boundaries[i - 1]` on (`values[0]` before the first):
    PyTorch's step decay (`param_group['lr'] *= 0.1` at the start of an epoch) when the
    boundaries are epochs times steps per epoch.

        # network slimming's main.py, 160 epochs of 782 steps: 0.1, x0.1 at 80 and 120
        StepLR([80 * 782, 120 * 782], [0.1, 0.01, 0.001])

    Args:
        boundaries: strictly increasing steps (integers >= 1) at which the rate changes.
        values: the rates (> 0), one more than the boundaries.
    """

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), list(values)
        check_step_policy(boundaries, values)
        self.boundaries = boundaries
        self.values = values

    def __call__(self, step):
        passed = ops.cast(ops.cast(step, "int64") >= ops.array(self.boundaries, "int64"), "int32")
        return ops.take(ops.array(self.values, "float32"), ops.sum(passed))

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}
