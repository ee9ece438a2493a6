"""Fashion-MNIST idx files -> classification ``Source`` (splits ``train`` and ``test``)."""

import functools

from tfcompress.data import encode
from tfcompress.data import fashion_mnist as fmnist
from tfcompress.data.convert import Item, Source
from tfcompress.data.sources.common import classification_record


def _load(images, labels, index, source_id):
    return classification_record(encode.encode_png(images[index], source_id), labels[index])


def array_items(images, labels, prefix):
    """Lazily encoded classification items from uint8 ``[N, H, W(, C)]`` arrays."""
    return [
        Item(f"{prefix}/{i}", functools.partial(_load, images, labels, i, f"{prefix}/{i}"))
        for i in range(len(images))
    ]


def source(directory=fmnist.DEFAULT_DIR, splits=("train", "test")):
    items = {}
    for split in splits:
        images, labels = fmnist.load(directory, split)
        items[split] = array_items(images, labels, f"fashion_mnist/{split}")
    return Source("classification", items, fmnist.CLASS_NAMES)
