"""The pruning callbacks driven from a user's own `tf.GradientTape` loop, as
docs/methods.md ("In your own training loop") shows: every method reaches its schedule's
target, and the compact model computes what the masked one does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcompress as tfc
from tfcompress import callbacks, schedules
from tfcompress.graph.trace import layers_of
from tfcompress.pruners.weights import weight_masks

from .pruning_models import conv_bn_net, data

STEPS, EPOCHS = 4, 3  # 4 batches an epoch
CALLBACKS = {
    "l1_filter": lambda: callbacks.StructuredPruning(schedules.Iterative(0.5, 4, 8, 4)),
    "taylor": lambda: callbacks.StructuredPruning(schedules.Iterative(0.5, 4, 8, 4)),
    "slimming": lambda: callbacks.StructuredPruning(schedules.OneShot(0.5, step=8)),
    "soft_topk": lambda: callbacks.SoftTopK(
        schedules.ACoSPTemperature(0.5, ending_epoch=2), min_channels=2),
    "magnitude": lambda: callbacks.MagnitudePruning(schedules.OneShot(0.75, step=8)),
}


def _train(masked, cbs, dataset):
    # --- as in docs/methods.md, "In your own training loop"
    optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    masked.compile(optimizer=optimizer)  # the callbacks read optimizer.iterations
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    cbs = keras.callbacks.CallbackList(cbs, model=masked, epochs=EPOCHS, steps=STEPS)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, masked(x, training=True))  # training=True: Taylor folds
            loss += sum(masked.losses)  # slimming's penalty, and any regularizer
        grads = tape.gradient(loss, masked.trainable_variables)
        optimizer.apply_gradients(zip(grads, masked.trainable_variables))
        return loss

    cbs.on_train_begin()
    for epoch in range(EPOCHS):
        cbs.on_epoch_begin(epoch)
        for step, (x, y) in enumerate(dataset):
            cbs.on_train_batch_begin(step)
            train_step(x, y)
            cbs.on_train_batch_end(step)
        cbs.on_epoch_end(epoch)
    cbs.on_train_end()
    # ---


@pytest.mark.parametrize("method", sorted(CALLBACKS))
def test_every_method_prunes_in_a_gradient_tape_loop(method):
    keras.utils.set_random_seed(0)
    x, y = data(64)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    options = {"penalty": 1e-3} if method == "slimming" else {}
    masked = tfc.wrap(conv_bn_net(widths=(8, 8, 8)), method, **options)
    _train(masked, [CALLBACKS[method]()], dataset)
    if method == "magnitude":
        for wm in weight_masks(masked):
            assert wm.mask_values("kernel").mean() == pytest.approx(0.25, abs=0.02)
    else:
        kept = {m.name: int(m.kept().sum()) for m in layers_of(masked, tfc.layers.ChannelMask)}
        assert sum(kept.values()) == pytest.approx(12, abs=2), kept  # half of 3 x 8
    if method == "soft_topk":
        assert all(float(m.hard) == 1.0 for m in layers_of(masked, tfc.layers.SoftTopKMask))
    compact = tfc.strip(masked)
    np.testing.assert_allclose(compact(x[:8]), masked(x[:8]), rtol=1e-4, atol=1e-5)
