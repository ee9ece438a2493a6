"""Class-per-folder images -> classification ``Source``.

Two layouts::

    root/{class}/*.png|jpg                 one split, named by ``split`` (default "train")
    root/{train,val,test}/{class}/*.png    one split per present split folder

Classes are the sorted class-folder names of the first split (or ``classes`` if given);
a class folder in another split that is not among them is an error.
"""

import functools
import os

from tfcompress.data import encode
from tfcompress.data.convert import Item, Source
from tfcompress.data.sources.common import (
    SPLITS,
    classification_record,
    list_images,
    require_dir,
)


def _load(path, label):
    return classification_record(encode.read_image(path), label)


def _class_dirs(split_dir):
    """The class folders of `split_dir`: its sub-folders but hidden ones (".ipynb_checkpoints",
    ".git": a class of no images would shift every label by one). A symbolic link that
    cannot be followed (dangling: a share not mounted; a loop) raises naming it: dropped, it
    would shift the labels of the classes after it."""
    names = sorted(d for d in os.listdir(split_dir) if not d.startswith("."))
    for name in names:
        _check_link(os.path.join(split_dir, name))
    return [d for d in names if os.path.isdir(os.path.join(split_dir, d))]


def _check_link(path):
    if not os.path.islink(path):
        return
    try:
        os.stat(path)
    except OSError as e:
        raise FileNotFoundError(
            f"Class folder {path} is a symbolic link to {os.readlink(path)!r} that cannot be "
            f"followed ({e.strerror}): mount or fix its target, or remove the link"
        ) from e


def source(root, split=None, classes=None):
    require_dir(root, "image")
    if split is None and any(os.path.isdir(os.path.join(root, s)) for s in SPLITS):
        split_dirs = {
            s: os.path.join(root, s) for s in SPLITS if os.path.isdir(os.path.join(root, s))
        }
    else:
        split_dirs = {split or "train": root}
    if classes is None:
        classes = _class_dirs(next(iter(split_dirs.values())))
    classes = list(classes)
    if not classes:
        hint = ""
        if split is None and split_dirs != {"train": root}:  # split folders were detected
            hint = (f" ({', '.join(split_dirs)} under {root} were read as split folders; if "
                    "they are classes, give split= (--split) to read the folders of root "
                    "as classes)")
        raise ValueError(f"No class folders in {next(iter(split_dirs.values()))}{hint}")
    index = {name: i for i, name in enumerate(classes)}
    items = {}
    for split_name, split_dir in split_dirs.items():
        items[split_name] = []
        for name in _class_dirs(split_dir):
            if name not in index:
                raise ValueError(
                    f"Unknown class folder {os.path.join(split_dir, name)}: "
                    f"expected one of {classes}"
                )
            for path in list_images(os.path.join(split_dir, name)):
                items[split_name].append(Item(path, functools.partial(_load, path, index[name])))
        if not items[split_name]:
            raise ValueError(f"No images found under {split_dir}")
    return Source("classification", items, classes)
