"""Argument checks shared by every model builder (validated before any layer is built)."""

import math
import numbers


def check_num_classes(num_classes):
    """`num_classes` must be an int >= 1."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise ValueError(
            f"num_classes must be an integer >= 1. Received: num_classes={num_classes!r}"
        )
    if num_classes < 1:
        raise ValueError(
            f"num_classes must be an integer >= 1. Received: num_classes={num_classes}"
        )


def check_width(width):
    """`width` (the channel multiplier) must be a finite number > 0."""
    ok = isinstance(width, numbers.Real) and not isinstance(width, bool)
    if not ok or not math.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a finite number > 0. Received: width={width!r}")


def check_input_shape(input_shape, stride=1, min_size=1, reason="the model's stride"):
    """`input_shape` is (H, W, C) with static positive ints; H and W divisible by `stride`.

    `reason` names where the stride comes from in the error message. Returns the shape as a
    tuple of ints.
    """
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape)
    ):
        raise ValueError(
            "input_shape must be (height, width, channels) with static positive integers "
            f"(channels_last). Received: input_shape={input_shape!r}"
        )
    height, width = shape[0], shape[1]
    if height % stride or width % stride:
        raise ValueError(
            f"input_shape height and width must be divisible by {stride} ({reason}). "
            f"Received: input_shape={input_shape!r}"
        )
    if height < min_size or width < min_size:
        raise ValueError(
            f"input_shape height and width must be at least {min_size}. "
            f"Received: input_shape={input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def check_choice(name, value, choices):
    """`value` must be one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}. Received: {name}={value!r}")


def check_common(
    num_classes, input_shape, width, stride=1, min_size=1, reason="the model's stride"
):
    """Runs the three checks every builder needs; returns the input shape as a tuple."""
    check_num_classes(num_classes)
    check_width(width)
    return check_input_shape(input_shape, stride=stride, min_size=min_size, reason=reason)


def scaled(channels, width):
    """Channel count `channels * width`, rounded, never below 1."""
    return max(1, int(round(channels * width)))
