"""Small functional building blocks made of standard Keras layers only."""

import keras

_ACTIVATIONS = {
    "relu": lambda name: keras.layers.ReLU(name=name),
    "leaky": lambda name: keras.layers.LeakyReLU(negative_slope=0.1, name=name),
}


def activation(x, kind, name):
    """Applies the named activation (`"relu"` or `"leaky"`, the Darknet 0.1 slope)."""
    return _ACTIVATIONS[kind](name)(x)


def conv_bn(x, filters, kernel_size, name, strides=1, dilation_rate=1, act="relu"):
    """Conv2D (no bias, "same") -> BatchNormalization -> optional activation.

    Layers are named `{name}_conv`, `{name}_bn` and `{name}_{act}`; `act=None` skips the
    activation.
    """
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)
    if act is None:
        return x
    return activation(x, act, f"{name}_{act}")


def bn_act(x, name, act="relu"):
    """BatchNormalization -> activation, named `{name}_bn` and `{name}_{act}`."""
    x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)
    return activation(x, act, f"{name}_{act}")
