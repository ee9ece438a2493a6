"""`wrap(model, copy_layers=False)`: the masked model calls the original's own layers
(no copies), computes what it computes, strips into a new compact model, and the two are
one set of weights -- what the option's docstring promises, each part asserted."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tests.parity import prune_with_parity
from tests.topologies import TOPOLOGIES, randomize_bn
from tfcompress.graph.rules import unwrap

from .pruning_models import conv_bn_net


def _x(model, n=4):
    return np.random.default_rng(0).uniform(size=(n, *model.inputs[0].shape[1:])).astype(
        "float32")


def _original_layers(model):
    return {layer.name: layer for layer in model.layers[1:]}


def test_shared_wrap_calls_the_original_layers_and_strips_to_a_copy():
    model = conv_bn_net(widths=(8, 8, 16))
    x = _x(model)
    before = [w.copy() for w in model.get_weights()]
    masked = tfc.wrap(model, copy_layers=False)
    originals = _original_layers(model)
    inner = [unwrap(layer) for layer in masked.layers if unwrap(layer).name in originals]
    assert len(inner) == len(originals)
    assert all(layer is originals[layer.name] for layer in inner)  # no copies
    np.testing.assert_allclose(masked(x), model(x), rtol=1e-6, atol=1e-6)
    tfc.prune(masked, ratio=0.5)
    for a, b in zip(before, model.get_weights(), strict=True):  # masks hold the pruning
        np.testing.assert_array_equal(a, b)
    compact = tfc.strip(masked)
    assert not any(layer is originals.get(layer.name) for layer in compact.layers)
    np.testing.assert_allclose(compact(x), masked(x), rtol=1e-5, atol=1e-5)
    assert compact.count_params() < model.count_params()


def test_shared_weights_are_one_set_training_the_masked_model_trains_the_original():
    model = conv_bn_net(widths=(8, 8, 16))
    masked = tfc.wrap(model, copy_layers=False)
    ids = {id(v) for v in masked.weights}
    assert all(id(v) in ids for v in model.weights)
    kernel = np.asarray(model.get_layer("conv1").kernel).copy()
    masked.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = _x(model, 8)
    masked.fit(x, np.ones((8, 4), "float32"), epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(kernel, np.asarray(model.get_layer("conv1").kernel))


def test_shared_magnitude_pruning_zeroes_the_original_weights():
    model = conv_bn_net(widths=(8, 8, 16))
    masked = tfc.wrap(model, "magnitude", copy_layers=False)
    tfc.prune(masked, ratio=0.5)
    kernel = np.asarray(model.get_layer("conv1").kernel)
    assert 0.4 < np.mean(kernel == 0) < 0.6


def test_copy_layers_bad_values_and_config_editing_methods_are_refused():
    model = conv_bn_net()
    with pytest.raises(ValueError, match="copy_layers must be True or False. Received: "
                                         "copy_layers='yes'"):
        tfc.wrap(model, copy_layers="yes")
    with pytest.raises(ValueError, match="Method 'slimming' edits the configs .* "
                                         "copy_layers=True. Received: copy_layers=False"):
        tfc.wrap(model, "slimming", copy_layers=False)


def test_the_original_still_folds_and_wraps_again_after_a_shared_wrap():
    model = conv_bn_net(widths=(8, 8, 16))
    x = _x(model)
    tfc.wrap(model, copy_layers=False)
    folded = tfc.export.fold_batchnorm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-5, atol=1e-5)
    again = tfc.wrap(model)  # a copy, from the original's own graph
    np.testing.assert_allclose(again(x), model(x), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_shared_wrap_parity_on_every_topology(name):
    model = randomize_bn(TOPOLOGIES[name]())
    before = [w.copy() for w in model.get_weights()]
    masked, compact, x = prune_with_parity(model, 0.5, copy_layers=False)
    assert compact.count_params() < model.count_params()
    for a, b in zip(before, model.get_weights(), strict=True):  # l1_filter writes no weight
        np.testing.assert_array_equal(a, b)
    names = [layer.name for layer in compact.layers]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda model, tmp: tfc.wrap(model, mask_kernels="False"), "mask_kernels"),
        (lambda model, tmp: tfc.wrap(model, copy_layers=0), "copy_layers"),
        (lambda model, tmp: tfc.export.saved_model(model, str(tmp / "sm"), fold_batchnorm="no"),
         "fold_batchnorm"),
    ],
)
def test_true_or_false_arguments_refuse_other_values(call, name, tmp_path):
    # `wrap(mask_kernels="False")` folded the masks into kernels, `fold_batchnorm="no"` folded
    # the BatchNorms: a string was read by its truth (`numbers.check_flag`)
    with pytest.raises(ValueError, match=rf"{name} must be True or False. Received: {name}="):
        call(conv_bn_net(), tmp_path)
    assert not (tmp_path / "sm").exists()

