"""The YOLOv2 region loss (Redmon & Farhadi 2017; Darknet's `region_layer`).

For every ground-truth box, the cell holding its centre and the anchor whose shape best
matches it (IoU of centred boxes) are responsible; if two boxes claim the same cell and
anchor, the first one wins. Per image, summed over cells and anchors:

- coordinates (responsible): `coord_scale * (2 - w * h) * [(sig(tx) - x)^2 + (sig(ty) - y)^2
  + (tw - log(w / anchor_w))^2 + (th - log(h / anchor_h))^2]`, `x, y` the centre offset in its
  cell, `w, h` the size (normalised for the `2 - w * h` weight, in cells for the log);
- objectness: `object_scale * (sig(to) - 1)^2` (responsible) and
  `noobject_scale * sig(to)^2` for the others whose predicted box overlaps no ground truth by
  more than `ignore_thresh`;
- classes (responsible): `class_scale * softmax cross-entropy`.

`y_true` is the padded target array of `tfcompress.losses.detection_targets`
(`[B, M, 5]`: normalised `[ymin, xmin, ymax, xmax, class]`, class -1 = padding); `y_pred` the
raw `[B, S_h, S_w, A * (5 + C)]` output of `tfcompress.models.yolov2`.
"""

import keras
from keras import ops

from tfcompress.models import yolov2_grid
from tfcompress.models.yolov2 import VOC_ANCHORS, check_anchors
from tfcompress.numbers import check_count, is_number, plain


def _check_scale(name, value):
    if not is_number(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package="tfcompress")
