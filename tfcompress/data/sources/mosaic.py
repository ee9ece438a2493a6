"""Fashion-MNIST mosaics -> segmentation or detection ``Source``.

The ``train`` split is built from Fashion-MNIST train images and ``test`` from its test
images (with different seeds), so no source image appears in both.
"""

import functools

from tfcompress.data import encode, mosaic, schema
from tfcompress.data import fashion_mnist as fmnist
from tfcompress.data.convert import Item, Source
from tfcompress.data.sources.common import detection_record, segmentation_record

SEGMENTATION_CLASSES = ("background", *fmnist.CLASS_NAMES)


def _segmentation_item(image_format, canvases, masks, i, source_id):
    image = encode.encode_array(canvases[i], source_id, image_format)
    return segmentation_record(image, masks[i])


def _detection_item(image_format, canvases, boxes, classes, i, source_id):
    image = encode.encode_array(canvases[i], source_id, image_format)
    return detection_record(image, boxes[i], classes[i])


def source(
    task,
    num_examples,
    fmnist_dir=fmnist.DEFAULT_DIR,
    canvas_size=None,
    objects_per_image=None,
    seed=0,
    image_format="png",
):
    """``num_examples``: ``{"train": n, "test": m}``. ``canvas_size`` and
    ``objects_per_image`` default to those of ``mosaic.segmentation_mosaic`` /
    ``mosaic.detection_mosaic``. ``image_format``: ``"png"`` or ``"raw"`` for the canvases."""
    schema.check_task(task)
    if task == schema.CLASSIFICATION:
        raise ValueError(
            "mosaic makes segmentation or detection data. Received: task=classification"
        )
    kwargs = {}
    if canvas_size is not None:
        kwargs["canvas_size"] = canvas_size
    if objects_per_image is not None:
        kwargs["objects_per_image"] = tuple(objects_per_image)
    items = {}
    for offset, (split, count) in enumerate(num_examples.items()):
        images, labels = fmnist.load(fmnist_dir, split)
        prefix = f"mosaic_{task}/{split}"
        if task == schema.SEGMENTATION:
            canvases, masks = mosaic.segmentation_mosaic(
                images, labels, count, seed=seed + offset, **kwargs
            )
            make = functools.partial(_segmentation_item, image_format, canvases, masks)
        else:
            canvases, boxes, classes = mosaic.detection_mosaic(
                images, labels, count, seed=seed + offset, **kwargs
            )
            make = functools.partial(_detection_item, image_format, canvases, boxes, classes)
        items[split] = [
            Item(f"{prefix}/{i}", functools.partial(make, i, f"{prefix}/{i}")) for i in range(count)
        ]
    classes = SEGMENTATION_CLASSES if task == schema.SEGMENTATION else fmnist.CLASS_NAMES
    return Source(task, items, classes)
