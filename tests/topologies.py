"""Small models, one per graph topology the dependency rules must handle."""

import keras
import numpy as np
from keras import layers

from tfcompress.layers import SpaceToDepth


def randomize_bn(model, seed=0):
    """Gives every BatchNorm non-trivial gamma/beta/moving statistics."""
    rng = np.random.default_rng(seed)
    for layer in _walk(model):
        if isinstance(layer, layers.BatchNormalization):
            for var in layer.weights:  # gamma / beta may be absent (scale=False)
                n = var.shape[0]
                if var.name in ("gamma", "moving_variance"):
                    var.assign(rng.uniform(0.5, 1.5, n))
                else:
                    var.assign(rng.normal(0, 0.5, n))
    return model


def _walk(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        yield layer


def cbr(x, filters, kernel=3, strides=1, name=None):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=name)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def sequential_chain():
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        layers.Conv2D(8, 3, padding="same"),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(12, 3, padding="same"),
        layers.BatchNormalization(),
        layers.LeakyReLU(),
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.2),
        layers.Dense(10),
    ])


def resnet_add():
    inp = keras.Input((16, 16, 3))
    x = cbr(inp, 8)
    for filters, stride in ((8, 1), (16, 2), (16, 1)):
        shortcut = x
        y = cbr(x, filters, strides=stride)
        y = layers.Conv2D(filters, 3, padding="same")(y)
        y = layers.BatchNormalization()(y)
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, strides=stride)(shortcut)
            shortcut = layers.BatchNormalization()(shortcut)
        x = layers.ReLU()(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x))


def inception_concat():
    inp = keras.Input((16, 16, 3))
    x = cbr(inp, 8)
    for _ in range(2):
        b1 = cbr(x, 4, 1)
        b2 = cbr(cbr(x, 6, 1), 8, 3)
        b3 = cbr(layers.MaxPooling2D(3, 1, padding="same")(x), 4, 1)
        x = layers.Concatenate()([b1, b2, b3])
        x = layers.BatchNormalization()(x)  # BN across a concatenation (DenseNet style)
    x = layers.GlobalMaxPooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x))


def depthwise_separable():
    inp = keras.Input((16, 16, 3))
    x = cbr(inp, 8)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = cbr(x, 12, 1)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)  # 12 -> 24
    x = layers.BatchNormalization()(x)
    x = layers.SeparableConv2D(16, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.SeparableConv2D(16, 3, padding="same", depth_multiplier=2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x))


def flatten_dense():
    inp = keras.Input((12, 12, 1))
    x = cbr(inp, 6, 5)
    x = layers.AveragePooling2D(2)(x)
    x = cbr(x, 10, 3)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    x = layers.Dense(16, activation="tanh")(x)
    return keras.Model(inp, layers.Dense(10)(x))


def encoder_decoder():
    inp = keras.Input((16, 16, 3))
    e1 = cbr(inp, 8)
    e2 = cbr(layers.MaxPooling2D()(e1), 12)
    b = cbr(layers.MaxPooling2D()(e2), 16)
    d2 = layers.UpSampling2D()(b)
    d2 = cbr(layers.Concatenate()([d2, e2]), 12)
    d1 = layers.Conv2DTranspose(8, 3, strides=2, padding="same")(d2)
    d1 = layers.BatchNormalization()(d1)
    d1 = cbr(layers.Concatenate()([d1, e1]), 8)
    r = layers.Resizing(8, 8, interpolation="bilinear")(d1)
    r = layers.UpSampling2D(interpolation="bilinear")(r)
    out = layers.Conv2D(4, 1, name="seg_logits")(layers.Add()([r, d1]))
    return keras.Model(inp, out)


def yolo_passthrough():
    inp = keras.Input((32, 32, 3))
    x = cbr(inp, 8)
    x = layers.MaxPooling2D()(x)
    fine = cbr(x, 16)  # 16x16
    x = layers.MaxPooling2D()(fine)
    x = cbr(cbr(x, 24), 24)  # 8x8
    passthrough = cbr(fine, 4, 1)
    passthrough = SpaceToDepth(2)(passthrough)  # 8x8x16
    x = layers.Concatenate()([passthrough, x])
    x = cbr(x, 24)
    return keras.Model(inp, layers.Conv2D(3 * (5 + 2), 1, name="detector")(x))


