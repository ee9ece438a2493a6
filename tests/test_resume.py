"""A run stopped mid-schedule and resumed from its checkpoint ends with the same masks
as an uninterrupted run (masks, scores and temperatures are model variables; the
schedule step is the optimizer's `iterations`)."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import schedules
from tfcompress.layers import SoftTopKMask, TaylorMask

from .pruning_models import compile_model, conv_bn_net, data, mask_values

EPOCHS, BATCH = 5, 16  # 128 images: 8 steps per epoch, 40 in all


class _Stop(Exception):
    pass


class _StopAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Stop(f"stopped after epoch {epoch}")


class _CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def _pruning_callback(method):
    if method == "taylor":
        return cb.StructuredPruning(
            schedules.Iterative(0.6, begin_step=4, end_step=36, frequency=8), method="taylor",
            scope="global")
    return cb.SoftTopK(schedules.ACoSPTemperature(0.5, ending_epoch=4), min_channels=2)


def _run(method, backup_dir, stop_after=None, counter=None):
    keras.utils.set_random_seed(0)
    masked = compile_model(tfc.wrap(conv_bn_net(seed=0), method))
    callbacks = [_pruning_callback(method), keras.callbacks.BackupAndRestore(str(backup_dir))]
    if counter is not None:
        callbacks.append(counter)
    if stop_after is not None:
        callbacks.append(_StopAfterEpoch(stop_after))
    x, y = data(128)
    masked.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
               callbacks=callbacks)
    return masked


def _state(model):
    extra = {}
    for layer in model.layers:
        if isinstance(layer, TaylorMask):
            extra[layer.name + "/score"] = np.asarray(layer.score)
        if isinstance(layer, SoftTopKMask):
            extra[layer.name + "/hard"] = np.asarray(layer.hard)
    return {**mask_values(model), **extra}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["taylor", "soft_topk"])
def test_resume_mid_schedule_ends_with_the_same_masks(method, tmp_path):
    reference = _state(_run(method, tmp_path / "a"))
    with pytest.raises(_Stop):
        _run(method, tmp_path / "b", stop_after=1)  # mid-schedule: step 16 of 40
    counter = _CountBatches()
    resumed = _state(_run(method, tmp_path / "b", counter=counter))
    assert counter.batches == 3 * 8  # it resumed at epoch 2, it did not start over
    assert reference.keys() == resumed.keys()
    for name in reference:
        if name.endswith("/score"):
            np.testing.assert_allclose(resumed[name], reference[name], rtol=1e-4, atol=1e-9)
        else:
            np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    kept = [v.sum() for k, v in reference.items() if k.endswith("_mask")]
    assert sum(kept) < sum(v.size for k, v in reference.items() if k.endswith("_mask"))
