"""VOC route on a mini VOCdevkit (JPEG + XML + ImageSets/Main): exact boxes, classes, flags."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcompress.data import build_dataset, convert
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.sources import voc

H, W = 12, 16

# id -> [(name, xmin, ymin, xmax, ymax, difficult)] in VOC's 1-based inclusive pixels.
OBJECTS = {
    "000005": [("chair", 3, 2, 10, 7, 0), ("person", 1, 1, 16, 12, 1)],
    "000007": [("car", 5, 4, 6, 5, 0)],
    "000009": [("dog", 2, 3, 8, 12, 0), ("cat", 9, 1, 15, 6, 0), ("tvmonitor", 1, 1, 1, 1, 1)],
}


def _xml(objects, size=(H, W)):
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{x0}</xmin>"
        f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for n, x0, y0, x1, y1, d in objects
    )
    return (f"<annotation><filename>x.jpg</filename><size><width>{size[1]}</width>"
            f"<height>{size[0]}</height><depth>3</depth></size>{objs}</annotation>")  # fmt: skip


def _devkit(root, objects=OBJECTS, splits=None):
    voc_dir = os.path.join(root, "VOCdevkit", "VOC2007")
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc_dir, sub), exist_ok=True)
    rng = np.random.default_rng(2)
    for image_id, objs in objects.items():
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(image).save(os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg"))
        with open(os.path.join(voc_dir, "Annotations", f"{image_id}.xml"), "w") as f:
            f.write(_xml(objs))
    splits = splits or {"train": ["000005", "000007"], "val": ["000009"]}
    for split, ids in splits.items():
        with open(os.path.join(voc_dir, "ImageSets", "Main", f"{split}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    return voc_dir


def _expected_boxes(objs):
    px = np.array([[y0, x0, y1, x1] for _, x0, y0, x1, y1, _ in objs], np.float32)
    return (px - np.array([1, 1, 0, 0], np.float32)) / np.array([H, W, H, W], np.float32)


def test_round_trip_exact(tmp_path):
    voc_dir = _devkit(str(tmp_path))
    manifest = convert.convert(voc.source(voc_dir), str(tmp_path / "out"), 2)
    assert manifest["num_classes"] == 20 and manifest["classes"][14] == "person"
    assert manifest["splits"]["train"]["class_histogram"] == {"6": 1, "8": 1, "14": 1}
    for split, ids in {"train": ["000005", "000007"], "val": ["000009"]}.items():
        ds = build_dataset(str(tmp_path / "out" / f"{split}-*"), "detection", 8, training=False,
                           max_boxes=5)  # fmt: skip
        images, target = next(iter(ds))
        assert images.shape == (len(ids), H, W, 3)
        assert target["boxes"].shape == (len(ids), 5, 4) and target["classes"].dtype == tf.int32
        for i, image_id in enumerate(ids):
            # JPEG bytes are kept as-is and decode to exactly PIL's (libjpeg's) pixels.
            pixels = np.asarray(Image.open(os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg")))
            np.testing.assert_array_equal(images[i].numpy(), pixels / np.float32(255))
            objs = OBJECTS[image_id]
            k = len(objs)
            assert int(target["num_boxes"][i]) == k
            np.testing.assert_array_equal(target["boxes"][i, :k].numpy(), _expected_boxes(objs))
            np.testing.assert_array_equal(target["boxes"][i, k:].numpy(), 0)
            classes = [voc.CLASSES.index(o[0]) for o in objs] + [-1] * (5 - k)
            assert target["classes"][i].numpy().tolist() == classes
            assert target["difficult"][i, :k].numpy().tolist() == [o[5] for o in objs]


def test_missing_annotations_folder_named(tmp_path):
    voc_dir = _devkit(str(tmp_path))
    os.rename(os.path.join(voc_dir, "Annotations"), os.path.join(voc_dir, "Ann"))
    with pytest.raises(FileNotFoundError, match=r"Missing VOC Annotations folder: .*Annotations"):
        voc.source(voc_dir)


def test_missing_split_list_named(tmp_path):
    voc_dir = _devkit(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"Missing VOC split list: .*Main/test\.txt"):
        voc.source(voc_dir, ["test"])


def test_unknown_class_named(tmp_path):
    voc_dir = _devkit(str(tmp_path), {"000001": [("unicorn", 1, 1, 4, 4, 0)]},
                      splits={"train": ["000001"]})  # fmt: skip
    with pytest.raises(CorruptInputError, match=r"Unknown class name 'unicorn' in .*000001\.xml"):
        convert.convert(voc.source(voc_dir), str(tmp_path / "out"), 1)


def test_image_without_annotation_named_or_skipped(tmp_path):
    voc_dir = _devkit(str(tmp_path))
    os.remove(os.path.join(voc_dir, "Annotations", "000007.xml"))
    src = voc.source(voc_dir, ["train"])
    with pytest.raises(CorruptInputError, match=r"Image without its label: .*000007\.xml"):
        convert.convert(src, str(tmp_path / "out"), 1)
    manifest = convert.convert(src, str(tmp_path / "out"), 1, skip_corrupt=True)
    assert manifest["splits"]["train"]["num_examples"] == 1
    assert manifest["splits"]["train"]["num_skipped"] == 1


def test_a_non_numeric_difficult_flag_is_named_and_skippable(tmp_path):
    voc_dir = _devkit(str(tmp_path))
    with open(os.path.join(voc_dir, "Annotations", "000007.xml"), "w") as f:
        f.write(_xml([("car", 5, 4, 6, 5, "Unspecified")]))
    src = voc.source(voc_dir, ["train"])
    with pytest.raises(CorruptInputError, match=r"<difficult> must be 0 or 1, not "
                                                r"'Unspecified', in .*000007\.xml"):
        convert.convert(src, str(tmp_path / "out"), 1)  # int()'s message, no file, before
    manifest = convert.convert(src, str(tmp_path / "out"), 1, skip_corrupt=True)
    assert manifest["splits"]["train"]["num_skipped"] == 1


@pytest.mark.parametrize("box, message", [
    ((20, 3, 10, 9), "Inverted box of object 1 ('dog') in {xml}: xmin=20 > xmax=10 (xmin=20, "
                     "ymin=3, xmax=10, ymax=9)"),
    ((2, 9, 5, 3), "Inverted box of object 1 ('dog') in {xml}: ymin=9 > ymax=3 (xmin=2, ymin=9, "
                   "xmax=5, ymax=3)"),
    ((-5, 1, 10, 10), "Box of object 1 ('dog') in {xml} is outside the 12x16 image (x in 1..16, "
                      "y in 1..12): xmin=-5, ymin=1, xmax=10, ymax=10"),
    ((1, 1, 17, 12.5), "Box of object 1 ('dog') in {xml} is outside the 12x16 image (x in "
                       "1..16, y in 1..12): xmin=1, ymin=1, xmax=17, ymax=12.5"),
])  # fmt: skip
def test_a_bad_box_names_its_object_and_coordinates(tmp_path, box, message):
    """All of these were 'Box outside the 12x16 image in ...xml', no object named."""
    voc_dir = _devkit(str(tmp_path), {"000001": [("cat", 1, 1, 16, 12, 0), ("dog", *box, 0)],
                                      "000002": [("cat", 1, 1, 4, 4, 0)]},
                      splits={"train": ["000001", "000002"]})  # fmt: skip
    src = voc.source(voc_dir)
    with pytest.raises(CorruptInputError) as info:
        convert.convert(src, str(tmp_path / "out"), 1)
    xml = os.path.join(voc_dir, "Annotations", "000001.xml")
    assert str(info.value) == message.format(xml=xml)
    manifest = convert.convert(src, str(tmp_path / "out"), 1, skip_corrupt=True)
    assert manifest["splits"]["train"]["num_examples"] == 1
    assert manifest["splits"]["train"]["skipped"] == [str(info.value)]


def test_a_one_pixel_box_is_kept(tmp_path):
    voc_dir = _devkit(str(tmp_path), {"000001": [("cat", 16, 12, 16, 12, 0)]},
                      splits={"train": ["000001"]})  # fmt: skip
    manifest = convert.convert(voc.source(voc_dir), str(tmp_path / "out"), 1)
    assert manifest["splits"]["train"]["num_examples"] == 1


def test_fractional_pixel_coordinates_are_kept(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(_xml([("cat", 2.5, 1, 6.7, 4.25, 0)]))
    _, _, boxes, classes, difficult = voc.parse_annotation(str(path))
    np.testing.assert_array_equal(boxes, np.float32([[1, 2.5, 4.25, 6.7]]))  # (6.7 was 6)
    assert classes == [voc.CLASSES.index("cat")] and difficult == [0]


def test_size_mismatch_named(tmp_path):
    voc_dir = _devkit(str(tmp_path), {"000001": [("cat", 1, 1, 4, 4, 0)]},
                      splits={"train": ["000001"]})  # fmt: skip
    with open(os.path.join(voc_dir, "Annotations", "000001.xml"), "w") as f:
        f.write(_xml([("cat", 1, 1, 4, 4, 0)], size=(H + 1, W)))
    with pytest.raises(CorruptInputError, match=r"size mismatch: .*000001\.jpg is 12x16 but "
                       r".*000001\.xml says 13x16"):  # fmt: skip
        convert.convert(voc.source(voc_dir), str(tmp_path / "out"), 1)


@pytest.mark.slow
def test_command_line(tmp_path):
    voc_dir = _devkit(str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.voc", f"--voc_dir={voc_dir}",
         f"--output_dir={tmp_path / 'out'}", "--num_shards=1", "--splits=val"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "val-00000-of-00001.tfrecord").exists()
