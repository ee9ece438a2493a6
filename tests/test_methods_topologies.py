"""The data-driven methods on coupled topologies (residual sums, concatenations read
through channel maps, Flatten -> Dense): pruned inside fit, stripped exactly."""

import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.pruners import mask_stats

from .parity import max_rel_error, outputs
from .pruning_models import compile_model
from .topologies import TOPOLOGIES, randomize_bn

CALLBACKS = {
    "taylor": lambda: cb.StructuredPruning(
        schedules.Iterative(0.5, begin_step=2, end_step=6, frequency=2), method="taylor",
        scope="global"),
    "soft_topk": lambda: cb.SoftTopK(  # tiny layers: ACoSP's 8 would keep them whole
        schedules.ACoSPTemperature(0.5, ending_epoch=1), min_channels=1),
    "slimming": lambda: cb.StructuredPruning(schedules.OneShot(0.5, step=4), method="slimming",
                                             scope="global"),
}


CASES = [
    ("resnet_add", "taylor"),
    ("inception_concat", "taylor"),
    ("flatten_dense", "taylor"),
    ("inception_concat", "soft_topk"),
    ("resnet_add", "slimming"),
]


@pytest.mark.slow
@pytest.mark.parametrize("topology, method", CASES)
def test_method_on_topology(topology, method):
    model = randomize_bn(TOPOLOGIES[topology]())
    shape = (32, *model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, shape).astype("float32")
    y = rng.integers(0, 10, 32)
    options = {"penalty": 1e-3} if method == "slimming" else {}
    masked = compile_model(tfc.wrap(model, method, **options))
    masked.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[CALLBACKS[method]()])
    assert mask_stats(masked)["channel_sparsity"] > 0.1
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x[:8]), outputs(compact, x[:8])) <= 1e-4
    assert compact.count_params() < model.count_params()
