"""A TensorFlow Datasets dataset already on disk -> a ``Source`` in our schema.

Nothing is downloaded: the dataset must have been prepared in ``data_dir`` before. Images
are re-encoded losslessly as PNG or, with ``image_format="raw"``, stored as raw pixels.
Feature keys are configurable; the defaults fit most catalogue datasets:

- classification: ``image``, ``label`` (a ``ClassLabel``; its names become the classes);
- segmentation:  ``image``, ``segmentation_mask`` (ids through ``id_map``/``num_classes``);
- detection:     ``image``, ``objects/bbox`` (tfds boxes are already normalised
  ``[ymin, xmin, ymax, xmax]``), ``objects/label``, ``objects/is_difficult`` (optional).

TFDS split names map to ours: ``validation`` -> ``val``; others keep their name.
"""

import functools

import numpy as np

from tfcompress.data import encode, schema
from tfcompress.data.convert import Item, Source
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.sources.common import (
    apply_lut,
    classification_record,
    detection_record,
    id_lut,
    segmentation_record,
)

SPLIT_NAMES = {"validation": "val"}


@functools.lru_cache(maxsize=1)
def _tfds():
    try:
        import tensorflow_datasets as tfds  # heavy: imported only by this source
    except ImportError as e:
        raise ImportError(
            "Converting a TFDS dataset needs tensorflow-datasets: "
            f"pip install 'tfcompress[tfds]' ({e})"
        ) from e
    return tfds


class _Items:
    """Items of one split, produced while iterating the TFDS dataset (sized when known)."""

    def __init__(self, dataset, to_record, prefix, total):
        self._dataset, self._to_record, self._prefix, self._total = (
            dataset,
            to_record,
            prefix,
            total,
        )

    def __len__(self):
        return self._total or 0

    def __iter__(self):
        for i, example in enumerate(_tfds().as_numpy(self._dataset)):
            source_id = f"{self._prefix}/{i}"
            yield Item(source_id, functools.partial(self._to_record, example, source_id))


def _class_names(feature, what):
    names = getattr(feature, "names", None)
    if not names:
        raise ValueError(f"TFDS feature {what} is not a ClassLabel: pass classes explicitly")
    return list(names)


def source(
    name,
    task,
    data_dir=None,
    splits=None,
    *,
    image_key="image",
    label_key="label",
    mask_key="segmentation_mask",
    objects_key="objects",
    bbox_key="bbox",
    difficult_key="is_difficult",
    classes=None,
    num_classes=None,
    id_map=None,
    image_format="png",
):
    """Reads ``name`` (e.g. ``"mnist"``, ``"voc/2007"``) from ``data_dir`` as ``task``."""
    tfds = _tfds()
    schema.check_task(task)
    builder = tfds.builder(name, data_dir=data_dir)
    if splits is None:
        splits = list(builder.info.splits.keys())
        if not splits:
            raise ValueError(f"TFDS dataset {name!r} lists no splits: pass splits explicitly")
    features = builder.info.features

    if task == schema.CLASSIFICATION:
        classes = classes or _class_names(features[label_key], label_key)

        def to_record(example, source_id):
            image = encode.encode_array(example[image_key], source_id, image_format)
            return classification_record(image, example[label_key])

    elif task == schema.SEGMENTATION:
        if classes is None and num_classes is None and id_map is None:
            raise ValueError("tfds segmentation needs classes, num_classes or id_map")
        if num_classes is None:
            num_classes = len(classes) if classes else max(id_map.values()) + 1
        classes = list(classes or [str(i) for i in range(num_classes)])
        lut = id_lut(id_map, num_classes)

        def to_record(example, source_id):
            image = encode.encode_array(example[image_key], source_id, image_format)
            mask = np.asarray(example[mask_key])
            mask = mask[..., 0] if mask.ndim == 3 else mask
            if mask.shape != (image.height, image.width):
                raise CorruptInputError(
                    f"Image/label size mismatch in {source_id}: image is "
                    f"{image.height}x{image.width}, {mask_key} is {mask.shape}"
                )
            return segmentation_record(image, apply_lut(mask, lut, source_id))

    else:
        classes = classes or _class_names(features[objects_key][label_key], label_key)

        def to_record(example, source_id):
            image = encode.encode_array(example[image_key], source_id, image_format)
            objects = example[objects_key]
            difficult = objects.get(difficult_key)
            return detection_record(image, objects[bbox_key], objects[label_key], difficult)

    items = {}
    for split in splits:
        try:
            dataset = builder.as_dataset(split=split, shuffle_files=False)
        except (AssertionError, ValueError, FileNotFoundError) as e:
            raise FileNotFoundError(
                f"TFDS dataset {name!r} split {split!r} is not prepared in "
                f"data_dir={data_dir or builder.data_dir!r}: {e}"
            ) from e
        info = builder.info.splits.get(split) if builder.info.splits else None
        total = info.num_examples if info is not None else None
        ours = SPLIT_NAMES.get(split, split)
        items[ours] = _Items(dataset, to_record, f"tfds/{name}/{split}", total)
    return Source(task, items, classes)
