"""segmentation_pairs route: image folder + label folder, id and colour label maps."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfcompress.data import build_dataset, convert
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.sources import segmentation_pairs as pairs

H, W = 6, 7
COLOURS = {"170,170,170": 0, "0,255,0": 1, "0,0,0": 255}


def _pairs(root, labels, suffix="", ext=".jpg"):
    os.makedirs(os.path.join(root, "rgb"), exist_ok=True)
    os.makedirs(os.path.join(root, "gt"), exist_ok=True)
    rng = np.random.default_rng(3)
    images = []
    for i, label in enumerate(labels):
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(image).save(os.path.join(root, "rgb", f"b{i}{ext}"))
        if label is not None:
            Image.fromarray(label).save(os.path.join(root, "gt", f"b{i}{suffix}.png"))
        images.append(os.path.join(root, "rgb", f"b{i}{ext}"))
    return images


def _masks(pattern):
    ds = build_dataset(pattern, "segmentation", 8, training=False)
    return np.concatenate([m.numpy() for _, m in ds])


def test_id_label_map(tmp_path):
    ids = np.arange(H * W, dtype=np.uint8).reshape(H, W) % 4
    _pairs(str(tmp_path), [ids, 3 - ids], suffix="_mask")
    map_path = tmp_path / "map.json"
    map_path.write_text(json.dumps({"0": 255, "1": 0, "2": 1, "3": 2}))
    label_map = pairs.load_label_map(str(map_path))
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), split="val",
                       label_map=label_map, label_suffix="_mask")  # fmt: skip
    manifest = convert.convert(src, str(tmp_path / "out"), 1)
    assert manifest["num_classes"] == 3
    lut = np.array([255, 0, 1, 2])
    np.testing.assert_array_equal(_masks(str(tmp_path / "out" / "val-*")),
                                  np.stack([lut[ids], lut[3 - ids]]))  # fmt: skip


def test_colour_label_map_and_jpeg_pixels(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :3] = 170
    rgb[:2, 3:] = (0, 255, 0)
    images = _pairs(str(tmp_path), [rgb])
    map_path = tmp_path / "colours.json"
    map_path.write_text(json.dumps(COLOURS))
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"),
                       label_map=pairs.load_label_map(str(map_path)))  # fmt: skip
    convert.convert(src, str(tmp_path / "out"), 1)
    expected = np.full((H, W), 255)
    expected[:, :3] = 0
    expected[:2, 3:] = 1
    np.testing.assert_array_equal(_masks(str(tmp_path / "out" / "train-*"))[0], expected)
    ds = build_dataset(str(tmp_path / "out" / "train-*"), "segmentation", 1, training=False)
    image = next(iter(ds))[0][0].numpy()
    np.testing.assert_array_equal(image, np.asarray(Image.open(images[0])) / np.float32(255))


@pytest.mark.parametrize("value", [2, 254])  # 254: num_classes=255 keeps 255 as ignore
def test_no_map_checks_num_classes(tmp_path, value):
    ids = np.full((H, W), value, np.uint8)
    ids[0, 0] = 255
    _pairs(str(tmp_path), [ids])
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), num_classes=value + 1)
    convert.convert(src, str(tmp_path / "out"), 1)
    np.testing.assert_array_equal(_masks(str(tmp_path / "out" / "train-*"))[0], ids)
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), num_classes=value)
    with pytest.raises(CorruptInputError, match=rf"Label id\(s\) \[{value}\] outside the label "
                       r"map in .*gt/b0\.png"):  # fmt: skip
        convert.convert(src, str(tmp_path / "out"), 1)


@pytest.mark.parametrize("num_classes", [0, -1, 256, 300])
def test_num_classes_beyond_an_8_bit_mask_is_refused(tmp_path, num_classes):
    """300 gave numpy's 'could not broadcast input array from shape (300,) into shape
    (256,)', 0 a 'Label id(s) [0] outside the label map' though there was no map."""
    _pairs(str(tmp_path), [np.zeros((H, W), np.uint8)])
    with pytest.raises(ValueError) as info:
        pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), num_classes=num_classes)
    assert str(info.value) == (
        "num_classes must be in 1..255: masks hold 8-bit class ids and 255 is the ignore "
        f"label. Received: num_classes={num_classes}"
    )


@pytest.mark.slow
def test_num_classes_flag_is_bounded(tmp_path):
    _pairs(str(tmp_path), [np.zeros((H, W), np.uint8)])
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.segmentation_pairs",
         f"--image_dir={tmp_path / 'rgb'}", f"--label_dir={tmp_path / 'gt'}",
         f"--output_dir={tmp_path / 'out'}", "--num_classes=300"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 1
    assert "flag --num_classes=300: 300 is not an integer in the range [1, 255]" in result.stderr
    assert not (tmp_path / "out").exists()


