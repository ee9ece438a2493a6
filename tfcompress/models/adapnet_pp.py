"""AdapNet++ (Valada, Mohan & Burgard, IJCV 2019), following the authors' reference model.

Encoder: ResNet-50 with pre-activation bottleneck units (each unit but a block's first starts
with BN -> ReLU of the running residual sum; every block ends with BN -> ReLU) and
multiscale residual units, whose 3x3 conv is split into two parallel half-width 3x3 convs
at dilation rates `(r1, r2)`, concatenated: res3d and res4c-res4f at (1, 2), res5a-res5c at
(2, 2). res5 is not strided, so the encoder's output stride is 16. The last unit's residual
branch has dropout (`dropout_rate`, 0.7 in the reference: keep probability 0.3).

eASPP (`tfcompress.models.easpp`) at stride 16, then the decoder: a 2x transposed conv + BN,
concatenated with the 24-channel 1x1 skip refinement of res3 (stride 8), two 3x3 convs; a
second 2x transposed conv + BN, concatenated with the 24-channel skip of res2 (stride 4), two
3x3 convs, the 1x1 class conv and a 4x transposed conv + BN.

Outputs, all logits at the input resolution, in this order (see `OUTPUTS`):
`main_logits`; `aux1_logits` (1x1 class conv + BN on the stride-4 upsampling, bilinear x4);
`aux2_logits` (same on the stride-8 upsampling, bilinear x8). Deep supervision weights the
auxiliary losses by `AUX_WEIGHTS` = (0.6, 0.5).
"""

import keras

from tfcompress.models import checks
from tfcompress.models.blocks import bn_act, conv_bn
from tfcompress.models.easpp import easpp
from tfcompress.numbers import is_number

STRIDE = 16
OUTPUTS = ("main_logits", "aux1_logits", "aux2_logits")
AUX_WEIGHTS = (0.6, 0.5)
SKIP_CHANNELS = 24
DECODER_CHANNELS = 256

# (output filters, units, first-unit stride, {unit: multiscale rates (r1, r2)})
_BLOCKS = (
    (256, 3, 1, {}),
    (512, 4, 2, {4: (1, 2)}),
    (1024, 6, 2, {3: (1, 2), 4: (1, 2), 5: (1, 2), 6: (1, 2)}),
    (2048, 3, 1, {1: (2, 2), 2: (2, 2), 3: (2, 2)}),
)


def _conv(x, filters, kernel_size, name, strides=1, dilation_rate=1):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=False,
        name=name,
    )(x)


def _unit(x, filters, width, stride, rates, name, first, dropout_rate=0.0):
    """Bottleneck unit; `x` is the activated block input if `first`, else the raw sum."""
    inputs = x if first else bn_act(x, f"{name}_preact")
    mid = checks.scaled(filters // 4, width)
    y = conv_bn(inputs, mid, 1, f"{name}_1")
    if rates is None:
        y = conv_bn(y, mid, 3, f"{name}_2", strides=stride)
    else:
        half = max(1, mid // 2)
        a = _conv(y, half, 3, f"{name}_2a_conv", dilation_rate=rates[0])
        b = _conv(y, max(1, mid - half), 3, f"{name}_2b_conv", dilation_rate=rates[1])
        y = keras.layers.Concatenate(name=f"{name}_2_concat")([a, b])
        y = bn_act(y, f"{name}_2")
    y = _conv(y, checks.scaled(filters, width), 1, f"{name}_3_conv")
    if dropout_rate:
        y = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(y)
    shortcut = x
    if first:
        shortcut = _conv(inputs, checks.scaled(filters, width), 1, f"{name}_proj", strides=stride)
    return keras.layers.Add(name=f"{name}_add")([y, shortcut])


def encoder(x, width=1.0, dropout_rate=0.7):
    """Returns the activated outputs of res2 (stride 4), res3 (stride 8) and res5 (stride 16)."""
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="input_bn")(x)
    x = conv_bn(x, checks.scaled(64, width), 7, "stem", strides=2)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    outs = []
    for index, (filters, units, stride, multiscale) in enumerate(_BLOCKS, start=2):
        for u in range(1, units + 1):
            last = index == 1 + len(_BLOCKS) and u == units
            x = _unit(
                x,
                filters,
                width,
                stride if u == 1 else 1,
                multiscale.get(u),
                f"res{index}_{u}",
                first=u == 1,
                dropout_rate=dropout_rate if last else 0.0,
            )
        x = bn_act(x, f"res{index}_out")
        outs.append(x)
    return outs[0], outs[1], outs[3]


def _upsample(x, filters, kernel_size, stride, name):
    x = keras.layers.Conv2DTranspose(
        filters, kernel_size, strides=stride, padding="same", use_bias=False, name=name
    )(x)
    return keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)


def _aux_head(x, num_classes, factor, name):
    x = keras.layers.Conv2D(num_classes, 1, use_bias=False, name=f"{name}_conv_head")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_bn_head")(x)
    return keras.layers.UpSampling2D(factor, interpolation="bilinear", name=f"{name}_logits")(x)


def adapnet_pp(num_classes, input_shape, width=1.0, dropout_rate=0.7):
    """AdapNet++ with outputs `[main_logits, aux1_logits, aux2_logits]` (see module doc)."""
    if not is_number(dropout_rate) or not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1). Received: dropout_rate={dropout_rate}")
    dropout_rate = float(dropout_rate)  # a NumPy float too; the Dropout config stays JSON
    shape = checks.check_common(num_classes, input_shape, width, stride=STRIDE)
    inputs = keras.Input(shape, name="image")
    res2, res3, res5 = encoder(inputs, width, dropout_rate)
    skip1 = conv_bn(res2, checks.scaled(SKIP_CHANNELS, width), 1, "skip1", act=None)
    skip2 = conv_bn(res3, checks.scaled(SKIP_CHANNELS, width), 1, "skip2", act=None)
    x = easpp(res5, width)

    channels = checks.scaled(DECODER_CHANNELS, width)
    up1 = _upsample(x, channels, 4, 2, "up1_deconv")
    x = keras.layers.Concatenate(name="up1_concat")([up1, skip2])
    x = conv_bn(x, channels, 3, "up1_refine1")
    x = conv_bn(x, channels, 3, "up1_refine2")
    up2 = _upsample(x, channels, 4, 2, "up2_deconv")
    x = keras.layers.Concatenate(name="up2_concat")([up2, skip1])
    x = conv_bn(x, channels, 3, "up2_refine1")
    x = conv_bn(x, channels, 3, "up2_refine2")

    x = keras.layers.Conv2D(num_classes, 1, use_bias=False, name="main_conv_head")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="main_bn_head")(x)
    x = keras.layers.ReLU(name="main_relu_head")(x)
    x = keras.layers.Conv2DTranspose(
        num_classes, 8, strides=4, padding="same", use_bias=False, name="main_deconv_head"
    )(x)
    main = keras.layers.BatchNormalization(epsilon=1e-5, name="main_logits")(x)
    aux1 = _aux_head(up2, num_classes, 4, "aux1")
    aux2 = _aux_head(up1, num_classes, 8, "aux2")
    return keras.Model(inputs, [main, aux1, aux2], name="adapnet_pp")
