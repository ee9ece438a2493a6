"""A `deep_compress` work folder: what each finished stage left, so that a run interrupted
after a stage resumes from the last finished one (`deep_compress(workdir=...)`).

    <workdir>/stages.json    the finished stages' records (`Stage.as_dict`), in order
    <workdir>/dense.keras    the dense model pruning starts from (trained, if asked)
    <workdir>/pruned.keras   the pruned model: `WeightMask` layers, masks and weights
    <workdir>/shared.keras   the `SharedWeights` model after centroid training

Every write is atomic (`tfcompress.atomic`) and a stage's model is written before the
record that names it: a kill at any instant leaves the folder at a finished stage. A
folder belongs to one set of `deep_compress` arguments (the compress script checks its
run.json against the command); the file stage's output is the compressed file itself.
"""

import json
import os

import keras

from tfcompress.atomic import atomic_path, atomic_write_text

RECORDS = "stages.json"


class StageFolder:
    """The finished stages of one run in `path` (None: nothing is kept, nothing resumes)."""

    def __init__(self, path):
        self.path = None if path is None else os.fspath(path)

    def file(self, name):
        return os.path.join(self.path, name)

    def records(self):
        """The finished stages' records (dicts), in order; [] for a new or no folder."""
        if self.path is None or not os.path.exists(self.file(RECORDS)):
            return []
        with open(self.file(RECORDS), "rb") as f:
            raw = f.read()
        try:
            records = json.loads(raw)["stages"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"workdir={self.path!r}: {self.file(RECORDS)} is damaged (truncated or "
                "corrupted) and cannot be read. Delete it to run every stage again, or use "
                "another folder."
            ) from e
        return records

    def load(self, stage):
        """The model the finished `stage` left (uncompiled)."""
        return keras.models.load_model(self.file(f"{stage}.keras"), compile=False)

    def save(self, records, stage, model=None):
        """Writes `model` (if any) as `<stage>.keras`, then `records` (all finished)."""
        if self.path is None:
            return
        if model is not None:
            with atomic_path(self.file(f"{stage}.keras")) as tmp:
                model.save(tmp)
        text = json.dumps({"stages": records}, indent=2, sort_keys=True)
        atomic_write_text(self.file(RECORDS), text)
