"""SavedModel export with a named serving signature."""

import keras
import tensorflow as tf

from tfcompress.export.atomic import atomic_path
from tfcompress.export.fold import fold_batchnorm as fold

DEFAULT_SIGNATURE = "serving_default"


def input_specs(model):
    return [
        tf.TensorSpec(shape=tuple(t.shape), dtype=t.dtype, name=t.name.split(":")[0])
        for t in model.inputs
    ]


def saved_model(model, path, signature_name=DEFAULT_SIGNATURE, fold_batchnorm=False):
    """Writes `model` as a TF SavedModel at `path` with one serving signature.

    The signature takes the model's inputs (by their Input names) and returns its
    outputs in inference mode (BatchNorm uses moving statistics, Dropout is off). With
    `fold_batchnorm=True` the BatchNorms that directly follow a Conv / Dense layer are
    folded into it first (`tfcompress.export.fold_batchnorm`; `model` is not changed).
    Returns `path`.
    """
    if not signature_name or not isinstance(signature_name, str):
        raise ValueError(
            f"signature_name must be a non-empty string. Received: {signature_name!r}"
        )
    if fold_batchnorm:
        model = fold(model)
    specs = input_specs(model)

    def call(*inputs):
        x = inputs[0] if len(inputs) == 1 else list(inputs)
        return model(x, training=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=signature_name, fn=call, input_signature=specs)
    with atomic_path(path) as tmp:
        archive.write_out(tmp, verbose=False)
    return path


def serve(path, inputs, signature_name=DEFAULT_SIGNATURE):
    """Runs a SavedModel's signature. `inputs`: one array (single-input models) or a dict
    keyed by input name. Returns the outputs as a list of numpy arrays, sorted by name."""
    loaded = tf.saved_model.load(path)
    if signature_name not in loaded.signatures:
        raise KeyError(
            f"SavedModel at {path} has no signature {signature_name!r}. "
            f"Signatures: {sorted(loaded.signatures)}."
        )
    fn = loaded.signatures[signature_name]
    specs = fn.structured_input_signature[1]
    if not isinstance(inputs, dict):
        if len(specs) != 1:
            raise ValueError(
                f"The signature takes inputs {sorted(specs)}: pass a dict keyed by name."
            )
        inputs = {next(iter(specs)): inputs}
    feed = {n: tf.convert_to_tensor(x, dtype=specs[n].dtype) for n, x in inputs.items()}
    out = fn(**feed)
    return [out[k].numpy() for k in sorted(out)]
