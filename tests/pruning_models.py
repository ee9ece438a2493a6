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


def compile_model(model, lr=1e-2):
    """Adam, sparse cross-entropy on logits, accuracy; with everything the first train step
    would create made now (the optimizer's slots, the loss and metric trackers), so `fit`
    traces its step once: a tf.function that creates variables on its first trace is traced
    again (2 traces -> 1, counted with a train_step counter)."""
    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(model.trainable_variables)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    if len(model.outputs) == 1 and all(None not in s for s in shapes):
        x = [np.zeros((1, *s), "float32") for s in shapes]
        x = x[0] if len(x) == 1 else x
        y_pred = model(x, training=False)
        y = np.zeros(tuple(y_pred.shape[:-1]), "int32")
        model.compute_loss(x=x, y=y, y_pred=y_pred)
        model.compute_metrics(x, y, y_pred, sample_weight=None)  # fit resets them
    return model


def mask_values(model):
    """`{mask layer name: mask as numpy}` for every ChannelMask of `model`."""
    from tfcompress.layers import ChannelMask

    return {m.name: np.asarray(m.mask) for m in model.layers if isinstance(m, ChannelMask)}
