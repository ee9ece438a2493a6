"""A `deep_compress` work folder: what each finished stage left, so that a run interrupted
after a stage resumes from the last finished one (`deep_compress(workdir=...)`).

    <workdir>/stages.json    the finished stages' records (`Stage.as_dict`), in order, and
                             the settings that made them (`check_settings`)
    <workdir>/dense.keras    the dense model pruning starts from (trained, if asked)
    <workdir>/pruned.keras   the pruned model: `WeightMask` layers, masks and weights
    <workdir>/shared.keras   the `SharedWeights` model after centroid training

Every write is atomic (`tfcompress.atomic`) and a stage's model is written before the
record that names it: a kill at any instant leaves the folder at a finished stage. A
folder belongs to one set of `deep_compress` arguments: a call with other ones is refused
(`check_settings`) rather than served stages made for different densities or bits. The
file stage's output is the compressed file itself: a resume trusts it only once
`check_file` read it whole (every part's CRC32C) and found it to be the file the run
wrote (the SHA-256 its record keeps, `Stage.file_sha256`): a valid file of another run
or stage copied over it is not this run's result.
"""

import hashlib
import json
import os

import keras
import numpy as np

from tfcompress.atomic import atomic_path, atomic_write_text

RECORDS = "stages.json"


class StageFolder:
    """The finished stages of one run in `path` (None: nothing is kept, nothing resumes)."""

    def __init__(self, path):
        self.path = None if path is None else os.fspath(path)

    def file(self, name):
        return os.path.join(self.path, name)

    def _read(self):
        if self.path is None or not os.path.exists(self.file(RECORDS)):
            return {"stages": []}
        with open(self.file(RECORDS), "rb") as f:
            raw = f.read()
        try:
            content = json.loads(raw)
            if not isinstance(content["stages"], list):
                raise TypeError("stages is not a list")
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"workdir={self.path!r}: {self.file(RECORDS)} is damaged (truncated or "
                "corrupted) and cannot be read. Delete it to run every stage again, or use "
                "another folder."
            ) from e
        return content

    def records(self):
        """The finished stages' records (dicts), in order; [] for a new or no folder."""
        return self._read()["stages"]

    def check_settings(self, settings):
        """Raises naming each setting that differs unless the finished stages here were
        made with `settings` (a JSON-able dict of the arguments that shape them). A new
        folder, one with no finished stage, or one written before settings were kept
        passes; a setting kept by only one side (a folder written before it was kept, as
        `weights_sha256`) is not compared."""
        content = self._read()
        kept = content.get("settings")
        if not content["stages"] or kept is None:
            return
        now = json.loads(json.dumps(settings))  # as read back (tuples -> lists, ...)
        differ = sorted(k for k in set(kept) & set(now) if kept[k] != now[k])
        if differ:
            details = "; ".join(f"{k}: {kept.get(k)!r} there, {now.get(k)!r} now" for k in differ)
            raise ValueError(
                f"workdir={self.path!r} holds the stages of a deep_compress run with other "
                f"arguments ({details}). Resuming would serve stages made for those: use "
                "another folder, or delete this one to run every stage again."
            )

    def load(self, stage):
        """The model the finished `stage` left (uncompiled)."""
        return keras.models.load_model(self.file(f"{stage}.keras"), compile=False)

    def save(self, records, stage, model=None, settings=None):
        """Writes `model` (if any) as `<stage>.keras`, then `records` (all finished) and
        the `settings` they were made with."""
        if self.path is None:
            return
        if model is not None:
            with atomic_path(self.file(f"{stage}.keras")) as tmp:
                model.save(tmp)
        content = {"stages": records} if settings is None else {
            "stages": records, "settings": settings}
        text = json.dumps(content, indent=2, sort_keys=True)
        atomic_write_text(self.file(RECORDS), text)


def file_sha256(path):
    """The SHA-256 (hex) of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(model):
    """The SHA-256 (hex) of `model`'s weights, in order: each one's dtype, shape and bytes.
    A resume compares the one of the model it is given with the one its settings keep
    (`deep_compress`'s `weights_sha256`): another model, or the same one trained further,
    is not the model the kept stages started from."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight))
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def check_file(path, records=()):
    """`(report, problem)` of the compressed file a finished run left at `path`: its
    `codec.Report` and None when it reads whole (`codec.report` checks every part's CRC32C,
    as `decode` does) and is the file the run wrote, else None and why it must be written
    again, a sentence: "<path> is missing.", the `CodecFileError`'s message naming the
    file and the damaged part, or "<path> is not the file this run wrote ..." when its
    SHA-256 differs from the one the file stage's record among `records` (the finished
    stages' records) keeps. A record without one (written before they were kept) is
    compared by nothing but the CRCs."""
    from tfcompress import codec  # codec imports sharing: imported on use

    path = os.fspath(path)
    if not os.path.exists(path):
        return None, f"{path} is missing."
    try:
        report = codec.report(path)
    except codec.CodecFileError as e:
        return None, str(e)
    written = next((r.get("file_sha256") for r in records if r.get("name") == "file"), None)
    if written is not None:
        found = file_sha256(path)
        if found != written:
            return None, (
                f"{path} is not the file this run wrote: it reads whole, but its SHA-256 is "
                f"{found}, not the {written} of the file stage's record (a file of another "
                "run or stage copied over it?)."
            )
    return report, None
