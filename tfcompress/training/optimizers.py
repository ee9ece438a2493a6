"""SGD whose weight decay is an L2 term of the gradient, as the seeds' (PyTorch, Caffe,
TF1) is; Keras's own `weight_decay` is decoupled.

    optimizer = SGD(PolyLR(0.01, 150000), momentum=0.9, weight_decay=1e-4)  # coupled

With momentum m and learning rate lr, coupled decay shrinks a weight whose loss gradient
is 0 by about lr * wd / (1 - m) per step, decoupled decay by lr * wd: ten times weaker
at m = 0.9 (after 1000 steps at lr 0.1, wd 1e-4: 0.906 against 0.990).
"""

import keras
from keras import ops

from tfcompress.training.config import DEFAULT_WEIGHT_DECAY_MODE, WEIGHT_DECAY_MODES


@keras.saving.register_keras_serializable(package="tfcompress")
class SGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` with a choice of weight decay.

    Args:
        learning_rate, momentum, nesterov, weight_decay, **kwargs: as
            `keras.optimizers.SGD`.
        weight_decay_mode: "coupled" (default): `wd * w` is added to the gradient before
            the momentum update, as `torch.optim.SGD(weight_decay=wd)`, Caffe's
            `weight_decay` and TF1's L2 losses do. "decoupled": Keras's own rule,
            `w -= lr * wd * w` before the update.

    Variables excluded with `exclude_from_weight_decay` get no decay in either mode.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.0,
        nesterov=False,
        weight_decay=None,
        *,
        weight_decay_mode=DEFAULT_WEIGHT_DECAY_MODE,
        **kwargs,
    ):
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(
                f"weight_decay_mode must be one of {list(WEIGHT_DECAY_MODES)}. "
                f"Received: weight_decay_mode={weight_decay_mode!r}"
            )
        super().__init__(
            learning_rate=learning_rate,
            momentum=float(momentum),
            nesterov=nesterov,
            weight_decay=weight_decay,
            **kwargs,
        )
        self.weight_decay_mode = weight_decay_mode

    @property
    def _coupled(self):
        return self.weight_decay is not None and self.weight_decay_mode == "coupled"

    def _apply_weight_decay(self, variables):
        if not self._coupled:
            super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        if self._coupled and self._use_weight_decay(variable):
            gradient = ops.add(
                ops.cast(gradient, variable.dtype),
                ops.multiply(ops.cast(self.weight_decay, variable.dtype), variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "weight_decay_mode": self.weight_decay_mode}
