"""Cityscapes route on a mini leftImg8bit/gtFine tree: labelIds -> 19 train ids, 255 ignore."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfcompress.data import build_dataset, convert
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.sources import cityscapes

H, W = 8, 12


def _write(root, split, city, stem, image, label_ids):
    img_dir = os.path.join(root, "leftImg8bit", split, city)
    lbl_dir = os.path.join(root, "gtFine", split, city)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(lbl_dir, exist_ok=True)
    Image.fromarray(image).save(os.path.join(img_dir, f"{stem}_leftImg8bit.png"))
    if label_ids is not None:
        Image.fromarray(label_ids).save(os.path.join(lbl_dir, f"{stem}_gtFine_labelIds.png"))


def _tree(root, splits=("train", "val")):
    """Two cities in train, one in val; each label uses every labelId 0..33 somewhere."""
    rng = np.random.default_rng(1)
    truth = {}
    for split in splits:
        for city in ("aachen", "bonn") if split == "train" else ("lindau",):
            stem = f"{city}_000000_000019"
            image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            ids = rng.integers(0, 34, (H, W), dtype=np.uint8)
            ids.reshape(-1)[:34] = np.arange(34)
            _write(root, split, city, stem, image, ids)
            truth.setdefault(split, []).append((image, ids))
    return truth


def _expected_train_ids(ids):
    table = np.full(34, 255, np.int64)
    for label_id, train_id in {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8,
                               22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16,
                               32: 17, 33: 18}.items():  # fmt: skip
        table[label_id] = train_id
    return table[ids]


def test_round_trip_exact(tmp_path):
    truth = _tree(str(tmp_path / "cs"))
    manifest = convert.convert(cityscapes.source(str(tmp_path / "cs")), str(tmp_path / "out"), 2)
    assert manifest["num_classes"] == 19 and manifest["label_map"]["7"] == 0
    assert manifest["label_map"]["0"] == 255
    assert {s: e["num_examples"] for s, e in manifest["splits"].items()} == {"train": 2, "val": 1}
    for split, examples in truth.items():
        ds = build_dataset(str(tmp_path / "out" / f"{split}-*"), "segmentation", 2, training=False)
        got = [(x, m) for xb, mb in ds for x, m in zip(xb.numpy(), mb.numpy(), strict=True)]
        assert len(got) == len(examples)
        for (x, m), (image, ids) in zip(got, examples, strict=True):
            assert x.shape == (H, W, 3) and m.dtype == np.int32
            np.testing.assert_array_equal(x, image.astype(np.float32) / np.float32(255))
            np.testing.assert_array_equal(m, _expected_train_ids(ids))
        assert set(np.unique(got[0][1])) == set(range(19)) | {255}


def test_missing_folder_named(tmp_path):
    os.makedirs(tmp_path / "cs" / "gtFine")
    with pytest.raises(FileNotFoundError, match=r"Missing Cityscapes leftImg8bit folder: .*cs"):
        cityscapes.source(str(tmp_path / "cs"))


def test_image_without_label_named(tmp_path):
    _tree(str(tmp_path / "cs"), splits=("train",))
    _write(str(tmp_path / "cs"), "train", "bonn", "bonn_000001_000019",
           np.zeros((H, W, 3), np.uint8), None)  # fmt: skip
    src = cityscapes.source(str(tmp_path / "cs"))
    with pytest.raises(
        CorruptInputError, match=r"Image without its label: .*bonn_000001_000019_leftImg8bit\.png"
    ):
        convert.convert(src, str(tmp_path / "out"), 1)
    manifest = convert.convert(src, str(tmp_path / "out"), 1, skip_corrupt=True)
    assert manifest["splits"]["train"]["num_skipped"] == 1
    assert manifest["splits"]["train"]["num_examples"] == 2


def test_size_mismatch_named(tmp_path):
    _write(str(tmp_path / "cs"), "val", "lindau", "lindau_0", np.zeros((H, W, 3), np.uint8),
           np.zeros((H, W + 1), np.uint8))  # fmt: skip
    with pytest.raises(CorruptInputError, match=r"size mismatch: .*lindau_0_leftImg8bit\.png is "
                       r"8x12 but .*lindau_0_gtFine_labelIds\.png is 8x13"):  # fmt: skip
        convert.convert(cityscapes.source(str(tmp_path / "cs")), str(tmp_path / "out"), 1)


def test_label_id_outside_map_named(tmp_path):
    ids = np.full((H, W), 7, np.uint8)
    ids[0, 0] = 40
    _write(str(tmp_path / "cs"), "val", "lindau", "lindau_0", np.zeros((H, W, 3), np.uint8), ids)
    with pytest.raises(
        CorruptInputError, match=r"Label id\(s\) \[40\] outside the label map in .*labelIds\.png"
    ):
        convert.convert(cityscapes.source(str(tmp_path / "cs")), str(tmp_path / "out"), 1)


@pytest.mark.slow
def test_command_line_error_names_file(tmp_path):
    ids = np.full((H, W), 99, np.uint8)
    _write(str(tmp_path / "cs"), "val", "lindau", "lindau_0", np.zeros((H, W, 3), np.uint8), ids)
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.cityscapes", f"--cityscapes_dir={tmp_path / 'cs'}",
         f"--output_dir={tmp_path / 'out'}"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "error: Label id(s) [99] outside the label map in" in result.stderr
    assert "lindau_0_gtFine_labelIds.png" in result.stderr
    assert not list((tmp_path / "out").glob("val-*"))


def test_stray_files_beside_the_cities_are_ignored(tmp_path):
    _tree(str(tmp_path / "cs"), splits=("train",))
    for stray in ("README.txt", ".DS_Store"):
        (tmp_path / "cs" / "leftImg8bit" / "train" / stray).write_text("x")
    src = cityscapes.source(str(tmp_path / "cs"))  # "[Errno 20] Not a directory" before
    assert len(src.splits["train"]) == 2
