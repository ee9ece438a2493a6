"""Training and evaluation inputs: what a TFRecord pattern holds, checked against the model
before anything runs, and the tf.data pipelines (deterministic, resumable by step).

`inspect` reads the shards' `manifest.json` (written by `tfrecords_tools`) and the first
record; `check` compares them with the model's task and `num_classes`, naming the flag,
the file and both values when they disagree.
"""

import dataclasses
import os
import re

from tfcompress.data import integrity, pipeline, schema

_SHARD = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.tfrecord$")


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a file pattern holds (manifest fields are None without a manifest)."""

    flag: str
    pattern: str
    files: tuple
    task: str
    image_shape: tuple
    num_classes: int | None = None
    num_examples: int | None = None
    manifest: str | None = None


def _manifest_counts(files):
    """(num_classes, num_examples, manifest path) from the shards' manifest, if any."""
    folders = {os.path.dirname(os.path.abspath(f)) for f in files}
    if len(folders) != 1:
        return None, None, None
    path, manifest = integrity.read_manifest_beside(files[0])
    if manifest is None:
        return None, None, None
    counts = {}
    for entry in manifest["splits"].values():
        counts.update(zip(entry.get("shards", []), entry.get("shard_counts", [])))
    names = [os.path.basename(f) for f in files]
    num_examples = sum(counts[n] for n in names) if all(n in counts for n in names) else None
    return manifest.get("num_classes"), num_examples, path


def inspect(pattern, flag="train_data"):
    """A `DataInfo` for `pattern`; raises naming `flag` if nothing matches or is readable."""
    try:
        files = pipeline.list_shards(pattern)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{flag}: no TFRecord file matches {pattern!r}") from e
    try:
        example = pipeline.first_example(files)
        task = schema.task_of(example.features.feature.keys())
    except ValueError as e:
        raise ValueError(f"{flag}={pattern!r}: {e}") from e
    num_classes, num_examples, manifest = _manifest_counts(files)
    return DataInfo(
        flag=flag,
        pattern=pattern,
        files=tuple(files),
        task=task,
        image_shape=pipeline.image_shape_of(example),
        num_classes=num_classes,
        num_examples=num_examples,
        manifest=manifest,
    )


def check(info, task, model_name, num_classes):
    """Raises if `info`'s records are not of `task` or list another number of classes."""
    if info.task != task:
        raise ValueError(
            f"{info.flag}={info.pattern!r} holds {info.task} records, but model "
            f"{model_name!r} is a {task} model."
        )
    if info.num_classes is not None and info.num_classes != num_classes:
        raise ValueError(
            f"num_classes={num_classes} does not match {info.flag}: its manifest "
            f"({info.manifest}) lists {info.num_classes} classes."
        )


def steps_per_epoch(info, batch_size, override=None):
    """`override`, or the examples of `info` (manifest) // `batch_size`."""
    if override is not None:
        return override
    if info.num_examples is None:
        raise ValueError(
            f"{info.flag}={info.pattern!r} has no manifest.json counting its examples, so "
            "an epoch has no length: give steps_per_epoch."
        )
    steps = info.num_examples // batch_size
    if steps < 1:
        raise ValueError(
            f"batch_size={batch_size} is larger than {info.flag} ({info.num_examples} "
            "examples): not one full batch per epoch."
        )
    return steps


def input_size(info, height=None, width=None):
    """`(height, width, channels)` of the model input: the flags, else the records'."""
    h, w, c = info.image_shape
    return (height or h, width or w, c)


def train_dataset(
    info,
    batch_size,
    size,
    seed,
    skip_batches=0,
    cache=False,
    *,
    num_classes=None,
    skip_corrupt=False,
    skipped=None,
):
    """An endless, deterministic training stream; `skip_batches` fast-forwards it to where a
    resumed run stopped (the same batches, in the same order, as an uninterrupted run);
    `cache`: decoded examples kept in memory after the first epoch.

    Every record is validated (`build_dataset`): labels against `num_classes` (the model's;
    default the manifest's). An invalid record raises naming its file and record index;
    with `skip_corrupt` it is left out and counted into `skipped` (a
    `tfcompress.data.SkippedRecords` the caller made, to report `skipped.summary()` and
    `skipped.to_json()` at the end of the run)."""
    ds = pipeline.build_dataset(
        list(info.files),
        info.task,
        batch_size,
        training=True,
        output_size=size[:2],
        channels=size[2],
        seed=seed,
        deterministic=True,
        repeat=True,
        cache=cache,
        num_classes=num_classes,
        skip_corrupt=skip_corrupt,
        skipped=skipped,
    )
    return ds.skip(skip_batches) if skip_batches else ds


def eval_dataset(info, batch_size, size, *, num_classes=None, skip_corrupt=False, skipped=None):
    """The records of `info` once, in order, unaugmented; validated and skipped as in
    `train_dataset`."""
    return pipeline.build_dataset(
        list(info.files),
        info.task,
        batch_size,
        training=False,
        output_size=size[:2],
        channels=size[2],
        num_classes=num_classes,
        skip_corrupt=skip_corrupt,
        skipped=skipped,
    )
