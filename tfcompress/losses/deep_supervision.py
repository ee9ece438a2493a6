"""Compile arguments for deep supervision: one loss per output, auxiliary outputs weighted."""


def deep_supervision(loss, aux_weights):
    """`compile` kwargs for a model whose outputs are `[main, *aux]`.

    Returns `{"loss": [loss] * (1 + len(aux_weights)), "loss_weights": [1.0, *aux_weights]}`,
    e.g. `model.compile(optimizer, **deep_supervision(SegmentationCrossEntropy(),
    adapnet_pp.AUX_WEIGHTS))`; the same labels are then given for every output.
    """
    weights = [float(w) for w in aux_weights]
    if any(w < 0 for w in weights):
        raise ValueError(f"aux_weights must be >= 0. Received: aux_weights={aux_weights!r}")
    return {"loss": [loss] * (1 + len(weights)), "loss_weights": [1.0, *weights]}
