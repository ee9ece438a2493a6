"""What `data` given as batches to run a model over may be, for every function that takes
it (the taylor criterion's `prune(data=...)`, `pruners.recalibrate_bn`): an iterable of
batches, or arrays as `fit` takes them, cut into batches of `BATCH_SIZE`. One reading,
one check that the batches hold a batch axis, one way to name what was received."""

import numpy as np
import tensorflow as tf

BATCH_SIZE = 32  # arrays given as `data` are cut into batches of this size, as fit does


def is_array(value):
    """True for a NumPy array or a tensor with at least one axis."""
    return (isinstance(value, np.ndarray) or tf.is_tensor(value)) and len(value.shape) >= 1


def batches(data, who, forms, inputs_alone=False):
    """`data` as an iterable of batches: a tuple of arrays with one length (fit's
    `(x, y)` or `(x, y, sample_weight)`) — and, with `inputs_alone`, one array `x` — is
    cut into batches of `BATCH_SIZE`; something not iterable is refused with a TypeError
    saying `who` (e.g. "taylor's data") must be `forms`. Anything else iterable is
    returned as it is: its batches are checked as they come (`check_batched`)."""
    if (
        isinstance(data, tuple)
        and len(data) in (2, 3)
        and all(is_array(v) for v in data)
        and len({int(v.shape[0]) for v in data}) == 1
    ):
        return tf.data.Dataset.from_tensor_slices(data).batch(BATCH_SIZE)
    if inputs_alone and is_array(data):
        return tf.data.Dataset.from_tensor_slices(data).batch(BATCH_SIZE)
    try:
        iter(data)
    except TypeError:
        raise TypeError(f"{who} must be {forms}. Received: data={describe(data)}") from None
    return data


# The forms of data that holds inputs only, or inputs first: `input_batches`.
INPUT_FORMS = (
    "an iterable of input batches or of (x, ...) tuples (e.g. a batched tf.data.Dataset, "
    "or [x] for one batch), or an array x or a tuple (x, y) of arrays as fit takes them "
    f"(cut into batches of {BATCH_SIZE})"
)


def input_batches(model, data, who):
    """The input batches of `data` (`INPUT_FORMS`: the `x` of each `(x, ...)` batch), each
    checked against the single input of `model` as it comes (`check_batched`). `data` not
    of those forms is refused now, naming `who`."""
    source = batches(data, who, INPUT_FORMS, inputs_alone=True)

    def read():
        for batch in source:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            check_batched(model, x, who, INPUT_FORMS, data)
            yield x

    return read()


def check_batched(model, x, who, forms, data):
    """Refuses the inputs `x` of one batch of `data` when they hold a single example (one
    axis fewer than the single input of `model`: an unbatched dataset, a list of images),
    or batches (one axis more: an array of batches, which is cut as examples)."""
    rank = len(model.inputs[0].shape) if len(model.inputs) == 1 else None
    if rank is not None and is_array(x) and len(x.shape) == rank + 1:
        raise ValueError(
            f"{who} must be {forms}; its batches hold batches (x of shape "
            f"{tuple(x.shape)}, model '{model.name}' takes batches of shape "
            f"{tuple(model.inputs[0].shape)}): an array is examples, cut into batches of "
            f"{BATCH_SIZE} as fit does; give batches as a list (`list(array)`) or a "
            f"dataset. Received: data={describe(data)}"
        )
    if rank is not None and is_array(x) and len(x.shape) == rank - 1:
        raise ValueError(
            f"{who} must be {forms}; its batches hold single examples (x of "
            f"shape {tuple(x.shape)}, model '{model.name}' takes batches of shape "
            f"{tuple(model.inputs[0].shape)}): batch it, e.g. `dataset.batch({BATCH_SIZE})`. "
            f"Received: data={describe(data)}"
        )


def describe(value):
    """A value's type and shape (of each element, for a tuple or list), for a message."""
    if isinstance(value, (tuple, list)):
        parts = ", ".join(describe(v) for v in value[:4])
        more = ", ..." if len(value) > 4 else ""
        return f"{type(value).__name__} of {len(value)} ({parts}{more})"
    shape = getattr(value, "shape", None)
    if shape is None:
        return type(value).__name__
    return f"{type(value).__name__} of shape {tuple(shape)}"
