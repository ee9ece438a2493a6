"""CIFAR VGG with BatchNorm, built from a channel configuration list (network slimming).

The configuration is a sequence of conv widths with `"M"` for a 2x2 max pool, exactly the
list the slimming recipe saves after pruning, so `vgg19_bn(..., cfg=slimmed_cfg)` rebuilds
the compact network. Each conv is 3x3 (no bias) -> BN -> ReLU; the classifier is global
average pooling -> `logits` Dense (Liu et al. 2017: 20.04 M parameters for VGG-19).
"""

import keras

from tfcompress.models import checks
from tfcompress.numbers import is_int

VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG19_CFG = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512,
)  # fmt: skip


def _check_cfg(cfg):
    convs = [v for v in cfg if v != "M"] if isinstance(cfg, (tuple, list)) else []
    positive = all(is_int(v) and v > 0 for v in convs)
    if not convs or not positive:
        raise ValueError(
            "cfg must be a list of positive conv widths and 'M' (max pool) entries with at "
            f"least one conv. Received: cfg={cfg!r}"
        )


STYLES = ("keras", "slimming")


def _layer_options(style):
    """`(conv, batchnorm, dense)` keyword arguments of a `style` (`STYLES`)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {list(STYLES)}. Received: style={style!r}")
    if style == "keras":
        return {}, {}, {}
    # network slimming's models/vgg.py `_initialize_weights`: conv N(0, 2 / (k*k*out)),
    # BN gamma 0.5 and beta 0, linear N(0, 0.01) and bias 0; PyTorch's BN momentum 0.1
    # (a running average keeping 0.9 of the old value: Keras momentum 0.9)
    conv = {"kernel_initializer": keras.initializers.VarianceScaling(
        2.0, mode="fan_out", distribution="untruncated_normal")}  # fmt: skip
    bn = {"gamma_initializer": keras.initializers.Constant(0.5), "momentum": 0.9}
    dense = {"kernel_initializer": keras.initializers.RandomNormal(stddev=0.01)}
    return conv, bn, dense


def vgg_bn(num_classes, input_shape, cfg, width=1.0, name="vgg_bn", style="keras"):
    """VGG-BN from `cfg`; `width` scales every conv width of `cfg`.

    style: "keras" (Keras's initialisers and BatchNorm momentum 0.99) or "slimming"
        (network slimming's `models/vgg.py`: conv kernels N(0, 2 / (9 * filters)), BN
        gamma 0.5, logits N(0, 0.01), and PyTorch's BatchNorm momentum: 0.9 in Keras).
    """
    _check_cfg(cfg)
    conv_options, bn_options, dense_options = _layer_options(style)
    pools = sum(1 for v in cfg if v == "M")
    shape = checks.check_common(num_classes, input_shape, width, min_size=2**pools)
    inputs = keras.Input(shape, name="image")
    x = inputs
    conv_index, pool_index = 0, 0
    for v in cfg:
        if v == "M":
            pool_index += 1
            x = keras.layers.MaxPooling2D(2, name=f"pool{pool_index}")(x)
            continue
        conv_index += 1
        x = keras.layers.Conv2D(
            checks.scaled(v, width), 3, padding="same", use_bias=False, name=f"conv{conv_index}",
            **conv_options,
        )(x)
        x = keras.layers.BatchNormalization(
            epsilon=1e-5, name=f"conv{conv_index}_bn", **bn_options
        )(x)
        x = keras.layers.ReLU(name=f"conv{conv_index}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits", **dense_options)(x)
    return keras.Model(inputs, outputs, name=name)


def vgg16_bn(num_classes, input_shape, width=1.0, cfg=VGG16_CFG, style="keras"):
    """CIFAR VGG-16-BN; pass `cfg` to rebuild a slimmed configuration (`style`: see
    `vgg_bn`)."""
    return vgg_bn(num_classes, input_shape, cfg, width=width, name="vgg16_bn", style=style)


def vgg19_bn(num_classes, input_shape, width=1.0, cfg=VGG19_CFG, style="keras"):
    """CIFAR VGG-19-BN; pass `cfg` to rebuild a slimmed configuration (`style`: see
    `vgg_bn`)."""
    return vgg_bn(num_classes, input_shape, cfg, width=width, name="vgg19_bn", style=style)
