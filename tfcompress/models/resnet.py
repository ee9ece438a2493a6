"""ImageNet ResNet-18 / ResNet-50 (He et al. 2016, torchvision layout), optionally dilated.

`resnet_features` is the backbone shared with PSPNet: it returns the output of every stage
so heads can tap `res4` (auxiliary) and `res5` (main). `output_stride` 16 or 8 replaces the
stride of the last one or two stages by dilation (rates 2 and 4), as in DeepLab / PSPNet.
"""

import keras

from tfcompress.models import checks
from tfcompress.models.blocks import conv_bn

# stage strides and dilations of res2..res5 for each output stride
_STRIDES = {
    32: ((1, 1), (2, 1), (2, 1), (2, 1)),
    16: ((1, 1), (2, 1), (2, 1), (1, 2)),
    8: ((1, 1), (2, 1), (1, 2), (1, 4)),
}
STAGE_FILTERS = (64, 128, 256, 512)


def basic_block(x, filters, stride, dilation, name):
    """Two 3x3 convs; output has `filters` channels."""
    shortcut = x
    y = conv_bn(x, filters, 3, f"{name}_1", strides=stride, dilation_rate=dilation)
    y = conv_bn(y, filters, 3, f"{name}_2", dilation_rate=dilation, act=None)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, f"{name}_proj", strides=stride, act=None)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def bottleneck_block(x, filters, stride, dilation, name):
    """1x1 -> 3x3 (stride, dilation) -> 1x1; output has `4 * filters` channels."""
    shortcut = x
    y = conv_bn(x, filters, 1, f"{name}_1")
    y = conv_bn(y, filters, 3, f"{name}_2", strides=stride, dilation_rate=dilation)
    y = conv_bn(y, 4 * filters, 1, f"{name}_3", act=None)
    if stride != 1 or x.shape[-1] != 4 * filters:
        shortcut = conv_bn(x, 4 * filters, 1, f"{name}_proj", strides=stride, act=None)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


_VARIANTS = {
    "resnet18": (basic_block, (2, 2, 2, 2)),
    "resnet50": (bottleneck_block, (3, 4, 6, 3)),
}


def resnet_features(inputs, variant, width=1.0, output_stride=32):
    """ResNet trunk on `inputs`; returns {"stem", "res2", "res3", "res4", "res5"} tensors."""
    checks.check_choice("variant", variant, _VARIANTS)
    checks.check_choice("output_stride", output_stride, _STRIDES)
    block, depths = _VARIANTS[variant]
    x = conv_bn(inputs, checks.scaled(64, width), 7, "stem", strides=2)
    features = {"stem": x}
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    stages = zip(STAGE_FILTERS, depths, _STRIDES[output_stride], strict=True)
    for index, (filters, depth, (stride, dilation)) in enumerate(stages, start=2):
        for b in range(depth):
            x = block(
                x,
                checks.scaled(filters, width),
                stride if b == 0 else 1,
                dilation,
                f"res{index}_{b + 1}",
            )
        features[f"res{index}"] = x
    return features


def _classifier(variant, num_classes, input_shape, width, output_stride):
    checks.check_choice("output_stride", output_stride, _STRIDES)
    shape = checks.check_common(num_classes, input_shape, width)
    inputs = keras.Input(shape, name="image")
    x = resnet_features(inputs, variant, width, output_stride)["res5"]
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=variant)


def resnet18(num_classes, input_shape, width=1.0, output_stride=32):
    """ResNet-18 classifier (11.69 M parameters at 1000 classes)."""
    return _classifier("resnet18", num_classes, input_shape, width, output_stride)


def resnet50(num_classes, input_shape, width=1.0, output_stride=32):
    """ResNet-50 (v1.5: stride on the 3x3) classifier (25.56 M parameters at 1000 classes)."""
    return _classifier("resnet50", num_classes, input_shape, width, output_stride)
