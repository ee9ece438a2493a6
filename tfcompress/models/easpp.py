"""Efficient atrous spatial pyramid pooling (eASPP, Valada et al. 2019).

Five parallel branches on the encoder output, concatenated and fused by a 1x1 conv + BN:
a 1x1 conv; three cascaded atrous branches (1x1 reduce -> two 3x3 atrous convs at the same
rate -> 1x1 expand); and image pooling (global average -> 1x1 conv -> upsample back).
"""

import keras

from tfcompress.models import checks
from tfcompress.models.blocks import conv_bn

RATES = (3, 6, 12)


def easpp(x, width=1.0, rates=RATES, name="easpp"):
    """eASPP on `x` (static spatial size); 256 * width output channels."""
    filters, reduced = checks.scaled(256, width), checks.scaled(64, width)
    branches = [conv_bn(x, filters, 1, f"{name}_1x1")]
    for rate in rates:
        b = conv_bn(x, reduced, 1, f"{name}_r{rate}_reduce")
        b = conv_bn(b, reduced, 3, f"{name}_r{rate}_atrous1", dilation_rate=rate)
        b = conv_bn(b, reduced, 3, f"{name}_r{rate}_atrous2", dilation_rate=rate)
        branches.append(conv_bn(b, filters, 1, f"{name}_r{rate}_expand"))
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_gap")(x)
    pooled = conv_bn(pooled, filters, 1, f"{name}_pool")
    size = (int(x.shape[1]), int(x.shape[2]))
    branches.append(keras.layers.UpSampling2D(size, name=f"{name}_pool_upsample")(pooled))
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn(x, filters, 1, f"{name}_fuse", act=None)
