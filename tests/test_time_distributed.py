"""`TimeDistributed(layer)` takes its layer's rule per step
(`tfcompress.graph.time_distributed_rules`): per-frame convs of a CNN-RNN net prune, the
compact model computes what the masked one does and saves as plain Keras; a
TimeDistributed of a layer without a rule is still refused by name."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.graph import UnknownLayerError

from .parity import max_rel_error, outputs, prune_with_parity, taylor_fit_with_parity
from .topologies import randomize_bn

L = keras.layers
TD = L.TimeDistributed


def dense_steps():
    x = keras.Input((10, 4))
    h = TD(L.Dense(16, activation="relu"), name="td_a")(x)
    h = TD(L.Dense(8), name="td_b")(h)
    return keras.Model(x, L.Dense(3)(L.Flatten()(h)))


def cnn_lstm():
    """Per-frame conv, BatchNorm, pooling and Flatten, then an LSTM over the frames."""
    x = keras.Input((4, 12, 12, 3))
    h = TD(L.Conv2D(16, 3), name="td_a")(x)
    h = TD(L.Conv2D(8, 3, activation="relu"), name="td_b")(h)
    h = TD(L.BatchNormalization(), name="td_bn")(h)
    h = TD(L.MaxPooling2D())(h)
    h = TD(L.Flatten())(h)
    return keras.Model(x, L.Dense(3)(L.LSTM(8)(h)))


def cnn_gru_pooled():
    x = keras.Input((4, 12, 12, 3))
    h = TD(L.Conv2D(16, 3), name="td_a")(x)
    h = TD(L.Conv2D(8, 3, padding="same"), name="td_b")(h)
    h = L.Add()([h, TD(L.Conv2D(8, 1), name="td_skip")(h)])  # a residual across steps
    h = TD(L.GlobalAveragePooling2D())(h)
    return keras.Model(x, L.Dense(3)(L.GRU(8)(h)))


MODELS = {f.__name__: f for f in (dense_steps, cnn_lstm, cnn_gru_pooled)}


def _width(layer):
    config = layer.layer.get_config()
    return config.get("filters", config.get("units"))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_time_distributed_layers_prune_as_their_layer(name, tmp_path):
    model = randomize_bn(MODELS[name]())
    masked, compact, x = prune_with_parity(model, 0.5, method="l1_filter")
    assert compact.count_params() < model.count_params()
    assert _width(compact.get_layer("td_a")) == _width(model.get_layer("td_a")) // 2
    path = str(tmp_path / "compact.keras")
    compact.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert max_rel_error(outputs(compact, x), outputs(loaded, x)) == 0.0


def test_taylor_scores_time_distributed_convs_in_fit():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (16, 4, 12, 12, 3)).astype("float32"), rng.integers(0, 3, 16)
    taylor_fit_with_parity(cnn_gru_pooled(), x, y, step=2)


def test_slimming_ranks_and_penalizes_a_time_distributed_batchnorm(tmp_path):
    """Network slimming sees a BatchNormalization inside a TimeDistributed as one on its
    own: its |gamma| ranks the channels, its gamma takes the L1 penalty (saved with the
    masked model), `strip` and the refine phase take the penalty off."""
    from tfcompress.surgery.penalties import SlimmingPenalty
    from tfcompress.training.methods import disable_penalties

    model = randomize_bn(cnn_lstm())
    gamma = np.array([0.1, -2.0, 0.3, 4.0, -0.05, 1.0, 0.2, 3.0], "float32")
    bn = model.get_layer("td_bn").layer
    bn.gamma.assign(gamma)
    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 12, 12, 3)).astype("float32")
    masked = tfc.wrap(model, "slimming", penalty=0.5)
    assert isinstance(masked.get_layer("td_bn").layer.gamma_regularizer, SlimmingPenalty)
    assert max_rel_error(outputs(model, x), outputs(masked, x)) <= 1e-6
    masked(x)
    assert float(sum(masked.losses)) == pytest.approx(0.5 * np.abs(gamma).sum())
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    loaded = keras.saving.load_model(path)
    loaded(x)
    assert float(sum(loaded.losses)) == pytest.approx(0.5 * np.abs(gamma).sum())
    # td_a's 16 channels have no BatchNorm: slimming leaves them out of its pool
    tfc.prune(masked, 0.5)
    compact = tfc.strip(masked)
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4
    kept = compact.get_layer("td_bn").layer
    np.testing.assert_array_equal(np.asarray(kept.gamma), gamma[[1, 3, 5, 7]])
    assert _width(compact.get_layer("td_a")) == 16
    assert kept.gamma_regularizer is None
    compact(x)
    assert float(sum(compact.losses)) == 0.0
    disable_penalties(masked)  # the scripts' refine phase
    masked(x)
    assert float(sum(masked.losses)) == 0.0


class _OwnScale(L.Layer):
    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), name="scale")

    def call(self, x):
        return x * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape


def test_a_time_distributed_layer_without_a_rule_is_refused_by_name():
    x = keras.Input((4, 8))
    h = TD(_OwnScale(), name="per_step")(TD(L.Dense(16))(x))
    model = keras.Model(x, L.Dense(3)(L.Flatten()(h)))
    with pytest.raises(UnknownLayerError, match=r"Layer 'per_step' of class "
                       r"keras.src.layers.rnn.time_distributed.TimeDistributed has no "
                       r"channel rule.*TimeDistributed is a generic Keras class"):  # fmt: skip
        tfc.wrap(model, "l1_filter")
    fix = (r"Cannot re-create layer 'per_step' \(TimeDistributed\).*Keras finds the class "
           r"'_OwnScale' by name only when registered: decorate it with "
           r"`@keras.saving.register_keras_serializable\(\)`")
    with pytest.raises(ValueError, match=fix):
        tfc.wrap(model, "l1_filter", exclude=["per_step"])  # excluded, but copied
    masked = tfc.wrap(model, "l1_filter", exclude=["per_step"], copy_layers=False)
    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 8)).astype("float32")
    assert max_rel_error(outputs(model, x), outputs(masked, x)) <= 1e-6
