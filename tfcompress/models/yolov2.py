"""YOLOv2 (Redmon & Farhadi 2017) on Darknet-19, as in Darknet's `yolo-voc.cfg`.

Every conv is Conv2D (no bias) -> BN -> LeakyReLU(0.1). The passthrough taps the last
26x26 (stride 16) feature map, reduces it to 64 channels with a 1x1 conv and moves 2x2 blocks
into channels (`space_to_depth`: Reshape -> Permute -> Reshape, standard Keras layers only,
so a saved model loads without tfcompress); the result is concatenated
(passthrough first, as Darknet's `route -1 -4`) with the two extra 3x3 head convs, followed
by a 3x3 conv and the linear 1x1 `yolo_head`.

Output: `[B, S, S, A * (5 + C)]` with `S = H / 32`; for each anchor `a` the channels
`a * (5 + C) + (0..4)` are `(tx, ty, tw, th, to)` and the next `C` are class logits.
Anchors are `(w, h)` in grid-cell units; `VOC_ANCHORS` are those of `yolo-voc.cfg`.
"""

import keras

from tfcompress.layers.space_to_depth import space_to_depth
from tfcompress.models import checks
from tfcompress.models.blocks import conv_bn

STRIDE = 32
VOC_ANCHORS = (
    (1.3221, 1.73145),
    (3.19275, 4.00944),
    (5.05587, 8.09892),
    (9.47112, 4.84053),
    (11.2364, 10.0071),
)

# Darknet-19 up to the passthrough tap (stride 16), then the stride-32 stage. (filters, k)
_STAGES_TO_TAP = (
    ((32, 3),),
    ((64, 3),),
    ((128, 3), (64, 1), (128, 3)),
    ((256, 3), (128, 1), (256, 3)),
    ((512, 3), (256, 1), (512, 3), (256, 1), (512, 3)),
)
_LAST_STAGE = ((1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3))


def check_anchors(anchors):
    """Anchors are a non-empty sequence of positive `(w, h)` pairs; returns a tuple copy."""
    try:
        pairs = tuple((float(w), float(h)) for w, h in anchors)
    except (TypeError, ValueError):
        pairs = ()
    if not pairs or any(w <= 0 or h <= 0 for w, h in pairs):
        raise ValueError(
            f"anchors must be a non-empty sequence of positive (w, h) pairs in grid-cell units. "
            f"Received: anchors={anchors!r}"
        )
    return pairs


def darknet19_features(inputs, width=1.0):
    """Darknet-19 trunk; returns (stride-16 tap, stride-32 output)."""
    x = inputs
    index = 0
    for stage, convs in enumerate(_STAGES_TO_TAP):
        if stage:
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        for filters, k in convs:
            index += 1
            x = conv_bn(x, checks.scaled(filters, width), k, f"conv{index}", act="leaky")
    tap = x
    x = keras.layers.MaxPooling2D(2, name=f"pool{len(_STAGES_TO_TAP)}")(x)
    for filters, k in _LAST_STAGE:
        index += 1
        x = conv_bn(x, checks.scaled(filters, width), k, f"conv{index}", act="leaky")
    return tap, x


def yolov2(num_classes, input_shape, width=1.0, anchors=VOC_ANCHORS):
    """YOLOv2 detector; `width` scales every conv but `yolo_head`."""
    anchors = check_anchors(anchors)
    shape = checks.check_common(num_classes, input_shape, width, stride=STRIDE)
    inputs = keras.Input(shape, name="image")
    tap, x = darknet19_features(inputs, width)
    for i in (1, 2):
        x = conv_bn(x, checks.scaled(1024, width), 3, f"extra{i}", act="leaky")
    p = conv_bn(tap, checks.scaled(64, width), 1, "passthrough", act="leaky")
    p = space_to_depth(p, 2, name="passthrough_s2d")
    x = keras.layers.Concatenate(name="passthrough_concat")([p, x])
    x = conv_bn(x, checks.scaled(1024, width), 3, "extra3", act="leaky")
    outputs = keras.layers.Conv2D(len(anchors) * (5 + num_classes), 1, name="yolo_head")(x)
    return keras.Model(inputs, outputs, name="yolov2")
