"""Errors of the data package."""


class CorruptInputError(ValueError):
    """One bad example: a converter with ``skip_corrupt=True`` counts and skips it.

    The message always names the file (and the record index when reading TFRecords).
    Structural problems (a missing folder, an unknown split) raise plain errors instead:
    they are never skipped.
    """