def nested_models():
    inner_in = keras.Input((16, 16, 8))
    y = cbr(inner_in, 12)
    y = layers.Conv2D(8, 3, padding="same")(y)
    block = keras.Model(inner_in, layers.Add()([inner_in, y]), name="block")
    head = keras.Sequential([
        keras.Input((8,)), layers.Dense(16, activation="relu"), layers.Dense(10)
    ], name="head")
    inp = keras.Input((16, 16, 3))
    x = cbr(inp, 8)
    x = block(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, head(x))


def squeeze_excite():
    inp = keras.Input((16, 16, 3))
    x = cbr(inp, 16)
    s = layers.GlobalAveragePooling2D()(x)
    s = layers.Dense(4, activation="relu")(s)
    s = layers.Dense(16, activation="sigmoid")(s)
    s = layers.Reshape((1, 1, 16))(s)
    x = layers.Multiply()([x, s])
    x = cbr(x, 8)
    x = layers.Reshape((16 * 16, 8))(x)  # channel axis survives
    x = layers.Conv1D(8, 3, padding="same")(x)
    x = layers.Reshape((16 * 16 * 8,))(x)  # folds into features
    return keras.Model(inp, layers.Dense(10)(x))


def merges_and_padding():
    inp = keras.Input((16, 16, 3))
    a = cbr(inp, 8)
    b = layers.Conv2D(8, 3, padding="same")(inp)
    c = layers.Conv2D(8, 1)(inp)
    x = layers.Subtract()([a, b])
    x = layers.Maximum()([x, c])
    x = layers.Average()([x, layers.Minimum()([a, c])])
    x = layers.ZeroPadding2D(2)(x)
    x = layers.Conv2D(12, 3)(x)
    x = layers.Cropping2D(1)(x)
    x = layers.ELU()(x)
    x = layers.PReLU(shared_axes=[1, 2])(x)  # one slope per channel
    x = layers.PReLU(shared_axes=[3])(x)  # one per pixel, shared by the channels (strip cut it)
    x = layers.SpatialDropout2D(0.1)(x)
    x = layers.Conv2D(10, 3)(x)
    return keras.Model(inp, layers.GlobalMaxPooling2D()(x))


def shared_layer():
    inp = keras.Input((16, 16, 3))
    x = cbr(inp, 8)
    conv = layers.Conv2D(8, 3, padding="same", name="shared_conv")
    y1 = conv(x)
    y2 = conv(layers.MaxPooling2D(1)(x))
    x = layers.Add()([y1, y2])
    x = cbr(x, 8)
    return keras.Model(inp, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)))


def multi_output():
    inp = keras.Input((16, 16, 3))
    x = cbr(inp, 8)
    x = cbr(x, 12)
    seg = layers.Conv2D(3, 1, name="seg")(x)
    aux = layers.Conv2D(3, 1, name="aux")(cbr(x, 6))
    return keras.Model(inp, [seg, aux])


def conv1d_3d():
    inp = keras.Input((8, 8, 8, 2))
    x = layers.Conv3D(6, 3, padding="same")(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling3D()(x)
    x = layers.Conv3D(8, 3, padding="same", activation="relu")(x)
    x = layers.Reshape((4 * 4 * 4, 8))(x)
    x = layers.Conv1D(8, 3, padding="same", activation="relu")(x)
    x = layers.UpSampling1D()(x)
    x = layers.Conv1D(6, 3)(x)
    return keras.Model(inp, layers.Dense(4)(layers.GlobalAveragePooling1D()(x)))


def layer_norm_block():
    """ConvNeXt-like: the residual width is the model input's (kept), the LayerNorm on it
    channelwise; the MLP hidden width prunes."""
    inp = keras.Input((8, 8, 16))
    x = layers.DepthwiseConv2D(3, padding="same")(inp)
    x = layers.LayerNormalization()(x)
    x = layers.Dense(48, activation="gelu")(x)
    x = layers.Dense(16)(x)
    x = layers.Add()([inp, x])
    return keras.Model(inp, layers.Dense(5)(layers.GlobalAveragePooling2D()(x)))


TOPOLOGIES = {
    "sequential_chain": sequential_chain,
    "resnet_add": resnet_add,
    "inception_concat": inception_concat,
    "depthwise_separable": depthwise_separable,
    "flatten_dense": flatten_dense,
    "encoder_decoder": encoder_decoder,
    "yolo_passthrough": yolo_passthrough,
    "nested_models": nested_models,
    "squeeze_excite": squeeze_excite,
    "merges_and_padding": merges_and_padding,
    "shared_layer": shared_layer,
    "multi_output": multi_output,
    "conv1d_3d": conv1d_3d,
    "layer_norm_block": layer_norm_block,
}
