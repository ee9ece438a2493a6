"""Clone hooks: per-method edits of the layer configs `wrap` clones (e.g. penalties).

A hook is `fn(graph, **options) -> edit`, with `edit(layer, config) -> config` applied to
every layer `wrap` re-creates. Options are the keyword arguments given to `wrap`.
"""

import keras

from tfcompress.importance.bn_scale import scaled_batchnorm, scaled_batchnorms
from tfcompress.numbers import is_number


def bn_gamma_l1(graph, penalty=1e-4):
    """Network slimming (Liu et al. 2017): an L1 penalty `penalty * sum|gamma|` on the
    scale of every BatchNormalization that holds prunable channels (one inside a
    TimeDistributed too)."""
    if not is_number(penalty) or penalty <= 0:
        raise ValueError(
            f"slimming needs a positive L1 penalty on BatchNorm scales. Received: "
            f"penalty={penalty!r}"
        )
    names = scaled_batchnorms(graph)  # raises for a model without them

    def edit(layer, config):
        if layer.name not in names:
            return config
        base = scaled_batchnorm(layer).gamma_regularizer
        return _with_gamma_regularizer(layer, config, SlimmingPenalty(float(penalty), base))

    return edit


@keras.saving.register_keras_serializable(package="tfcompress")
class SlimmingPenalty(keras.regularizers.Regularizer):
    """Network slimming's `l1 * sum|gamma|`, added to the BatchNorm's own gamma
    regularizer (`base`, kept: `wrap` adds the penalty, it does not replace the user's).
    `strip` gives the compact model `base` again: the penalty is a training-time device
    (the seed refines the pruned network without it)."""

    def __init__(self, l1, base=None):
        if not is_number(l1) or l1 <= 0:
            raise ValueError(f"l1 must be a positive number. Received: l1={l1!r}")
        self.l1 = float(l1)
        self.base = keras.regularizers.get(base)

    def __call__(self, x):
        loss = self.l1 * keras.ops.sum(keras.ops.abs(x))
        return loss if self.base is None else loss + self.base(x)

    def get_config(self):
        base = None if self.base is None else keras.regularizers.serialize(self.base)
        return {"l1": self.l1, "base": base}


def without_penalty(regularizer):
    """`regularizer` with a `SlimmingPenalty` taken off (its base), else itself."""
    return regularizer.base if isinstance(regularizer, SlimmingPenalty) else regularizer


def config_without_penalty(layer, config):
    """`config` (`layer`'s, or one edited from it) with the gamma regularizer of `layer`'s
    BatchNorm (`scaled_batchnorm`) back to the user's own when slimming's penalty is on
    it; else `config` as it is. What `strip` gives the compact model."""
    bn = scaled_batchnorm(layer)
    if bn is None or not isinstance(bn.gamma_regularizer, SlimmingPenalty):
        return config
    return _with_gamma_regularizer(layer, config, bn.gamma_regularizer.base)


def _with_gamma_regularizer(layer, config, regularizer):
    """`config` of `layer` (a BatchNormalization, or a TimeDistributed of one: the
    regularizer goes into the config of the layer it wraps) with `regularizer` on gamma."""
    value = None if regularizer is None else keras.regularizers.serialize(regularizer)
    if isinstance(layer, keras.layers.TimeDistributed):
        inner = dict(config["layer"])
        inner["config"] = {**inner["config"], "gamma_regularizer": value}
        return {**config, "layer": inner}
    return {**config, "gamma_regularizer": value}
