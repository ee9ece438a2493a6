"""The functions ``build_dataset`` maps over records, traced once per process and
configuration instead of once per pipeline.

Tracing them (a record's checked decode, a parser's ``parse_eval`` / ``parse_train``, a
batch of classification records with its decode routes) was most of the CPU of a
``build_dataset`` call on small records, spent again by every call in a process over other
files of the same kind.

``function(make, *args)`` stands for ``make(*args)``, a function of a dataset's elements: its
body, ``make(*args)(*element)``, is a ``tf.function`` kept per process, one per key (a few per
kind of pipeline; the ``_KEPT`` most recently used, ~5 MB each: a built pipeline holds its own
copy of the functions it calls, so dropping one only costs the next pipeline a trace):

- ``make``, a module-level function (a closure made per call would never be found again);
- ``args``: plain values (None, bool, int, float, str, ``tf.DType``, tuples of them) by type
  and value; a parser exactly of a class of ``parse.PARSERS`` by its fields; a
  ``reader.RecordCheck`` by its ``config``. Any other argument (a user's own parser, which
  may hold any state) and ``make(*args)`` is traced with every pipeline, as before;
- the exact ``TensorSpec`` of each element tensor: a ``tf.function`` would serve a batch of
  static size with a trace of unknown size, and the batch would lose its static shape.

Why a kept function is right for another pipeline: its body captures nothing of the
pipeline that traced it first. What differs between pipelines of one key, the shard paths a
failing record is named with and a ``SkipTable``'s lookup table (``RecordCheck.sink``), are
arguments of the function, passed by each pipeline's own map function (traced per pipeline,
it captures them); all else the body reads is in its key. It makes no variable, the one
thing a ``tf.distribute`` scope changes, so a function traced outside a strategy serves a
pipeline built in its scope. Pipelines built in several threads at once are safe: TensorFlow
serialises the tracing of a ``tf.function`` (the cache at worst makes one twice).
"""

import dataclasses
import functools

import tensorflow as tf

from tfcompress.data import parse, reader

_PLAIN = (type(None), bool, int, float, str, tf.dtypes.DType)
_KEPT = 64


class _Unkeyed(Exception):
    """An argument of ``function`` that has no key: it is traced per pipeline."""


def _key(value):
    """A hashable key, equal only for values that ``make`` cannot tell apart."""
    kind = type(value)
    if kind in _PLAIN:
        return kind, value
    if kind is tuple:
        return kind, tuple(_key(v) for v in value)
    if kind in parse.PARSERS.values():
        return kind, tuple(_key(getattr(value, f.name)) for f in dataclasses.fields(value))
    if kind is reader.RecordCheck:
        return kind, _key(value.config)
    raise _Unkeyed(value)


class _Keyed:
    """``value``, hashed and compared by ``key`` alone (values of equal keys are alike)."""

    def __init__(self, key, value):
        self.key, self.value = key, value

    def __eq__(self, other):
        return isinstance(other, _Keyed) and self.key == other.key

    def __hash__(self):
        return hash(self.key)


def function(make, *args):
    """``make(*args)``, a function of dataset elements, traced once per process and key (see
    the module docstring); with an argument that has no key, ``make(*args)`` itself."""
    if "<" in make.__qualname__:
        raise TypeError(f"make must be a module-level function. Received: {make.__qualname__}")
    try:
        key = _key(args)
    except _Unkeyed:
        return make(*args)
    checks = [a for a in args if type(a) is reader.RecordCheck]
    sink = checks[0].sink if checks else ()
    # Relaxed shapes: one trace serves pipelines over any number of shards.
    sink_specs = tuple(tf.TensorSpec([None] * t.shape.rank, t.dtype) for t in sink)
    static = tuple(a.with_sink(()) if type(a) is reader.RecordCheck else a for a in args)

    def call(*element):
        tensors = tf.nest.flatten(element)
        if not all(isinstance(t, tf.Tensor) for t in tensors):
            return make(*args)(*element)
        specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), element)
        keyed = _Keyed((key, repr(sink_specs), repr(specs)), (static, sink_specs, specs))
        return _traced(make, keyed)(sink, *element)

    return call


@functools.lru_cache(maxsize=_KEPT)
def _traced(make, keyed):
    """The ``tf.function`` of ``function``'s ``make`` and key."""
    static, sink_specs, specs = keyed.value

    def body(sink, *element):
        args = [a.with_sink(sink) if type(a) is reader.RecordCheck else a for a in static]
        return make(*args)(*element)

    return tf.function(body, input_signature=[sink_specs, *specs], autograph=False)
