"""SavedModel export with a named serving signature whose outputs are keyed by the
model's own output names (`main_logits`, `aux_logits`, ...)."""

import json
import keyword
import os

import keras
import numpy as np
import tensorflow as tf

from tfcompress.atomic import FolderKind, atomic_path
from tfcompress.batches import describe
from tfcompress.export.fold import fold_batchnorm as fold
from tfcompress.export.graph_model import functional
from tfcompress.names import check_name
from tfcompress.numbers import check_flag

DEFAULT_SIGNATURE = "serving_default"
# Written next to the SavedModel's assets: the output names in the model's order.
OUTPUT_ORDER_FILE = os.path.join("assets.extra", "output_names.json")
# What an earlier export at the path must be to be replaced (any other non-empty folder is
# refused, never deleted: `tfcompress.atomic`).
SAVED_MODEL = FolderKind("a SavedModel", ("saved_model.pb", "saved_model.pbtxt"))


def input_name(tensor):
    """The name a signature gives a model input: its Input layer's (the same after
    `strip` and `fold_batchnorm`, which keep layer names; the tensor's own name of an
    unnamed `keras.Input` is a process-wide counter, "keras_tensor_17")."""
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else tensor.name.split(":")[0]


def clone_with(model, clone_function):
    """A copy of `model` through `keras.models.clone_model(clone_function=...)` holding the
    same weights, its inputs named as the model's (the signature's input names;
    `clone_model` would rename them)."""
    inputs = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype, name=input_name(t))
        for t in model.inputs
    ]
    copy = keras.models.clone_model(
        model, input_tensors=inputs[0] if len(inputs) == 1 else inputs,
        clone_function=clone_function)  # fmt: skip
    copy.set_weights(model.get_weights())
    return copy


def signature_key(name):
    """The key under which a signature takes the input `name` (a Keras Input's name):
    TensorFlow's own sanitizing of argument names (a character not a letter or digit
    becomes "_"; "arg_" before a name that does not start with a letter), and "_" after a
    Python keyword ("in", "lambda"), which TensorFlow refuses as a parameter name. `serve`
    takes either name."""
    key = "".join(c if c.isalnum() else "_" for c in str(name))
    key = key if key[:1].isalpha() else "arg_" + key
    return key + "_" if keyword.iskeyword(key) else key


def input_specs(model):
    """One `tf.TensorSpec` per model input, named by its `signature_key`; two inputs whose
    names give one key are refused, naming both."""
    specs, seen = [], {}
    for t in model.inputs:
        name = input_name(t)
        key = signature_key(name)
        if key in seen:
            raise ValueError(
                f"Inputs {seen[key]!r} and {name!r} of model '{model.name}' both take the "
                f"signature key {key!r} (keys are Python names: other characters become "
                "'_'): rename one of the keras.Input layers."
            )
        seen[key] = name
        specs.append(tf.TensorSpec(shape=tuple(t.shape), dtype=t.dtype, name=key))
    return specs


def output_names(model):
    """The signature's output keys: the model's output names (`model.output_names`), a
    repeated name numbered from its second use (`name_1`, ...)."""
    names, seen = [], {}
    for name in functional(model, "output_names").output_names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        names.append(name if n == 0 else f"{name}_{n}")
    return names


def saved_model(model, path, signature_name=DEFAULT_SIGNATURE, fold_batchnorm=False):
    """Writes `model` as a TF SavedModel at `path` with one serving signature.

    The signature takes the model's inputs (by their Input names) and returns its
    outputs in inference mode (BatchNorm uses moving statistics, Dropout is off), keyed
    by the model's output names (`output_names(model)`; their order is written to
    `OUTPUT_ORDER_FILE` for `serve`). With
    `fold_batchnorm=True` the BatchNorms that directly follow a Conv / Dense layer are
    folded into it first (`tfcompress.export.fold_batchnorm`; `model` is not changed).
    Returns `path`.

    `path` may be new, an empty folder or an earlier SavedModel (replaced whole, atomically:
    files added inside it go too). A folder holding anything else is refused
    (`FileExistsError` naming a few of its files), as are the working directory (`""`,
    `"."`), a folder holding it, the home folder and `/`: nothing there is touched.
    """
    check_name("signature_name", signature_name)
    check_flag("fold_batchnorm", fold_batchnorm)
    model = functional(model, "saved_model")
    model = fold(model) if fold_batchnorm else model
    specs = input_specs(model)
    names = output_names(model)

    def call(*inputs):
        # the model's own input structure (one tensor, a list, or a dict keyed by name)
        x = keras.tree.pack_sequence_as(model.input, list(inputs))
        outputs = keras.tree.flatten(model(x, training=False))
        return dict(zip(names, outputs, strict=True))

    # tracing's temporary files go in its hidden folder too
    with atomic_path(path, SAVED_MODEL) as tmp:
        write_signature(model, tmp, signature_name, call, specs)
        os.makedirs(os.path.join(tmp, os.path.dirname(OUTPUT_ORDER_FILE)), exist_ok=True)
        with open(os.path.join(tmp, OUTPUT_ORDER_FILE), "w") as f:
            json.dump(names, f)
    return path