class YOLOv2RegionLoss(keras.losses.Loss):
    """YOLOv2 region loss (see the module docstring); returns one value per image."""

    def __init__(
        self,
        num_classes,
        anchors=VOC_ANCHORS,
        coord_scale=1.0,
        object_scale=5.0,
        noobject_scale=1.0,
        class_scale=1.0,
        ignore_thresh=0.6,
        reduction="sum_over_batch_size",
        name="yolov2_region_loss",
        dtype=None,
    ):
        check_count("num_classes", num_classes)
        for key, value in (
            ("coord_scale", coord_scale),
            ("object_scale", object_scale),
            ("noobject_scale", noobject_scale),
            ("class_scale", class_scale),
            ("ignore_thresh", ignore_thresh),
        ):
            _check_scale(key, value)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        # Python numbers (NumPy scalars are taken too): the config stays JSON
        self.num_classes = int(num_classes)
        self.anchors = check_anchors(anchors)
        self.coord_scale = plain(coord_scale)
        self.object_scale = plain(object_scale)
        self.noobject_scale = plain(noobject_scale)
        self.class_scale = plain(class_scale)
        self.ignore_thresh = plain(ignore_thresh)

    def _assign(self, y_true, grid_h, grid_w):
        """Responsible mask `[B, S_h, S_w, A]` and the matched truth rows `[B, S_h, S_w, A, 5]`."""
        num_anchors = len(self.anchors)
        valid = ops.cast(y_true[..., 4] >= 0, "float32")  # [B, M]
        cx = (y_true[..., 1] + y_true[..., 3]) * (grid_w / 2.0)
        cy = (y_true[..., 0] + y_true[..., 2]) * (grid_h / 2.0)
        w = (y_true[..., 3] - y_true[..., 1]) * grid_w
        h = (y_true[..., 2] - y_true[..., 0]) * grid_h
        col = ops.clip(ops.cast(ops.floor(cx), "int32"), 0, grid_w - 1)
        row = ops.clip(ops.cast(ops.floor(cy), "int32"), 0, grid_h - 1)
        anchors = ops.convert_to_tensor(self.anchors, "float32")
        inter = ops.minimum(w[..., None], anchors[:, 0]) * ops.minimum(h[..., None], anchors[:, 1])
        shape_iou = inter / (w[..., None] * h[..., None] + anchors[:, 0] * anchors[:, 1] - inter)
        best = ops.argmax(shape_iou, axis=-1)  # [B, M]
        claims = (
            ops.one_hot(row, grid_h)[:, :, :, None, None]
            * ops.one_hot(col, grid_w)[:, :, None, :, None]
            * ops.one_hot(best, num_anchors)[:, :, None, None, :]
            * valid[:, :, None, None, None]
        )  # [B, M, S_h, S_w, A]
        num_boxes = y_true.shape[1]
        priority = ops.reshape(ops.arange(num_boxes, 0, -1, dtype="float32"), (1, -1, 1, 1, 1))
        first = ops.argmax(claims * priority, axis=1)  # [B, S_h, S_w, A]
        responsible = ops.max(claims, axis=1)
        select = ops.one_hot(first, num_boxes) * responsible[..., None]  # [B, S_h, S_w, A, M]
        features = ops.stack(
            [cx - ops.cast(col, "float32"), cy - ops.cast(row, "float32"), w, h, y_true[..., 4]],
            axis=-1,
        )  # [B, M, 5]
        matched = ops.einsum("bhwam,bmk->bhwak", select, features)
        return responsible, matched

    def _ignore_mask(self, cxy, wh, y_true, grid_h, grid_w):
        """1 where a predicted box overlaps no ground truth by more than `ignore_thresh`."""
        pred = yolov2_grid.corners(cxy, wh)[:, :, :, :, None, :]
        scale = ops.convert_to_tensor([grid_h, grid_w, grid_h, grid_w], "float32")
        truth = (y_true[..., :4] * scale)[:, None, None, None, :, :]
        iou = yolov2_grid.pairwise_iou(pred, truth)
        iou = iou * ops.cast(y_true[..., 4] >= 0, "float32")[:, None, None, None, :]
        best = ops.max(iou, axis=-1) if y_true.shape[1] else ops.zeros_like(wh[..., 0])
        return ops.stop_gradient(ops.cast(best <= self.ignore_thresh, "float32"))

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        grid_h, grid_w = y_pred.shape[1], y_pred.shape[2]
        txy, twh, obj_logit, logits = yolov2_grid.split_outputs(
            y_pred, len(self.anchors), self.num_classes
        )
        responsible, matched = self._assign(y_true, grid_h, grid_w)
        cxy, wh = yolov2_grid.grid_boxes(txy, twh, self.anchors)
        ignore = self._ignore_mask(
            ops.stop_gradient(cxy), ops.stop_gradient(wh), y_true, grid_h, grid_w
        )

        anchors = ops.reshape(ops.convert_to_tensor(self.anchors, "float32"), (1, 1, 1, -1, 2))
        target_twh = ops.log(ops.maximum(matched[..., 2:4], 1e-6) / anchors)
        size_weight = 2.0 - matched[..., 2] * matched[..., 3] / float(grid_h * grid_w)
        coord = ops.sum(ops.square(ops.sigmoid(txy) - matched[..., 0:2]), axis=-1)
        coord += ops.sum(ops.square(twh - target_twh), axis=-1)
        coord = self.coord_scale * size_weight * coord * responsible

        objectness = ops.sigmoid(obj_logit)
        obj = self.object_scale * ops.square(objectness - 1.0) * responsible
        noobj = self.noobject_scale * ops.square(objectness) * (1.0 - responsible) * ignore

        classes = ops.cast(ops.maximum(matched[..., 4], 0.0), "int32")
        nll = -ops.sum(
            ops.one_hot(classes, self.num_classes) * ops.log_softmax(logits, axis=-1), axis=-1
        )
        cls = self.class_scale * nll * responsible

        total = coord + obj + noobj + cls
        return ops.sum(ops.reshape(total, (ops.shape(total)[0], -1)), axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "anchors": [list(a) for a in self.anchors],
            "coord_scale": self.coord_scale,
            "object_scale": self.object_scale,
            "noobject_scale": self.noobject_scale,
            "class_scale": self.class_scale,
            "ignore_thresh": self.ignore_thresh,
        }
