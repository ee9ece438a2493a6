"""image_folder route: class-per-folder PNGs -> shards -> build_dataset, exact pixels/labels."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfcompress.data import build_dataset, convert
from tfcompress.data.errors import CorruptInputError
from tfcompress.data.sources import image_folder

CLASSES = ("cat", "dog", "emu")


def _make_folder(root, split_dirs=("",), per_class=2, size=(6, 5)):
    """root/[split/]class/i.png with distinct RGB content; returns {path: (array, label)}."""
    rng = np.random.default_rng(0)
    truth = {}
    for split in split_dirs:
        for label, name in enumerate(CLASSES):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                path = os.path.join(folder, f"{i}.png")
                Image.fromarray(array).save(path)
                truth[path] = (array, label)
    return truth


def _read_all(pattern, task="classification"):
    xs, ys = [], []
    for x, y in build_dataset(pattern, task, 4, training=False):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.slow
def test_round_trip_exact(tmp_path):
    truth = _make_folder(tmp_path / "photos")
    src = image_folder.source(str(tmp_path / "photos"))
    assert list(src.splits) == ["train"] and list(src.classes) == list(CLASSES)
    manifest = convert.convert(src, str(tmp_path / "out"), num_shards=2)
    assert manifest["splits"]["train"]["num_examples"] == 6
    assert manifest["splits"]["train"]["class_histogram"] == {"0": 2, "1": 2, "2": 2}
    images, labels = _read_all(str(tmp_path / "out" / "train-*.tfrecord"))
    expected = list(truth.values())  # conversion order = sorted classes, sorted files
    assert images.shape == (6, 6, 5, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32
    for got_image, got_label, (array, label) in zip(images, labels, expected, strict=True):
        np.testing.assert_array_equal(got_image, array.astype(np.float32) / np.float32(255))
        assert got_label == label


@pytest.mark.slow
def test_split_folders(tmp_path):
    _make_folder(tmp_path / "root", split_dirs=("train", "val"), per_class=1)
    src = image_folder.source(str(tmp_path / "root"))
    assert sorted(src.splits) == ["train", "val"]
    convert.convert(src, str(tmp_path / "out"), num_shards=1)
    _, labels = _read_all(str(tmp_path / "out" / "val-*.tfrecord"))
    assert labels.tolist() == [0, 1, 2]


def test_missing_folder_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Missing image folder: .*nowhere"):
        image_folder.source(str(tmp_path / "nowhere"))


def test_unknown_class_folder_named(tmp_path):
    _make_folder(tmp_path / "root", split_dirs=("train",), per_class=1)
    os.makedirs(tmp_path / "root" / "val" / "yak")
    with pytest.raises(ValueError, match=r"Unknown class folder .*val/yak"):
        image_folder.source(str(tmp_path / "root"))


def test_corrupt_image_named_or_skipped(tmp_path):
    _make_folder(tmp_path / "photos", per_class=1)
    bad = tmp_path / "photos" / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    src = image_folder.source(str(tmp_path / "photos"))
    with pytest.raises(CorruptInputError, match=r"Cannot decode image .*dog/broken\.png"):
        convert.convert(src, str(tmp_path / "out"), num_shards=1)
    assert not list((tmp_path / "out").glob("train-*"))  # nothing that looks whole
    manifest = convert.convert(src, str(tmp_path / "out"), num_shards=1, skip_corrupt=True)
    entry = manifest["splits"]["train"]
    assert entry["num_examples"] == 3 and entry["num_skipped"] == 1
    assert "broken.png" in entry["skipped"][0]


def _encoded(image_format):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, damage, reason",
    [
        ("no_iend.png", lambda b: b[:-12], "truncated PNG file"),  # IEND cut off
        ("cut.png", lambda b: b[:-20], "Truncated File Read"),  # cut in the last IDAT's CRC
        ("bad_crc.png", lambda b: b[:-16] + bytes([b[-16] ^ 1]) + b[-15:],
         "broken PNG file (bad header checksum in b'IDAT')"),
        ("cut.jpg", lambda b: b[:-10], "image file is truncated (143 bytes not processed)"),
    ],
)  # fmt: skip
def test_a_file_the_reader_would_refuse_is_named_or_skipped(tmp_path, name, damage, reason):
    import tensorflow as tf

    from tfcompress.data import decode

    data = damage(_encoded("PNG" if name.endswith(".png") else "JPEG"))
    with pytest.raises(tf.errors.InvalidArgumentError):  # what build_dataset would meet
        decode.decode_image(tf.constant(data), 3)
    _make_folder(tmp_path / "photos", per_class=1)
    bad = tmp_path / "photos" / "dog" / name
    bad.write_bytes(data)
    src = image_folder.source(str(tmp_path / "photos"))
    with pytest.raises(CorruptInputError) as info:  # (PIL's load() alone accepted the PNGs)
        convert.convert(src, str(tmp_path / "out"), num_shards=1)
    assert str(info.value) == f"Cannot decode image {bad}: {reason}"
    manifest = convert.convert(src, str(tmp_path / "out"), num_shards=1, skip_corrupt=True)
    entry = manifest["splits"]["train"]
    assert entry["num_examples"] == 3 and entry["skipped"] == [str(info.value)]
    images, _ = _read_all(str(tmp_path / "out" / "train-*.tfrecord"))
    assert len(images) == 3  # every record written decodes


def test_an_image_beyond_pils_limit_is_named_or_skipped(tmp_path, monkeypatch, recwarn):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # refused beyond 200 pixels
    _make_folder(tmp_path / "photos", per_class=1, size=(10, 12))  # 120: decoded, no warning
    big = tmp_path / "photos" / "dog" / "big.png"
    Image.fromarray(np.zeros((15, 14), np.uint8)).save(big)  # 210 pixels
    src = image_folder.source(str(tmp_path / "photos"))
    with pytest.raises(CorruptInputError) as info:  # (was PIL's DecompressionBombError)
        convert.convert(src, str(tmp_path / "out"), num_shards=1)
    assert str(info.value) == (
        f"Image {big} is too large to decode: Image size (210 pixels) exceeds limit of 200 "
        "pixels, could be decompression bomb DOS attack."
    )
    manifest = convert.convert(src, str(tmp_path / "out"), num_shards=1, skip_corrupt=True)
    assert manifest["splits"]["train"]["num_examples"] == 3
    assert manifest["splits"]["train"]["skipped"] == [str(info.value)]
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.slow
def test_command_line(tmp_path):
    _make_folder(tmp_path / "photos", per_class=1)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_tools.image_folder", f"--image_dir={tmp_path / 'photos'}",
         f"--output_dir={out}", "--num_shards=2", "--split=val"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "val-00000-of-00002.tfrecord", "val-00001-of-00002.tfrecord",
    ]  # fmt: skip
    assert "val [" in result.stderr and '"num_examples": 3' in result.stderr


def test_sixteen_bit_images_are_scaled_to_eight_bits_not_clipped(tmp_path):
    from tfcompress.data import encode

    values = np.array([[0, 257, 4112], [32896, 65000, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")  # a 16-bit gray PNG ("I;16")
    image = encode.read_image(str(tmp_path / "deep.png"))
    pixels = np.asarray(Image.open(io.BytesIO(image.data)))
    np.testing.assert_array_equal(pixels, [[0, 1, 16], [128, 253, 255]])  # v / 257, rounded
    # (PIL's convert("L") clipped: [[0, 255, 255], [255, 255, 255]])
    Image.fromarray(np.zeros((2, 3), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(CorruptInputError, match=r"float.tif holds floating-point pixels"):
        encode.read_image(str(tmp_path / "float.tif"))


def test_hidden_folders_are_not_classes(tmp_path):
    _make_folder(tmp_path / "photos", per_class=1)
    (tmp_path / "photos" / ".ipynb_checkpoints").mkdir()  # left by Jupyter beside the classes
    src = image_folder.source(str(tmp_path / "photos"))
    assert list(src.classes) == list(CLASSES)  # (".ipynb_checkpoints" was class 0 before)


@pytest.mark.parametrize("target, reason", [
    ("/nonexistent/dog", "No such file or directory"),  # a share that is not mounted
    ("dog", "Too many levels of symbolic links"),  # a loop
])  # fmt: skip
def test_a_class_folder_link_that_cannot_be_followed_is_named(tmp_path, target, reason):
    """It was dropped: classes [cat, emu] instead of [cat, dog, emu], emu's label shifted."""
    _make_folder(tmp_path / "photos", per_class=1)
    link = tmp_path / "photos" / "dog"
    for path in link.iterdir():
        path.unlink()
    link.rmdir()
    os.symlink(target, link)
    with pytest.raises(FileNotFoundError) as info:
        image_folder.source(str(tmp_path / "photos"))
    assert str(info.value) == (
        f"Class folder {link} is a symbolic link to {target!r} that cannot be followed "
        f"({reason}): mount or fix its target, or remove the link"
    )


def test_links_that_can_be_followed_are_read(tmp_path):
    _make_folder(tmp_path / "photos", per_class=1)
    os.rename(tmp_path / "photos" / "dog", tmp_path / "dog")
    os.symlink(tmp_path / "dog", tmp_path / "photos" / "dog")  # a class folder elsewhere
    (tmp_path / "notes.txt").write_text("not a class")
    os.symlink(tmp_path / "notes.txt", tmp_path / "photos" / "notes.txt")  # a file: ignored
    assert list(image_folder.source(str(tmp_path / "photos")).classes) == list(CLASSES)


def test_a_class_named_like_a_split_is_explained(tmp_path):
    for name in ("bus", "car", "train"):  # vehicles: "train" is a class here
        (tmp_path / "vehicles" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "vehicles" / name / "0.png")
    with pytest.raises(ValueError, match=r"No class folders in .*vehicles/train \(train under "
                       r".*vehicles were read as split folders; if they are classes, give split="):
        image_folder.source(str(tmp_path / "vehicles"))
    src = image_folder.source(str(tmp_path / "vehicles"), split="train")
    assert list(src.classes) == ["bus", "car", "train"]
