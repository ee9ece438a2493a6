"""Pixel-wise cross-entropy with an ignore label (e.g. Cityscapes' 255)."""

import keras
from keras import ops

from tfcompress.numbers import check_int


@keras.saving.register_keras_serializable(package="tfcompress")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Mean cross-entropy over the batch's labelled pixels.

    Pixels whose label is `ignore_label` (or outside `[0, num_classes)`) contribute nothing;
    the result is the sum over the other pixels divided by their number in the whole batch,
    as PyTorch's `ignore_index`. `call` returns each image's share of that mean, so the loss
    reduces by `"sum"` (a per-image `sample_weight` scales that image's share).

    Args:
        ignore_label: int label to ignore.
        from_logits: whether `y_pred` are logits (the tfcompress models output logits).

    `y_true`: int labels `[B, H, W]` or `[B, H, W, 1]`; `y_pred`: `[B, H, W, num_classes]`.
    """

    def __init__(
        self, ignore_label=255, from_logits=True, name="segmentation_cross_entropy", dtype=None
    ):
        check_int("ignore_label", ignore_label)
        super().__init__(name=name, reduction="sum", dtype=dtype)
        self.ignore_label = int(ignore_label)  # an np.int64 too; the config stays JSON
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        labels = ops.cast(ops.convert_to_tensor(y_true), "int32")
        if len(labels.shape) == len(y_pred.shape):
            labels = ops.squeeze(labels, axis=-1)
        num_classes = y_pred.shape[-1]
        valid = (labels != self.ignore_label) & (labels >= 0) & (labels < num_classes)
        safe = ops.where(valid, labels, 0)
        if self.from_logits:
            log_probs = ops.log_softmax(y_pred, axis=-1)
        else:
            log_probs = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        nll = -ops.take_along_axis(log_probs, ops.expand_dims(safe, -1), axis=-1)[..., 0]
        nll = ops.where(valid, nll, 0.0)
        per_image = ops.sum(ops.reshape(nll, (ops.shape(nll)[0], -1)), axis=-1)
        return per_image / ops.maximum(ops.sum(ops.cast(valid, "float32")), 1.0)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction")
        return {**config, "ignore_label": self.ignore_label, "from_logits": self.from_logits}
