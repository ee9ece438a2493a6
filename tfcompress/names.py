"""What an argument that names something may be (a model, a serving signature, a
criterion, a method): a non-empty string. An empty one is refused, not read as "not
given": `strip(masked, name="")` kept the original's name, saying nothing."""


def check_name(name, value, none=None):
    """Raises a ValueError naming argument `name` unless `value` is a non-empty string,
    or None when `none` says what None does (e.g. "keep the original model's name")."""
    if (none is not None and value is None) or (isinstance(value, str) and value):
        return
    alternative = "" if none is None else f", or None to {none}"
    raise ValueError(f"{name} must be a non-empty string{alternative}. Received: {name}={value!r}")
