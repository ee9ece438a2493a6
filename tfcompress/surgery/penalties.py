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
    regularizer = keras.regularizers.L1(float(penalty))

    def edit(layer, config):
        if layer.name in names:
            config = {**config, "gamma_regularizer": keras.regularizers.serialize(regularizer)}
        return config

    return edit
