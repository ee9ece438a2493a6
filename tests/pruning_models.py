"""Tiny models and data for the pruning-method tests (issue 3)."""

import keras
import numpy as np
from keras import layers


def conv_bn_net(input_shape=(12, 12, 1), widths=(8, 8, 16), classes=4, seed=0):
    """conv-BN-ReLU blocks (a max-pool after the second), GAP, Dense logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for i, filters in enumerate(widths):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if i == 1:
            x = layers.MaxPooling2D(name="pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="conv_bn_net")


def data(n=128, input_shape=(12, 12, 1), classes=4, seed=0):
    """Learnable toy data: the class sets the mean brightness of one image quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.uniform(0, 0.3, (n, *input_shape)).astype("float32")
    h, w = input_shape[0] // 2, input_shape[1] // 2
    for c in range(classes):
        r, q = divmod(c, 2)
        x[y == c, r * h:(r + 1) * h, q * w:(q + 1) * w] += 0.7
    return x, y


def ready_to_fit(model, x, y):
    """Makes now what `fit`'s first step would create: the compiled optimizer's slots and
    the loss and metric trackers (a model with several outputs gets one per output), from
    one batch `(x, y)`; `fit` resets the metrics. Then `fit` traces its step once: a
    tf.function that creates variables on its first trace is traced again (2 traces -> 1,
    counted with a train_step counter)."""
    model.optimizer.build(model.trainable_variables)
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred)
    model.compute_metrics(x, y, y_pred, sample_weight=None)


def compile_model(model, lr=1e-2):
    """Adam, sparse cross-entropy on logits, accuracy; `ready_to_fit` on one zero example
    when the model has one output and inputs of known shape."""
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    labels = tuple(model.outputs[0].shape[1:-1])  # sparse labels: the output but classes
    if len(model.outputs) == 1 and all(None not in s for s in [*shapes, labels]):
        x = [np.zeros((1, *s), "float32") for s in shapes]
        ready_to_fit(model, x[0] if len(x) == 1 else x, np.zeros((1, *labels), "int32"))
    return model


def mask_values(model):
    """`{mask layer name: mask as numpy}` for every ChannelMask of `model`."""
    from tfcompress.layers import ChannelMask

    return {m.name: np.asarray(m.mask) for m in model.layers if isinstance(m, ChannelMask)}
