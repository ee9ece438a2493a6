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


class SkippedRecords:
    """What a reader with ``skip_corrupt=True`` left out: an exact count, and the first
    ``MAX_REPORTED_SKIPS`` as ``(path, record index, reason)``, each also logged as a
    warning when added. Thread-safe (``tf.data`` reports from its own threads).

        skipped = SkippedRecords()
        ds = build_dataset(..., skip_corrupt=True, skipped=skipped)
        model.fit(ds)
        print(skipped.summary())
    """

    def __init__(self, max_reported=MAX_REPORTED_SKIPS):
        self.max_reported = max_reported
        self.count = 0
        self.records = []  # [(path, index, reason)], the first max_reported
        self._lock = threading.Lock()

    def add(self, path, index, reason):
        """Counts one skipped record; keeps and logs it while under ``max_reported``."""
        with self._lock:
            self.count += 1
            if len(self.records) < self.max_reported:
                self.records.append((str(path), int(index), str(reason)))
                logging.warning("Skipped corrupt record %d of %s: %s", index, path, reason)

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
