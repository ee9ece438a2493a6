"""What an argument that must be a number or an integer may be: a Python or NumPy scalar
(a ratio from `np.linspace`, a step from `np.int64`), never a bool. `plain` gives the
Python value to keep, so configs stay JSON."""

import math
import numbers

import numpy as np


def is_number(value, finite=True):
    """True for an int or float of Python or NumPy (finite unless `finite=False`)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    return not finite or math.isfinite(value)


def is_int(value):
    """True for an int of Python or NumPy (not a bool, not a float such as 3.0)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_int(name, value, minimum=None, none=False):
    """Raises a ValueError naming argument `name` unless `value` is an integer of Python
    or NumPy (`is_int`: not a bool) >= `minimum` (None: any), or None if `none`. The one
    check of an integer argument: an `np.int64` from an array is taken as an int is."""
    if (none and value is None) or (is_int(value) and (minimum is None or value >= minimum)):
        return
    bound = "" if minimum is None else f" >= {minimum}"
    raise ValueError(
        f"{name} must be an integer{bound}{' or None' if none else ''}. Received: "
        f"{name}={value!r}")


def check_count(name, value, none=False):
    """Raises a ValueError naming argument `name` unless `value` is an integer >= 1 (or
    None, if `none`): a batch size, a repeat count, a channel multiple."""
    check_int(name, value, minimum=1, none=none)


def check_positive(name, value):
    """Raises a ValueError naming argument `name` unless `value` is a finite number > 0
    (a tolerance, a penalty): 0, a negative, inf or nan would never end or never count."""
    if is_number(value) and value > 0:
        return
    raise ValueError(f"{name} must be a finite number > 0. Received: {name}={value!r}")


def check_ratio(name, value):
    """Raises a ValueError naming argument `name` unless `value` is a number in [0, 1):
    the share of channels or weights to remove (1 would remove them all)."""
    if is_number(value) and 0 <= value < 1:
        return
    raise ValueError(f"{name} must be a number in [0, 1). Received: {name}={value!r}")


def check_flag(name, value):
    """Raises a ValueError naming argument `name` unless `value` is True or False (a NumPy
    bool too): a string "False" or "no", a 0 or a None would be read by its truth."""
    if isinstance(value, (bool, np.bool_)):
        return
    raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")


def plain(value):
    """`value` (a number) as a Python int or float; anything else unchanged."""
    if is_int(value):
        return int(value)
    if is_number(value, finite=False):
        return float(value)
    return value