def test_colour_outside_map_named(tmp_path):
    rgb = np.full((H, W, 3), 170, np.uint8)
    rgb[1, 1] = (1, 2, 3)
    _pairs(str(tmp_path), [rgb])
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"),
                       label_map=pairs.parse_label_map(COLOURS))  # fmt: skip
    with pytest.raises(CorruptInputError, match=r"colour\(s\) \[\(1, 2, 3\)\] outside the label "
                       r"map in .*gt/b0\.png"):  # fmt: skip
        convert.convert(src, str(tmp_path / "out"), 1)


def test_image_without_label_named(tmp_path):
    _pairs(str(tmp_path), [np.zeros((H, W), np.uint8), None])
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), num_classes=2)
    with pytest.raises(CorruptInputError, match=r"Image without its label: .*rgb/b1\.jpg "
                       r"\(expected .*gt/b1\.png\)"):  # fmt: skip
        convert.convert(src, str(tmp_path / "out"), 1)
    manifest = convert.convert(src, str(tmp_path / "out"), 1, skip_corrupt=True)
    assert manifest["splits"]["train"]["num_skipped"] == 1


def test_size_mismatch_named(tmp_path):
    _pairs(str(tmp_path), [np.zeros((H + 2, W), np.uint8)])
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), num_classes=2)
    with pytest.raises(CorruptInputError, match=r"size mismatch: .*b0\.jpg is 6x7 but "
                       r".*b0\.png is 8x7"):  # fmt: skip
        convert.convert(src, str(tmp_path / "out"), 1)


def test_missing_label_folder_and_bad_map(tmp_path):
    _pairs(str(tmp_path), [None])
    with pytest.raises(FileNotFoundError, match=r"Missing label folder: .*nolabels"):
        pairs.source(str(tmp_path / "rgb"), str(tmp_path / "nolabels"), num_classes=2)
    bad = tmp_path / "bad.json"
    bad.write_text('{"a,b": 1}')
    with pytest.raises(ValueError, match=r"bad\.json: key 'a,b' is neither an id nor 'r,g,b'"):
        pairs.load_label_map(str(bad))


@pytest.mark.parametrize("mode, values, message", [
    ("1", np.eye(H, W, dtype=bool), "must be an 8-bit 1-channel id image .* it is a 1-bit"),
    ("I;16", np.full((H, W), 300, np.uint16), "it is a 16-bit image"),
])
def test_labels_that_are_not_8_bit_ids_are_named_and_skippable(tmp_path, mode, values, message):
    """1-bit and 16-bit label PNGs raised a raw IndexError from the id table before (and
    --skip_corrupt could not skip them)."""
    _pairs(str(tmp_path), [np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)])
    Image.fromarray(values).convert(mode).save(tmp_path / "gt" / "b1.png")
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), num_classes=2)
    with pytest.raises(CorruptInputError, match=f"Label .*gt/b1.png .*{message}"):
        convert.convert(src, str(tmp_path / "out"), 1)
    manifest = convert.convert(src, str(tmp_path / "out"), 1, skip_corrupt=True)
    assert manifest["splits"]["train"]["num_skipped"] == 1


def test_jpeg_labels_are_refused_and_a_png_beside_one_is_used(tmp_path):
    ids = np.zeros((H, W), np.uint8)
    ids[:, 3:] = 2
    _pairs(str(tmp_path), [ids])
    Image.fromarray(ids * 100).save(tmp_path / "gt" / "b0.jpg")  # same stem, lossy
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), num_classes=3)
    convert.convert(src, str(tmp_path / "out"), 1)  # the PNG (the JPEG sorted first before)
    np.testing.assert_array_equal(_masks(str(tmp_path / "out" / "train-*"))[0], ids)
    os.remove(tmp_path / "gt" / "b0.png")
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"), num_classes=3)
    with pytest.raises(CorruptInputError, match=r"Label .*gt/b0.jpg is a JPEG file: a lossy "
                                                r"format changes pixels' classes"):
        convert.convert(src, str(tmp_path / "out2"), 1)


def test_a_palette_label_maps_through_its_colours(tmp_path):
    ids = np.zeros((H, W), np.uint8)
    ids[:2] = 1
    _pairs(str(tmp_path), [ids])
    palette = Image.fromarray(ids, "P")
    palette.putpalette([170, 170, 170, 0, 255, 0] + [0] * 762)
    palette.save(tmp_path / "gt" / "b0.png")  # refused as "must be RGB" before
    src = pairs.source(str(tmp_path / "rgb"), str(tmp_path / "gt"),
                       label_map=pairs.parse_label_map(COLOURS))
    convert.convert(src, str(tmp_path / "out"), 1)
    np.testing.assert_array_equal(_masks(str(tmp_path / "out" / "train-*"))[0], ids)


def test_ids_beyond_eight_bits_are_named_not_wrapped():
    from tfcompress.data.sources.common import apply_lut, id_lut

    lut = id_lut(None, 3)
    np.testing.assert_array_equal(apply_lut(np.array([[0, 2, 255]], np.int64), lut, "m"),
                                  [[0, 2, 255]])
    with pytest.raises(CorruptInputError, match=r"Label id\(s\) \[300\] in ex7 do not fit 8 "
                                                r"bits"):
        apply_lut(np.array([[0, 300]], np.int64), lut, "ex7")  # (a uint8 cast made it 44)
