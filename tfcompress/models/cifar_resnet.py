"""CIFAR ResNet-20 / ResNet-56 (He et al. 2016, section 4.2): 6n + 2 layers, 16/32/64 widths.

The two downsampling shortcuts are 1x1 conv + BN projections (option B): the paper's
option A (strided identity zero-padded along channels) is not expressible with standard
Keras layers the pruning graph understands. This adds 2,752 trainable parameters.
"""

import keras

from tfcompress.models import checks
from tfcompress.models.blocks import conv_bn
from tfcompress.models.resnet import basic_block

_DEPTHS = {"resnet20": 3, "resnet56": 9}
_WIDTHS = (16, 32, 64)


def cifar_resnet(variant, num_classes, input_shape, width=1.0):
    """CIFAR ResNet `variant` ("resnet20" or "resnet56")."""
    checks.check_choice("variant", variant, _DEPTHS)
    shape = checks.check_common(num_classes, input_shape, width)
    inputs = keras.Input(shape, name="image")
    x = conv_bn(inputs, checks.scaled(16, width), 3, "stem")
    for stage, filters in enumerate(_WIDTHS, start=1):
        for b in range(_DEPTHS[variant]):
            stride = 2 if stage > 1 and b == 0 else 1
            x = basic_block(x, checks.scaled(filters, width), stride, 1, f"stage{stage}_{b + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=variant)


def resnet20(num_classes, input_shape, width=1.0):
    """CIFAR ResNet-20 (0.27 M parameters in the paper)."""
    return cifar_resnet("resnet20", num_classes, input_shape, width)


def resnet56(num_classes, input_shape, width=1.0):
    """CIFAR ResNet-56 (0.85 M parameters in the paper)."""
    return cifar_resnet("resnet56", num_classes, input_shape, width)
