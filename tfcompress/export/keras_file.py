"""`.keras` export."""

from tfcompress.atomic import atomic_path


def keras_file(model, path):
    """Saves `model` in the Keras 3 `.keras` format at `path` (atomically)."""
    if not str(path).endswith(".keras"):
        raise ValueError(f"A Keras model file must end in '.keras'. Received: path={path!r}")
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path
