"""Errors of the data package and the record of what a reader skipped."""

import threading

from absl import logging

# Skips whose message is kept (and logged); the count is always exact.
MAX_REPORTED_SKIPS = 100


class CorruptInputError(ValueError):
    """One bad example: a converter with ``skip_corrupt=True`` counts and skips it.

    The message always names the file (and the record index when reading TFRecords).
    Structural problems (a missing folder, an unknown split) raise plain errors instead:
    they are never skipped.
    """


def check_skipped(skip_corrupt, skipped):
    """Raises unless ``skipped`` (a ``SkippedRecords``) comes with ``skip_corrupt=True``:
    without it a bad record raises, nothing is skipped, and a ``skipped`` given would be
    read as an empty count."""
    if skipped is not None and not skip_corrupt:
        raise ValueError(
            "skipped counts the records skip_corrupt=True leaves out; without it a bad "
            "record raises and nothing is counted. Pass skip_corrupt=True with it, or "
            f"leave skipped out. Received: skip_corrupt={skip_corrupt!r}, skipped={skipped!r}"
        )


class SkippedRecords:
    """What a reader with ``skip_corrupt=True`` left out: an exact count, and the first
    ``MAX_REPORTED_SKIPS`` as ``(path, record index, reason)``, each also logged as a
    warning. Thread-safe. A ``build_dataset`` pipeline counts the records it skips in graph
    ops (``reader.SkipTable``, which logs them as it meets them): they are added here
    whenever this is read (``count``, ``records``, ``summary()``, ...).

        skipped = SkippedRecords()
        ds = build_dataset(..., skip_corrupt=True, skipped=skipped)
        model.fit(ds)
        print(skipped.summary())
    """

    def __init__(self, max_reported=MAX_REPORTED_SKIPS):
        self.max_reported = max_reported
        self._count = 0
        self._records = []  # [(path, index, reason)], the first max_reported
        self._sources = []  # drain() of each attached reader.SkipTable
        self._lock = threading.RLock()

    def add(self, path, index, reason, log=True):
        """Counts one skipped record; keeps it while under ``max_reported``, and logs it
        then (``log``: not yet logged where it was met)."""
        with self._lock:
            self._count += 1
            if len(self._records) < self.max_reported:
                self._records.append((str(path), int(index), str(reason)))
                if log:
                    logging.warning("Skipped corrupt record %d of %s: %s", index, path, reason)

    def attach(self, drain):
        """``drain()``, which adds the records counted elsewhere since its last call, is called
        before each read."""
        with self._lock:
            self._sources.append(drain)

    def _drain(self):
        with self._lock:
            for drain in self._sources:
                drain()

    @property
    def count(self):
        """How many records were skipped."""
        self._drain()
        return self._count

    @property
    def records(self):
        """The first ``max_reported`` skipped records, as ``(path, record index, reason)``."""
        self._drain()
        return list(self._records)

    def __len__(self):
        return self.count

    def messages(self):
        return [f"{path}: record {index}: {reason}" for path, index, reason in self.records]

    def summary(self):
        """One line: how many records were skipped and the first of them."""
        if not self.count:
            return "skipped 0 corrupt records"
        more = self.count - len(self.records)
        tail = f" (and {more} more not listed)" if more else ""
        return f"skipped {self.count} corrupt records{tail}; first: {self.messages()[0]}"

    def to_json(self):
        """``{"num_skipped": n, "skipped": [message, ...]}`` for a run's result file."""
        return {"num_skipped": self.count, "skipped": self.messages()}
