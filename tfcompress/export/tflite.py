"""TFLite export (float, dynamic-range, full int8), each file run once in LiteRT.

The file's batch dimension is dynamic (`shape_signature` -1), whatever batch the model's
Input declares: LiteRT allocates batch 1 by default, and `resize_tensor_input(index,
(n, ...))` or a signature runner run any batch.

A mixed-precision model (layers computing in float16 / bfloat16, whose weights are float32)
is converted as a float32 copy: TFLite has no float16 convolution kernels (the converter
stops at `tf.Conv2D` on f16 tensors); `quantization="dynamic"` / `"int8"` shrink the file."""

import dataclasses
import os
import re
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfcompress.atomic import atomic_path
from tfcompress.batches import describe, input_batches
from tfcompress.export.graph_model import functional
from tfcompress.export.saved_model import (
    DEFAULT_SIGNATURE,
    SAVED_MODEL,
    clone_with,
    input_specs,
    output_names,
    write_signature,
)
from tfcompress.export.unroll import unrolled_copy
from tfcompress.graph.trace import layers_of
from tfcompress.messages import first_line

QUANTIZATIONS = (None, "dynamic", "int8")


@dataclasses.dataclass
class TFLiteCheck:
    """What running the exported file in the LiteRT interpreter gave."""

    path: str
    size_bytes: int
    max_abs_error: float  # vs the Keras model on the check batch (dequantized for int8)
    output_shapes: list
    # max_abs_error / the largest |Keras output| (outputs of 1e13 from barely trained
    # BatchNorm statistics make any absolute error look large)
    max_rel_error: float = float("nan")


def _batch_free_saved_model(model, path):
    """The converter's input: `model` as a SavedModel whose serving signature takes a `None`
    batch (a model built with `keras.Input(..., batch_size=1)` would give a file fixed at
    batch 1), outputs keyed by `output_names(model)` as `saved_model` keys them."""
    specs = [tf.TensorSpec((None, *s.shape[1:]), s.dtype, s.name) for s in input_specs(model)]
    names = output_names(model)

    def call(*inputs):
        x = inputs[0] if len(inputs) == 1 else list(inputs)
        outputs = keras.tree.flatten(model(x, training=False))
        return dict(zip(names, outputs, strict=True))

    with atomic_path(path, SAVED_MODEL) as tmp:  # as `saved_model` writes (same fault points)
        # read by the converter only: no gradients (`write_signature`)
        write_signature(model, tmp, DEFAULT_SIGNATURE, call, specs, gradients=False)
    return path


