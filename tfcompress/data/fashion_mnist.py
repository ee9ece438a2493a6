"""Fashion-MNIST from its idx ``.gz`` files (Debian's ``dataset-fashion-mnist`` package).

    images, labels = fashion_mnist.load(split="train")   # uint8 [60000, 28, 28], int64 [60000]
    images, labels = fashion_mnist.load(split="test")    # uint8 [10000, 28, 28], int64 [10000]

Uses NumPy only (no TensorFlow ops).
"""

import gzip
import os

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"

CLASS_NAMES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 28

# split -> file prefix, as the original distribution names them.
SPLIT_PREFIXES = {"train": "train", "test": "t10k"}

_IMAGES_MAGIC = 2051  # idx3, unsigned byte
_LABELS_MAGIC = 2049  # idx1, unsigned byte


def file_paths(directory=DEFAULT_DIR, split="train"):
    """Returns ``(images_path, labels_path)`` of one split's idx ``.gz`` files."""
    if split not in SPLIT_PREFIXES:
        raise ValueError(
            f"Unknown Fashion-MNIST split. Expected one of {sorted(SPLIT_PREFIXES)}. "
            f"Received: split={split!r}"
        )
    prefix = SPLIT_PREFIXES[split]
    return (
        os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"),
        os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"),
    )


def _read_idx(path, magic, ndim):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Fashion-MNIST file not found: {path} "
            "(install Debian's dataset-fashion-mnist or pass the directory holding the idx files)"
        )
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"Cannot read idx file {path}: {e}") from e
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"Truncated idx file {path}: {len(data)} bytes, header needs {header_len}")
    got_magic = int.from_bytes(data[:4], "big")
    if got_magic != magic:
        raise ValueError(f"Bad idx magic number in {path}: expected {magic}, got {got_magic}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) + header_len
    if len(data) != expected:
        raise ValueError(
            f"Truncated or oversized idx file {path}: {len(data)} bytes, "
            f"header shape {shape} needs {expected}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def load(directory=DEFAULT_DIR, split="train"):
    """Loads one split.

    Args:
      directory: folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
      split: ``"train"`` (60,000 examples) or ``"test"`` (10,000).

    Returns:
      ``(images, labels)``: uint8 ``[N, 28, 28]`` and int64 ``[N]`` with values in ``0..9``.

    Raises:
      FileNotFoundError: naming the missing file.
      ValueError: an unknown split, or a corrupt / truncated / mismatched idx file (named).
    """
    images_path, labels_path = file_paths(directory, split)
    images = _read_idx(images_path, _IMAGES_MAGIC, ndim=3)
    labels = _read_idx(labels_path, _LABELS_MAGIC, ndim=1).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Fashion-MNIST count mismatch: {images_path} has {images.shape[0]} images, "
            f"{labels_path} has {labels.shape[0]} labels"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise ValueError(
            f"Label {int(labels.max())} outside 0..{NUM_CLASSES - 1} in {labels_path} "
            f"(record {int(labels.argmax())})"
        )
    return images.copy(), labels
