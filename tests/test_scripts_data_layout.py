"""One data layout in README, docs, configs and the scripts' usage texts: data made from the
Fashion-MNIST files under out/data/<name>, converted downloads under data/<name>; each
dataset has one directory, and every pattern a command or config reads names shards that a
converter command shown there writes (following the README, the configs find their data)."""

import fnmatch
import glob
import os
import re
import shlex

import pytest

from .test_scripts_helpers import REPO

SOURCES = sorted(
    p
    for pattern in ("README.md", "docs/*.md", "configs/*.cfg", "tfcompress/scripts/*.py",
                    "tfrecords_tools/*.py")
    for p in glob.glob(os.path.join(REPO, pattern))
)  # fmt: skip
COMMAND = re.compile(r"python -m (tfrecords_tools|tfcompress\.scripts)\.(\w+)([^`\n]*)")
BUILD_DATASET = re.compile(r"build_dataset\(\s*\"([^\"]+)\"")
# Splits a converter writes unless --splits / --split names them.
SPLITS = {
    "fashion_mnist": "train,test",
    "mosaic": "train,test",
    "cityscapes": "train,val,test",
    "voc": "train,val,test",
    "tfds": "train,val,test",
    "image_folder": "train,val,test",
    "segmentation_pairs": "train",
}
FROM_FASHION_MNIST = {"fashion_mnist", "mosaic"}  # made here: out/data/
READ_FLAGS = {"file_pattern", "train_data", "test_data", "calibration_data", "recalibrate_data"}


def _flags(args):
    """{name: value} of `--name=value` and `--name value` arguments."""
    tokens, out = shlex.split(args, comments=True), {}
    for i, token in enumerate(tokens):
        if not token.startswith("--"):
            continue
        name, sep, value = token[2:].partition("=")
        if not sep and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
            value = tokens[i + 1]
        out[name] = value
    return out


def _commands():
    """(where, package, program, flags) of every command line shown in SOURCES."""
    for path in SOURCES:
        with open(path) as f:
            text = re.sub(r"\\\n\s*#?", " ", f.read())  # continued lines, also in # comments
        where = os.path.relpath(path, REPO)
        for m in COMMAND.finditer(text):
            yield where, m.group(1), m.group(2), _flags(m.group(3))


def writes():
    """(where, dataset, output_dir, splits) of every converter command shown."""
    out = []
    for where, package, program, flags in _commands():
        if package == "tfrecords_tools" and program in SPLITS and "output_dir" in flags:
            dataset = {"mosaic": f"mosaic {flags.get('task', 'segmentation')}",
                       "tfds": f"tfds {flags.get('dataset')}"}.get(program, program)  # fmt: skip
            splits = flags.get("splits") or flags.get("split") or SPLITS[program]
            out.append((where, dataset, flags["output_dir"].rstrip("/"), splits.split(",")))
    return out


def reads():
    """(where, pattern) of every shard pattern a command, config or example reads."""
    out = []
    for where, _, _, flags in _commands():
        out += [(where, v) for k, v in flags.items() if k in READ_FLAGS and "..." not in v]
    for path in SOURCES:
        with open(path) as f:
            text = f.read()
        where = os.path.relpath(path, REPO)
        out += [(where, p) for p in BUILD_DATASET.findall(text)]
        if path.endswith(".cfg"):  # the flags the config itself sets
            for line in text.splitlines():
                name, _, value = line.strip().lstrip("-").partition("=")
                if line.startswith("--") and name in READ_FLAGS:
                    out.append((where, value))
    return out


def test_the_sources_show_commands():
    datasets = {dataset for _, dataset, _, _ in writes()}
    assert {"fashion_mnist", "mosaic segmentation", "mosaic detection", "cityscapes",
            "voc", "tfds cifar10", "tfds mnist"} <= datasets  # fmt: skip
    assert any(where == "README.md" for where, _ in reads())


def test_each_dataset_has_one_directory():
    dirs = {}
    for where, dataset, output_dir, _ in writes():
        dirs.setdefault(dataset, {}).setdefault(output_dir, []).append(where)
    several = {d: places for d, places in dirs.items() if len(places) > 1}
    assert not several, f"datasets written to more than one directory: {several}"


def test_directories_follow_the_layout():
    for where, dataset, output_dir, _ in writes():
        root = "out/data/" if dataset.split()[0] in FROM_FASHION_MNIST else "data/"
        assert output_dir.startswith(root), f"{where}: {dataset} written to {output_dir!r}"


@pytest.mark.slow
@pytest.mark.parametrize("where,pattern", reads())
def test_every_pattern_read_names_shards_a_shown_command_writes(where, pattern):
    written = {}
    for _, _, output_dir, splits in writes():
        written.setdefault(output_dir, set()).update(splits)
    directory, name = os.path.split(pattern)
    assert directory in written, (
        f"{where}: {pattern!r} reads {directory!r}, which no converter command writes "
        f"(they write {sorted(written)})"
    )
    shards = [f"{split}-00000-of-00004.tfrecord" for split in sorted(written[directory])]
    assert any(fnmatch.fnmatch(s, name) for s in shards), f"{where}: {pattern!r} vs {shards}"
