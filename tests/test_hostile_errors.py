"""Library errors name the thing and the value: a model wrapped twice, masks holding NaN
or inf, a damaged checkpoint against one of another model, and the paths a script writes."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, WeightMask


def _convnet():
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.Conv2D(4, 3, name="c2"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, name="d"),
        ],
        name="convnet",
    )


@pytest.mark.parametrize("method", ["l1_filter", "magnitude"])
def test_wrapping_a_wrapped_model_says_so(method):
    masked = tfc.wrap(_convnet(), method)
    with pytest.raises(
        ValueError,
        match=rf"Model 'convnet' is already wrapped \(with method '{method}'; \d mask layers.*"
        r"Prune it \(`tfcompress.prune`\), or strip it first",
    ):
        tfc.wrap(masked, method)
    tfc.wrap(tfc.strip(masked), method)  # the compact model wraps again


def _poison(masked, value):
    """Writes `value` into the first value of the first mask layer; returns its name."""
    layer = layers_of(masked, (ChannelMask, WeightMask))[0]
    variable = layer.mask if isinstance(layer, ChannelMask) else next(iter(layer.masks.values()))
    values = np.ones(variable.shape, np.float32)
    values.flat[1] = value
    variable.assign(values)
    return layer.name


@pytest.mark.parametrize(
    "method, value, what",
    [("l1_filter", np.nan, "mask"), ("soft_topk", np.inf, "mask"), ("magnitude", np.nan,
     "kernel mask")],
)  # fmt: skip
def test_a_mask_that_is_not_finite_is_refused(method, value, what):
    masked = tfc.wrap(_convnet(), method)
    name = _poison(masked, value)
    message = rf"Mask layer '{name}': 1 of \d+ {what} values are not finite \(NaN or inf\)"
    with pytest.raises(ValueError, match=message):
        tfc.strip(masked)
    if method != "magnitude":  # iterative channel pruning reads the masks
        with pytest.raises(ValueError, match=message):
            tfc.prune(masked, 0.5, keep_pruned=True)
