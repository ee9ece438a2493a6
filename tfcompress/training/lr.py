"""The poly learning-rate policy of the seeds (DeepLab, AdapNet++, PSPNet)."""

import keras
from keras import ops


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
        if (
            isinstance(learning_rate, bool)
            or not isinstance(learning_rate, (int, float))
            or (learning_rate <= 0)
        ):
            raise ValueError(
                f"learning_rate must be a number > 0. Received: learning_rate={learning_rate!r}"
            )
        if (
            isinstance(max_iteration, bool)
            or not isinstance(max_iteration, int)
            or (max_iteration < 1)
        ):
            raise ValueError(
                f"max_iteration must be an integer >= 1. Received: max_iteration={max_iteration!r}"
            )
        if isinstance(power, bool) or not isinstance(power, (int, float)) or power < 0:
            raise ValueError(f"power must be a number >= 0. Received: power={power!r}")
        self.learning_rate = learning_rate
        self.max_iteration = max_iteration
        self.power = power

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
