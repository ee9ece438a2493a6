"""Fashion-MNIST idx files -> classification ``Source`` (splits ``train`` and ``test``)."""

import functools

from tfcompress.data import encode
from tfcompress.data import fashion_mnist as fmnist
from tfcompress.data.convert import Item, Source
from tfcompress.data.sources.common import classification_record


def _load(images, labels, index, source_id, image_format):
    image = encode.encode_array(images[index], source_id, image_format)
    return classification_record(image, labels[index])


def array_items(images, labels, prefix, image_format="png"):
    """Lazily encoded classification items from uint8 ``[N, H, W(, C)]`` arrays."""
    return [
        Item(
            f"{prefix}/{i}",
            functools.partial(_load, images, labels, i, f"{prefix}/{i}", image_format),
        )
        for i in range(len(images))
    ]


def source(directory=fmnist.DEFAULT_DIR, splits=("train", "test"), image_format="raw"):
    """``image_format``: ``"raw"`` (default: lossless and fixed-size, so ``build_dataset``
    decodes a whole batch at once) or ``"png"`` (see ``encode.encode_array``)."""
    items = {}
    for split in splits:
        images, labels = fmnist.load(directory, split)
        items[split] = array_items(images, labels, f"fashion_mnist/{split}", image_format)
    return Source("classification", items, fmnist.CLASS_NAMES)