def _converter(model, quantization, representative_data, workdir):
    sm = _batch_free_saved_model(model, os.path.join(workdir, "sm"))
    conv = tf.lite.TFLiteConverter.from_saved_model(sm, signature_keys=[DEFAULT_SIGNATURE])
    if quantization == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if representative_data is None:
            raise ValueError(
                "Full int8 quantization needs representative_data: a few input batches "
                "(an iterable of arrays) to calibrate activation ranges."
            )
        samples = [np.asarray(x, np.float32) for x in representative_data]

        def gen():
            for x in samples:
                for i in range(x.shape[0]):
                    yield [x[i : i + 1]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = gen
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv


def _unconvertible(model, report, quantization):
    """The short reason the TFLite converter gave in its multi-kilobyte `report` (MLIR
    dump): the TF ops TFLite's builtins cannot run, each with the TF name scope it sits in
    (which holds its Keras layer's name), or the report's first error line."""
    kind = f"the {quantization or 'float32'} TFLite model of '{model.name}'"
    select = re.search(r"TF Select ops: ([^\n]+)", report)
    ops = [o.strip() for o in select.group(1).split(",")] if select else list(dict.fromkeys(
        re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", report)))
    if ops:
        scopes = dict(re.findall(r'fused\["(\w+):", "([^"@]+)@', report)[::-1])
        named = [f"tf.{o} (at {scopes[o]})" if o in scopes else f"tf.{o}" for o in ops]
        return (
            f"Cannot convert {kind}: TFLite's builtin ops cannot run {', '.join(named)}, "
            "made by a layer TFLite has no kernel for (e.g. a dilated Conv2DTranspose or "
            "Conv3D, MaxPooling3D)"
        )
    errors = re.findall(r"error: ([^\n]+)", report)
    reason = errors[0].strip() if errors else first_line(report, 300)
    return f"Cannot convert {kind}: {reason[:300]}"


def run_tflite(path_or_bytes, x, model=None):
    """Runs a single-input TFLite model on float batch `x`; returns float outputs.

    The outputs come in the order of `model`'s outputs when given the Keras model the file
    was converted from (a `tflite` file keys them by its output names, as `saved_model`
    does); else sorted by signature output name (the file keeps no order of its own), or
    by tensor name for a file without a signature. A file with a dynamic batch runs `x`
    in one invoke; one whose batch is fixed (not written by `tflite`) runs it in slices of
    that batch."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(path_or_bytes, (bytes, bytearray)):
        interp = Interpreter(model_content=bytes(path_or_bytes))
    else:
        interp = Interpreter(model_path=str(path_or_bytes))
    inp = interp.get_input_details()[0]
    x = np.asarray(x, np.float32)
    wanted = [int(d) for d in inp["shape_signature"]]  # -1: any size
    if x.ndim != len(wanted) or any(w not in (-1, d) for w, d in zip(wanted[1:], x.shape[1:])):
        shape = tuple(None if w < 0 else w for w in wanted)
        raise ValueError(
            f"The file's input takes batches of shape {shape} (None: any size). Received: x "
            f"of shape {x.shape}"
        )
    fixed = wanted[0] if wanted else -1
    step = x.shape[0] if fixed < 1 else fixed
    if step < 1 or x.shape[0] % step:
        raise ValueError(
            f"run_tflite needs a batch of at least one sample, a multiple of the file's fixed "
            f"batch ({fixed}) if it has one. Received: x.shape={x.shape}"
        )
    interp.resize_tensor_input(inp["index"], (step, *x.shape[1:]))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    scale, zero = inp["quantization"]
    outs = []
    for i in range(0, x.shape[0], step):
        sample = x[i : i + step]
        if inp["dtype"] in (np.int8, np.uint8) and scale:
            # saturated, as TFLite's own quantize op does (a cast would wrap 385 to -127)
            limits = np.iinfo(inp["dtype"])
            sample = np.clip(np.round(sample / scale + zero), limits.min, limits.max)
        interp.set_tensor(inp["index"], sample.astype(inp["dtype"]))
        interp.invoke()
        res = []
        for det in _output_details(interp, None if model is None else output_names(model)):
            y = interp.get_tensor(det["index"])
            s, z = det["quantization"]
            if det["dtype"] in (np.int8, np.uint8) and s:
                y = (y.astype(np.float32) - z) * s
            res.append(y)
        outs.append(res)
    return [np.concatenate([o[j] for o in outs]) for j in range(len(outs[0]))]


def _output_details(interp, names=None):
    """The output tensors' details in the order of signature output `names`, else sorted
    by signature output name (else tensor name)."""
    signatures = interp.get_signature_list()
    if len(signatures) == 1:
        by_name = interp.get_signature_runner(next(iter(signatures))).get_output_details()
        if names is not None:
            missing = [n for n in names if n not in by_name]
            if missing or len(names) != len(by_name):
                raise ValueError(
                    f"The TFLite file's outputs are {sorted(by_name)}, not the model's "
                    f"{list(names)}: give run_tflite the model the file was converted from"
                )
            return [by_name[name] for name in names]
        return [by_name[name] for name in sorted(by_name)]
    if names is not None:
        raise ValueError(
            "This TFLite file has no single signature naming its outputs, so they cannot "
            "be put in the model's order: call run_tflite without the model"
        )
    return sorted(interp.get_output_details(), key=lambda d: d["name"])


def float32_copy(model):
    """`model` itself when every layer computes in float32, else a copy of it (the same
    weights) whose layers all compute in float32."""
    computing = [layer for layer in layers_of(model)  # (Input layers compute nothing)
                 if not isinstance(layer, keras.layers.InputLayer)]
    if all(_compute_dtype(layer) == "float32" for layer in computing):
        return model

    def as_float32(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.Layer):  # (a keras.ops operation has no dtype)
            config = {**config, "dtype": "float32"}
        return type(layer).from_config(config)

    return clone_with(model, as_float32)


def _compute_dtype(layer):
    policy = getattr(layer, "dtype_policy", None)
    return "float32" if policy is None else policy.compute_dtype


def tflite(model, path, quantization=None, representative_data=None, check_data=None):
    """Converts `model` to a TFLite file at `path` and runs it once in LiteRT.

    Args:
        quantization: None (float32), "dynamic" (int8 weights) or "int8" (full integer,
            int8 input/output; needs `representative_data`).
        representative_data: int8 calibration data, as `recalibrate_bn` reads it
            (`tfcompress.batches.INPUT_FORMS`: input batches, `(x, ...)` batches, or an
            array cut into batches); refused with another quantization, which would not
            use it.
        check_data: a float input batch to run; default: the first representative batch
            (int8) or zeros (needed when the input has unknown sizes besides the batch).
            Single-input models only.

    A mixed-precision model is converted (and checked) as its `float32_copy`, one with
    recurrent layers as its `unroll.unrolled_copy` (they need a known sequence length).

    Returns:
        `TFLiteCheck` with the file size and the error against the Keras model.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"Unknown quantization. Received: quantization={quantization!r}; "
            f"expected one of {QUANTIZATIONS}."
        )
    if representative_data is not None and quantization != "int8":
        raise ValueError(
            "representative_data calibrates the activation ranges of quantization='int8' "
            f"only; quantization={quantization!r} does not use it: leave it out (give "
            "check_data for the batch the file is run on). Received: "
            f"quantization={quantization!r}, representative_data={describe(representative_data)}"
        )
    model = functional(model, "tflite")
    if len(model.inputs) != 1:
        raise ValueError(
            f"tflite export supports single-input models; '{model.name}' has "
            f"{len(model.inputs)} inputs."
        )
    # (mixed precision: its float32 copy; recurrent layers: unrolled)
    model = unrolled_copy(float32_copy(model))
    if representative_data is not None:  # read once: a generator is used up by the converter
        who = "tflite's representative_data"
        representative_data = [
            np.asarray(x, np.float32) for x in input_batches(model, representative_data, who)
        ]
        if not representative_data:
            raise ValueError(f"{who} holds no batch: give a few input batches to calibrate on.")
    # everything, the intermediate SavedModel and the converter's temporary files included,
    # is written in the hidden folder beside `path`, which goes away however this ends
    with atomic_path(path) as tmp:
        # a temporary folder (in the hidden one: `atomic_path`), whatever `path`'s name
        conv = _converter(model, quantization, representative_data, tempfile.mkdtemp())
        try:
            content = conv.convert()
        except Exception as e:  # noqa: BLE001 - the converter's ConverterError, re-raised short
            if type(e).__name__ != "ConverterError":
                raise
            raise ValueError(
                f"{_unconvertible(model, str(e), quantization)}; {path} was not written "
                "(the converter's full report is the error this one was raised from)."
            ) from e
        if check_data is None:
            if representative_data is not None:
                check_data = np.asarray(next(iter(representative_data)), np.float32)
            elif None in model.inputs[0].shape[1:]:
                raise ValueError(
                    f"The input of '{model.name}' has unknown sizes "
                    f"{tuple(model.inputs[0].shape)}: give check_data (a batch of the size "
                    "the file will run at) to run the converted file once.")
            else:
                shape = [1 if d is None else d for d in model.inputs[0].shape]
                check_data = np.zeros(shape, np.float32)
        check_data = np.asarray(check_data, np.float32)
        try:
            lite_out = run_tflite(content, check_data, model)
        except RuntimeError as e:  # LiteRT's (e.g. "failed to create XNNPACK runtime")
            hint = (" Full-integer quantization needs moderate, finite activation ranges on "
                    "the representative data; a model that diverged in training has none."
                    if quantization == "int8" else "")
            raise ValueError(
                f"The {quantization or 'float32'} TFLite model of '{model.name}' converted but "
                f"does not run in LiteRT ({first_line(e)}); {path} was not written."
                f"{hint}") from e
        keras_out = model(check_data, training=False)
        keras_out = [np.asarray(y) for y in keras.tree.flatten(keras_out)]
        err = max(float(np.max(np.abs(a - b))) for a, b in zip(keras_out, lite_out, strict=True))
        scale = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in keras_out)
        rel = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
        with open(tmp, "wb") as f:
            f.write(content)
    return TFLiteCheck(
        path=str(path),
        size_bytes=len(content),
        max_abs_error=err,
        output_shapes=[list(y.shape) for y in lite_out],
        max_rel_error=rel,
    )
