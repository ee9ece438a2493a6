"""The YOLOv2 output layout, shared by the region loss and the post-processing.

A raw output `[B, S_h, S_w, A * (5 + C)]` holds, per cell and anchor `a`,
`(tx, ty, tw, th, to, class logits...)`. In grid-cell units the box centre is
`(sigmoid(tx) + col, sigmoid(ty) + row)` and its size `(anchor_w * exp(tw), anchor_h * exp(th))`.
"""

from keras import ops

MAX_LOG_SCALE = 8.0  # exp(tw) is clipped here so untrained outputs cannot overflow


def split_outputs(outputs, num_anchors, num_classes):
    """Raw outputs -> (txy [..., A, 2], twh [..., A, 2], obj logit [..., A], class logits)."""
    shape = ops.shape(outputs)
    x = ops.reshape(outputs, (shape[0], shape[1], shape[2], num_anchors, 5 + num_classes))
    return x[..., 0:2], x[..., 2:4], x[..., 4], x[..., 5:]


def cell_offsets(grid_h, grid_w):
    """(col, row) offsets of every cell, broadcastable to `[B, S_h, S_w, A, 2]`."""
    cols = ops.tile(ops.reshape(ops.arange(grid_w, dtype="float32"), (1, grid_w)), (grid_h, 1))
    rows = ops.tile(ops.reshape(ops.arange(grid_h, dtype="float32"), (grid_h, 1)), (1, grid_w))
    return ops.reshape(ops.stack([cols, rows], axis=-1), (1, grid_h, grid_w, 1, 2))


def grid_boxes(txy, twh, anchors):
    """Box centres and sizes `(cxy, wh)` in grid-cell units, both `[B, S_h, S_w, A, 2]`."""
    grid_h, grid_w = txy.shape[1], txy.shape[2]
    anchors = ops.reshape(ops.convert_to_tensor(anchors, "float32"), (1, 1, 1, -1, 2))
    cxy = ops.sigmoid(txy) + cell_offsets(grid_h, grid_w)
    wh = anchors * ops.exp(ops.minimum(twh, MAX_LOG_SCALE))
    return cxy, wh


def corners(cxy, wh):
    """Centre/size `(x, y)` pairs -> `[..., 4]` corners `[ymin, xmin, ymax, xmax]`."""
    half = wh / 2.0
    lo, hi = cxy - half, cxy + half
    return ops.stack([lo[..., 1], lo[..., 0], hi[..., 1], hi[..., 0]], axis=-1)


def pairwise_iou(a, b):
    """IoU of corner boxes `a [..., 4]` and `b [..., 4]` (broadcast); 0 for empty unions."""
    ymin = ops.maximum(a[..., 0], b[..., 0])
    xmin = ops.maximum(a[..., 1], b[..., 1])
    ymax = ops.minimum(a[..., 2], b[..., 2])
    xmax = ops.minimum(a[..., 3], b[..., 3])
    inter = ops.maximum(ymax - ymin, 0.0) * ops.maximum(xmax - xmin, 0.0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return ops.where(union > 0, inter / ops.maximum(union, 1e-12), 0.0)
