"""How a measured model is called on each deployment runtime: `serving_call(model, shape,
runtime)` is `(fn, x)`, `fn(x)` one call of `model` on the random input `x` the way the
runtime serves it.

- "tf": a `tf.function` concrete function of `model(x, training=False)`, as a TF
  SavedModel serves it.
- "tflite": the same function with its variables frozen, converted by the TFLite
  converter (float32, as `tfcompress.export.tflite` writes it, at a fixed batch) and run
  in the LiteRT interpreter (`ai_edge_litert`), whose default CPU path is the XNNPACK
  delegate; `fn(x)` copies `x` in and invokes the interpreter. Converting a layer-sized
  model takes ~0.2 s (the SavedModel round trip of `tfcompress.export.tflite` takes
  longer and converts the same graph).

Both run on the machine key's thread count (`tfcompress.latency.machine.intra_op_threads`).
"""

import numpy as np


def check_runtime(runtime):
    """Raises naming the value unless `runtime` is one of `RUNTIMES`."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}. Received: runtime={runtime!r}")


def serving_fn(model, shape):
    """`(concrete function of model(x, training=False) at input `shape`, a random input of
    that shape)`: the call a SavedModel serves, traced as written."""
    import tensorflow as tf

    spec = tf.TensorSpec(shape, model.inputs[0].dtype if model.inputs else tf.float32)
    call = tf.function(lambda x: model(x, training=False), autograph=False)
    fn = call.get_concrete_function(spec)
    x = tf.random.uniform(shape, dtype=spec.dtype)
    return fn, x


def tflite_content(model, shape):
    """The float32 TFLite flatbuffer of `model` called on inputs of `shape` (fixed batch)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    fn, _ = serving_fn(model, shape)
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [convert_variables_to_constants_v2(fn)], model
    ).convert()


def tflite_fn(model, shape):
    """`(fn, x)`: `fn(x)` copies `x` into a LiteRT interpreter of `model` (XNNPACK, the
    machine key's threads) and runs it."""
    from ai_edge_litert.interpreter import Interpreter

    from tfcompress.latency.machine import intra_op_threads

    interp = Interpreter(model_content=tflite_content(model, shape),
                         num_threads=int(intra_op_threads()))
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    x = np.random.default_rng(0).uniform(size=shape).astype(detail["dtype"])

    def fn(x):
        interp.set_tensor(detail["index"], x)
        interp.invoke()

    fn.interpreter = interp  # kept alive with the call
    return fn, x


_CALLS = {"tf": serving_fn, "tflite": tflite_fn}
RUNTIMES = tuple(_CALLS)  # the runtimes a latency model can be measured on


def serving_call(model, shape, runtime="tf"):
    """`(fn, x)`: one call `fn(x)` of `model` on a random input of `shape` on `runtime`."""
    check_runtime(runtime)
    return _CALLS[runtime](model, shape)
