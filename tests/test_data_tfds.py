"""tfds route, on tfds.testing.mock_data (no download, no prepared data needed)."""

import builtins
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfcompress.data import build_dataset, convert
from tfcompress.data.sources import tfds_source


@pytest.fixture(autouse=True)
def _temporary_files_in_tmp_path(tmp_path, monkeypatch):
    """tfds.builder of a dataset not prepared in its data_dir (all of these) makes an
    empty `tempfile.mkdtemp("tfds")` folder it never removes (DatasetInfo
    .initialize_from_bucket): here it goes to the test's own folder, not /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_classification_mnist(tmp_path):
    with tfds.testing.mock_data(num_examples=6):
        expected = list(tfds.as_numpy(tfds.builder("mnist").as_dataset(split="test")))
        src = tfds_source.source("mnist", "classification", splits=["test"])
        assert len(src.classes) == 10
        manifest = convert.convert(src, str(tmp_path / "out"), 2)
    assert manifest["splits"]["test"]["num_examples"] == 6
    ds = build_dataset(str(tmp_path / "out" / "test-*"), "classification", 6, training=False)
    images, labels = next(iter(ds))
    assert images.shape == (6, 28, 28, 1)
    for image, label, ex in zip(images.numpy(), labels.numpy(), expected, strict=True):
        np.testing.assert_array_equal(image, ex["image"] / np.float32(255))
        assert label == ex["label"]


VOC_BOXES = [
    np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]], np.float32),
    np.array([[0.25, 0.5, 0.75, 1.0]], np.float32),
]


def _voc_as_dataset(self, *args, **kwargs):
    def gen():
        for i, boxes in enumerate(VOC_BOXES):
            yield {
                "image": np.full((8, 10, 3), 10 * i, np.uint8),
                "objects": {
                    "bbox": boxes,
                    "label": np.arange(len(boxes), dtype=np.int64) + 3,
                    "is_difficult": np.array([i % 2] * len(boxes), bool),
                },
            }

    return tf.data.Dataset.from_generator(
        gen,
        output_signature={
            "image": tf.TensorSpec([None, None, 3], tf.uint8),
            "objects": {
                "bbox": tf.TensorSpec([None, 4], tf.float32),
                "label": tf.TensorSpec([None], tf.int64),
                "is_difficult": tf.TensorSpec([None], tf.bool),
            },
        },
    )


def test_detection_voc_validation_becomes_val(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=_voc_as_dataset):
        src = tfds_source.source("voc/2007", "detection", splits=["validation"])
        assert list(src.splits) == ["val"] and src.classes[14] == "person"
        convert.convert(src, str(tmp_path / "out"), 1)
    ds = build_dataset(str(tmp_path / "out" / "val-*"), "detection", 2, training=False,
                       max_boxes=3)  # fmt: skip
    images, target = next(iter(ds))
    np.testing.assert_array_equal(images[1].numpy(), np.full((8, 10, 3), 10 / np.float32(255)))
    assert target["num_boxes"].numpy().tolist() == [2, 1]
    np.testing.assert_array_equal(target["boxes"][0, :2].numpy(), VOC_BOXES[0])
    np.testing.assert_array_equal(target["boxes"][1, :1].numpy(), VOC_BOXES[1])
    assert target["classes"].numpy().tolist() == [[3, 4, -1], [3, -1, -1]]
    assert target["difficult"].numpy().tolist() == [[0, 0, 0], [1, 0, 0]]


def test_unknown_segmentation_classes_is_an_error():
    with tfds.testing.mock_data(num_examples=1):
        with pytest.raises(ValueError, match="needs classes, num_classes or id_map"):
            tfds_source.source("mnist", "segmentation", splits=["test"])


def test_unprepared_dataset_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"TFDS dataset 'mnist' split 'train' is not "
                       r"prepared in data_dir="):  # fmt: skip
        tfds_source.source("mnist", "classification", data_dir=str(tmp_path), splits=["train"])


def test_missing_tensorflow_datasets_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def without_tfds(name, *args, **kwargs):  # as if tensorflow-datasets were not installed
        if name.partition(".")[0] == "tensorflow_datasets":
            raise ModuleNotFoundError("No module named 'tensorflow_datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tfds)
    tfds_source._tfds.cache_clear()  # imported once per process (lru_cache)
    with pytest.raises(ImportError, match=r"pip install 'tfcompress\[tfds\]'"):
        tfds_source._tfds()
