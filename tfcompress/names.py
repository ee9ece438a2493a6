"""What an argument that names something may be (a model, a serving signature, a
criterion, a method): a non-empty string. An empty one is refused, not read as "not
given": `strip(masked, name="")` kept the original's name, saying nothing."""


def check_name(name, value, none=None, keras=False):
    """Raises a ValueError naming argument `name` unless `value` is a non-empty string,
    or None when `none` says what None does (e.g. "keep the original model's name").

    `keras=True`: the name of a Keras model or layer, which Keras refuses to hold a "/"
    (checked here, before any work is done)."""
    if none is not None and value is None:
        return
    if isinstance(value, str) and value:
        if keras and "/" in value:
            raise ValueError(
                f"{name} may not contain '/' (Keras refuses it in a model or layer name). "
                f"Received: {name}={value!r}"
            )
        return
    alternative = "" if none is None else f", or None to {none}"
    raise ValueError(f"{name} must be a non-empty string{alternative}. Received: {name}={value!r}")
