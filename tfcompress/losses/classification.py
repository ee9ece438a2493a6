"""Classification cross-entropy on integer labels, with optional label smoothing."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfcompress")
class ClassificationCrossEntropy(keras.losses.Loss):
    """Cross-entropy between integer labels `[B]` (or `[B, 1]`) and scores `[B, C]`.

    With `label_smoothing = s` the target is `(1 - s) * one_hot + s / C`.
    """

    def __init__(
        self,
        from_logits=True,
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name="classification_cross_entropy",
        dtype=None,
    ):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"label_smoothing must be in [0, 1). Received: label_smoothing={label_smoothing}"
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1, 1))
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            log_probs = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        nll = -ops.take_along_axis(log_probs, labels, axis=-1)[:, 0]
        if not self.label_smoothing:
            return nll
        uniform = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
        }