def write_signature(model, path, signature_name, fn, specs, gradients=True):
    """Writes a SavedModel at `path` whose one signature `signature_name` is `fn` traced on
    `specs`, once; the SavedModel holds the variables `fn` reads.

    `gradients=False` leaves out the custom gradients of the ops `fn` runs (swish's in
    EfficientNet, a TaylorMask's): `tf.saved_model.save` traces one function per op that
    has one (1-2 s of CPU for an EfficientNetB0), which only differentiating the loaded
    signature needs. The TFLite converter's intermediate SavedModel is written without them.

    Keras' `ExportArchive` traces the function three times and walks every object of the
    model (for lookup tables), about half the CPU of an export; it is used only when the
    traced function captures a resource other than a variable (a StringLookup's table),
    which it knows how to track. Captured constants (a Normalization layer's mean and
    variance: EfficientNet) are written into the graph by `tf.saved_model.save`."""
    traced = tf.function(fn, autograph=False).get_concrete_function(*specs)
    resources = [c for c in traced.captured_inputs if c.dtype in (tf.resource, tf.variant)]
    if len(resources) > len(traced.variables):
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name=signature_name, fn=fn, input_signature=specs)
        archive.write_out(path, verbose=False, options=_options(gradients))
        return
    root = tf.Module()
    root.weights = list(traced.variables)
    # The gradient functions the trace records (a TaylorMask's custom gradient) capture
    # variables the forward pass does not read; the saver needs them tracked too.
    read = {id(v) for v in traced.variables}
    root.gradient_state = [v for v in model.variables if id(v) not in read]
    signatures = {signature_name: traced}
    tf.saved_model.save(root, path, signatures=signatures, options=_options(gradients))


def _options(gradients):
    return tf.saved_model.SaveOptions(experimental_custom_gradients=gradients)


def serve(path, inputs, signature_name=DEFAULT_SIGNATURE):
    """Runs a SavedModel's signature. `inputs`: one array (or a list of one) for a
    single-input model, or a dict keyed by input name (the Keras Input's, or its
    `signature_key`). Each input must fit the signature's shape (refused, naming both,
    before TensorFlow runs it). Returns the outputs as a list of numpy arrays in the
    model's output order (SavedModels not written by `saved_model`: sorted by output
    name)."""
    check_name("signature_name", signature_name)
    loaded = tf.saved_model.load(path)
    if signature_name not in loaded.signatures:
        raise KeyError(
            f"SavedModel at {path} has no signature {signature_name!r}. "
            f"Signatures: {sorted(loaded.signatures)}."
        )
    fn = loaded.signatures[signature_name]
    specs = fn.structured_input_signature[1]
    feed = {key: _checked_input(key, specs[key], x) for key, x in _by_key(specs, inputs).items()}
    out = fn(**feed)
    return [out[k].numpy() for k in _output_order(path, out)]


def _by_key(specs, inputs):
    """`inputs` keyed by the signature's input keys: a dict by Input name (or key), or one
    array (or a list of one) for a signature of one input; refused naming the keys
    otherwise."""
    keys = sorted(specs)
    if isinstance(inputs, dict):
        by_key = {}
        for name, x in inputs.items():
            key = name if name in specs else signature_key(name)
            if key not in specs:
                raise ValueError(
                    f"The signature has no input {name!r}. Its inputs: {keys}. Received: "
                    f"inputs with keys {sorted(inputs)}"
                )
            by_key[key] = x
        missing = [k for k in keys if k not in by_key]
        if missing:
            raise ValueError(
                f"The signature takes inputs {keys}; {missing} not given. Received: inputs "
                f"with keys {sorted(inputs)}"
            )
        return by_key
    if isinstance(inputs, (list, tuple)) and inputs and all(
        isinstance(x, np.ndarray) or tf.is_tensor(x) for x in inputs
    ):  # a list of input arrays, as Keras takes them (not nested lists of numbers)
        if len(inputs) != 1 or len(keys) != 1:
            raise ValueError(
                f"The signature takes inputs {keys}: pass one array for a single input, or "
                f"a dict keyed by input name. Received: inputs={describe(inputs)}"
            )
        inputs = inputs[0]
    if len(keys) != 1:
        raise ValueError(f"The signature takes inputs {keys}: pass a dict keyed by name.")
    return {keys[0]: inputs}


def _checked_input(key, spec, x):
    """`x` as a tensor of the signature input `key`'s dtype, refused (naming the input and
    both shapes) unless its shape fits the input's: TensorFlow's kernels may abort the
    process on an input of another rank (a conv given one image without its batch axis)."""
    tensor = tf.convert_to_tensor(x, dtype=spec.dtype)
    if not spec.shape.is_compatible_with(tensor.shape):
        raise ValueError(
            f"Input {key!r} of the signature takes shape {tuple(spec.shape)} (None: any "
            f"size; the first axis is the batch). Received: shape {tuple(tensor.shape)}"
        )
    return tensor


def _output_order(path, outputs):
    order_file = os.path.join(path, OUTPUT_ORDER_FILE)
    if os.path.exists(order_file):
        with open(order_file) as f:
            names = json.load(f)
        if sorted(names) == sorted(outputs):
            return names
    return sorted(outputs)
