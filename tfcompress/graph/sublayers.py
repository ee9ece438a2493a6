"""Every layer a layer holds, at any depth: the one place that reads Keras's private
`_flatten_layers` (Keras 3 has no public walk over a layer's sublayers; `layers_of`
walks a model's graph instead). Imports nothing of tfcompress, so every module of the
graph can use it."""


def sublayers(layer):
    """Every layer `layer` holds, at any depth, not itself (Keras's `_flatten_layers`; none
    for an object that is no layer)."""
    flatten = getattr(layer, "_flatten_layers", None)
    return [] if flatten is None else list(flatten(include_self=False, recursive=True))
