"""PSPNet-50 (Zhao et al. 2017): dilated ResNet-50, pyramid pooling module, auxiliary head.

The pyramid pooling module average-pools the res5 features adaptively into `bins` x `bins`
grids (1, 2, 3, 6), reduces each to 512 channels (1x1 conv + BN + ReLU), resizes them
bilinearly back and concatenates them with the features; a 3x3 conv (512) + BN + ReLU,
dropout 0.1 and the 1x1 class conv follow. The auxiliary head taps res4: 3x3 conv (256) + BN
+ ReLU, dropout 0.1, 1x1 class conv. Both are resized bilinearly to the input size.

Outputs, in this order (see `OUTPUTS`): `main_logits`, `aux_logits`; the auxiliary loss is
weighted by `AUX_WEIGHTS` = (0.4,).

Any input size builds, e.g. the reference crops 473 x 473 and 713 x 713. Pooling is
`nn.AdaptiveAvgPool2d`'s (hszhao/semseg): along an axis of size S, bin i of b averages
[floor(i S / b), ceil((i + 1) S / b)). Where the windows are equal and evenly spaced (S
divisible by b, or e.g. S = 45, b = 2: windows 23 wide at stride 22) that is one
`AveragePooling2D`; otherwise every window is a `Cropping2D` + `AveragePooling2D`, joined by
`Concatenate` along the spatial axis. Only standard Keras layers are used.

Upsampling differs from semseg's `F.interpolate(..., align_corners=True)`: `Resizing`
(bilinear) samples at half-pixel centres (`align_corners=False`), which Keras offers no
switch for. Both keep the output at the input size; the values differ by the sub-pixel shift.
"""

import keras

from tfcompress.models import checks
from tfcompress.models.blocks import conv_bn
from tfcompress.models.resnet import resnet_features
from tfcompress.numbers import is_int

OUTPUTS = ("main_logits", "aux_logits")
AUX_WEIGHTS = (0.4,)
BINS = (1, 2, 3, 6)
OUTPUT_STRIDES = (8, 16)


def adaptive_windows(size, bins):
    """`nn.AdaptiveAvgPool2d`'s windows along an axis of `size`: `[(start, end), ...]`."""
    return [(i * size // bins, -(-(i + 1) * size // bins)) for i in range(bins)]


def _uniform(windows):
    """`(pool, stride)` if every window has one width and the starts one stride, else None."""
    widths = {end - start for start, end in windows}
    steps = {b[0] - a[0] for a, b in zip(windows, windows[1:])}
    if len(widths) != 1 or len(steps) > 1 or windows[0][0] != 0 or 0 in steps:
        return None  # (step 0: more bins than pixels, each window the same pixel)
    pool = widths.pop()
    return pool, (steps.pop() if steps else pool)


def _pool_axis(x, axis, windows, name):
    """Averages each window of `windows` along spatial `axis` (1: rows, 2: columns)."""
    size = int(x.shape[axis])
    pieces = []
    for i, (start, end) in enumerate(windows):
        crop = ((start, size - end), (0, 0)) if axis == 1 else ((0, 0), (start, size - end))
        pool = (end - start, 1) if axis == 1 else (1, end - start)
        y = keras.layers.Cropping2D(crop, name=f"{name}_crop{i}")(x)
        pieces.append(keras.layers.AveragePooling2D(pool, name=f"{name}_pool{i}")(y))
    if len(pieces) == 1:
        return pieces[0]
    return keras.layers.Concatenate(axis=axis, name=f"{name}_concat")(pieces)


def adaptive_average_pooling(x, bins, name):
    """`nn.AdaptiveAvgPool2d(bins)` on `x` (static size) with standard Keras layers."""
    rows = adaptive_windows(int(x.shape[1]), bins)
    cols = adaptive_windows(int(x.shape[2]), bins)
    uniform_rows, uniform_cols = _uniform(rows), _uniform(cols)
    if uniform_rows and uniform_cols:
        (pool_h, stride_h), (pool_w, stride_w) = uniform_rows, uniform_cols
        return keras.layers.AveragePooling2D(
            (pool_h, pool_w), strides=(stride_h, stride_w), name=name
        )(x)
    if uniform_rows:
        pool_h, stride_h = uniform_rows
        x = keras.layers.AveragePooling2D((pool_h, 1), strides=(stride_h, 1), name=f"{name}_rows")(
            x
        )
    else:
        x = _pool_axis(x, 1, rows, f"{name}_rows")
    if uniform_cols:
        pool_w, stride_w = uniform_cols
        return keras.layers.AveragePooling2D(
            (1, pool_w), strides=(1, stride_w), name=f"{name}_cols"
        )(x)
    return _pool_axis(x, 2, cols, f"{name}_cols")


def pyramid_pooling(x, width=1.0, bins=BINS, name="ppm"):
    """Pyramid pooling module on `x` (any static size; adaptive pooling per bin)."""
    height, width_px = int(x.shape[1]), int(x.shape[2])
    branches = [x]
    for b in bins:
        y = adaptive_average_pooling(x, b, f"{name}_pool{b}")
        y = conv_bn(y, checks.scaled(512, width), 1, f"{name}_bin{b}")
        y = keras.layers.Resizing(
            height, width_px, interpolation="bilinear", name=f"{name}_bin{b}_upsample"
        )(y)
        branches.append(y)
    return keras.layers.Concatenate(name=f"{name}_concat")(branches)


def _head(x, num_classes, filters, size, name):
    x = conv_bn(x, filters, 3, f"{name}_fuse")
    x = keras.layers.Dropout(0.1, name=f"{name}_dropout")(x)
    x = keras.layers.Conv2D(num_classes, 1, name=f"{name}_conv_head")(x)
    return keras.layers.Resizing(*size, interpolation="bilinear", name=f"{name}_logits")(x)


def pspnet(num_classes, input_shape, width=1.0, output_stride=8, bins=BINS):
    """PSPNet-50 with outputs `[main_logits, aux_logits]` (see module doc)."""
    checks.check_choice("output_stride", output_stride, OUTPUT_STRIDES)
    if not bins or any(not is_int(b) or b < 1 for b in bins):
        raise ValueError(f"bins must be a non-empty list of positive ints. Received: bins={bins!r}")
    bins = [int(b) for b in bins]  # NumPy ints too; the layer configs stay JSON
    shape = checks.check_common(num_classes, input_shape, width)
    inputs = keras.Input(shape, name="image")
    features = resnet_features(inputs, "resnet50", width, output_stride)
    x = pyramid_pooling(features["res5"], width, bins)
    size = shape[:2]
    main = _head(x, num_classes, checks.scaled(512, width), size, "main")
    aux = _head(features["res4"], num_classes, checks.scaled(256, width), size, "aux")
    return keras.Model(inputs, [main, aux], name="pspnet")
