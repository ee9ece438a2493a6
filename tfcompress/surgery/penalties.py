"""Clone hooks: per-method edits of the layer configs `wrap` clones (e.g. penalties).

A hook is `fn(graph, **options) -> edit`, with `edit(layer, config) -> config` applied to
every layer `wrap` re-creates. Options are the keyword arguments given to `wrap`.
"""

import keras

from tfcompress.numbers import is_number


def bn_gamma_l1(graph, penalty=1e-4):
    """Network slimming (Liu et al. 2017): an L1 penalty `penalty * sum|gamma|` on the
    scale of every BatchNormalization that holds prunable channels."""
    if not is_number(penalty) or penalty <= 0:
        raise ValueError(
            f"slimming needs a positive L1 penalty on BatchNorm scales. Received: "
            f"penalty={penalty!r}"
        )
    names = {
        m.layer.name
        for g in graph.prunable_groups
        for m in g.members
        if m.role == "channelwise"
        and isinstance(m.layer, keras.layers.BatchNormalization)
        and m.layer.scale
    }
    if not names:
        raise ValueError(
            f"slimming ranks channels by their BatchNorm scale, but model "
            f"'{graph.model.name}' has no BatchNormalization (with scale=True) on prunable "
            "channels. Use method='l1_filter' or 'taylor' for this model."
        )
    def edit(layer, config):
        if layer.name in names:
            regularizer = SlimmingPenalty(float(penalty), base=layer.gamma_regularizer)
            config = {**config, "gamma_regularizer": keras.regularizers.serialize(regularizer)}
        return config

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
