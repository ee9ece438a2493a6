"""The Deep Compression reference nets (Han et al. 2016): LeNet-300-100 and LeNet-5.

LeNet-5 is Caffe's variant (conv 20 -> pool -> conv 50 -> pool -> fc 500 -> fc classes),
431,080 parameters on 28x28x1 MNIST; LeNet-300-100 has 266,610.
"""

import keras

from tfcompress.models import checks


def lenet_300_100(num_classes, input_shape, width=1.0):
    """Two hidden fully connected layers (300, 100) -> `logits` Dense."""
    shape = checks.check_common(num_classes, input_shape, width)
    inputs = keras.Input(shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate((300, 100), start=1):
        x = keras.layers.Dense(checks.scaled(units, width), name=f"fc{i}")(x)
        x = keras.layers.ReLU(name=f"fc{i}_relu")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="lenet_300_100")


def lenet5(num_classes, input_shape, width=1.0):
    """conv5x5(20) -> maxpool -> conv5x5(50) -> maxpool -> fc(500) -> `logits` Dense.

    Convolutions are "valid" as in Caffe, so H and W must be at least 16 (12 -> 6 -> 2 -> 1).
    """
    shape = checks.check_common(num_classes, input_shape, width, min_size=16)
    inputs = keras.Input(shape, name="image")
    x = inputs
    for i, filters in enumerate((20, 50), start=1):
        x = keras.layers.Conv2D(checks.scaled(filters, width), 5, name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(checks.scaled(500, width), name="fc1")(x)
    x = keras.layers.ReLU(name="fc1_relu")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="lenet5")
