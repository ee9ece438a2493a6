"""PSPNet-50 (Zhao et al. 2017): dilated ResNet-50, pyramid pooling module, auxiliary head.

The pyramid pooling module average-pools the res5 features into `bins` x `bins` grids (1, 2,
3, 6), reduces each to 512 channels (1x1 conv + BN + ReLU), upsamples them bilinearly back
and concatenates them with the features; a 3x3 conv (512) + BN + ReLU, dropout 0.1 and the
1x1 class conv follow. The auxiliary head taps res4: 3x3 conv (256) + BN + ReLU, dropout 0.1,
1x1 class conv. Both are upsampled bilinearly to the input size.

Outputs, in this order (see `OUTPUTS`): `main_logits`, `aux_logits`; the auxiliary loss is
weighted by `AUX_WEIGHTS` = (0.4,). Pooling uses fixed windows, so the res5 feature map
(input / output_stride) must be divisible by every bin.
"""

import math

import keras

from tfcompress.models import checks
from tfcompress.models.blocks import conv_bn
from tfcompress.models.resnet import resnet_features

OUTPUTS = ("main_logits", "aux_logits")
AUX_WEIGHTS = (0.4,)
BINS = (1, 2, 3, 6)
OUTPUT_STRIDES = (8, 16)


def pyramid_pooling(x, width=1.0, bins=BINS, name="ppm"):
    """Pyramid pooling module on `x` (static size divisible by every bin)."""
    height, width_px = int(x.shape[1]), int(x.shape[2])
    branches = [x]
    for b in bins:
        pool = (height // b, width_px // b)
        y = keras.layers.AveragePooling2D(pool, strides=pool, name=f"{name}_pool{b}")(x)
        y = conv_bn(y, checks.scaled(512, width), 1, f"{name}_bin{b}")
        y = keras.layers.UpSampling2D(
            pool, interpolation="bilinear", name=f"{name}_bin{b}_upsample"
        )(y)
        branches.append(y)
    return keras.layers.Concatenate(name=f"{name}_concat")(branches)


def _head(x, num_classes, filters, output_stride, name):
    x = conv_bn(x, filters, 3, f"{name}_fuse")
    x = keras.layers.Dropout(0.1, name=f"{name}_dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, name=f"{name}_conv_head")(x)
    return keras.layers.UpSampling2D(
        output_stride, interpolation="bilinear", name=f"{name}_logits"
    )(x)


def pspnet(num_classes, input_shape, width=1.0, output_stride=8, bins=BINS):
    """PSPNet-50 with outputs `[main_logits, aux_logits]` (see module doc)."""
    checks.check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    if not bins or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in bins):
        raise ValueError(f"bins must be a non-empty list of positive ints. Received: bins={bins!r}")
    stride = output_stride * math.lcm(*bins)
    reason = f"output_stride={output_stride} times the pyramid bins' lcm, bins={tuple(bins)}"
    shape = checks.check_common(num_classes, input_shape, width, stride=stride, reason=reason)
    inputs = keras.Input(shape, name="image")
    features = resnet_features(inputs, "resnet50", width, output_stride)
    x = pyramid_pooling(features["res5"], width, bins)
    main = _head(x, num_classes, checks.scaled(512, width), output_stride, "main")
    aux = _head(features["res4"], num_classes, checks.scaled(256, width), output_stride, "aux")
    return keras.Model(inputs, [main, aux], name="pspnet")
