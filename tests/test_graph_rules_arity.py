"""A rule must couple every input and output of the layers it is given: one that cannot is
refused (when registered if the class's arity is knowable, else when the graph meets the
call), and the unknown-layer error suggests a rule that fits the layer."""

import keras
import pytest
from keras import layers, ops

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input
from tfcompress.graph import UnknownLayerError, find_rule, register_rule, registered_rule
from tfcompress.graph.rules import Channelwise, Merge, RuleArityError


class WeightedSum(layers.Layer):
    """Called on a list: its arity is not knowable from the class."""

    def build(self, *shapes):  # a weight of its own: the graph does not see through it
        self.one = self.add_weight(shape=(), initializer="ones", trainable=False, name="one")

    def call(self, inputs):
        a, b = inputs
        return a + 0.5 * self.one * b


class PairSum(layers.Layer):
    """Two required positional tensors: knowably multi-input."""

    def call(self, a, b):
        return a + b


class Halves(layers.Layer):
    """One input, two outputs."""

    def build(self, *shapes):  # a weight of its own: the graph does not see through it
        self.one = self.add_weight(shape=(), initializer="ones", trainable=False, name="one")

    def call(self, x):
        return [x, 2.0 * self.one * x]


class Doubler(layers.Layer):
    def build(self, *shapes):  # a weight of its own: the graph does not see through it
        self.one = self.add_weight(shape=(), initializer="ones", trainable=False, name="one")

    def call(self, x):
        return 2.0 * self.one * x


def _two_branches(layer):
    inp = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 3, padding="same", name="conv_a")(inp)
    b = layers.Conv2D(8, 3, padding="same", name="conv_b")(inp)
    x = layer([a, b]) if isinstance(layer, WeightedSum) else layer(a, b)
    return keras.Model(inp, layers.Conv2D(2, 1, name="head")(x))


def test_channelwise_rule_refused_for_multi_input_layer():
    model = _two_branches(WeightedSum(name="wsum"))
    with registered_rule(WeightedSum, Channelwise()):
        with pytest.raises(
            RuleArityError,
            match=r"Layer 'wsum' \(.*WeightedSum\) is called on 2 input tensor\(s\) with 1 "
            r"output\(s\), but its rule Channelwise couples 1 input\(s\) with 1 output\(s\).*"
            r"register_rule\(WeightedSum, tfcompress.graph.rules.Merge\(\)\)",
        ):
            tfc.DependencyGraph(model)
        # excluded, the layer's channels are all kept: no error
        assert tfc.DependencyGraph(model, exclude=["wsum"]).groups


def test_channelwise_rule_refused_at_registration_when_arity_is_known():
    for cls in (PairSum, layers.Add, layers.Concatenate):
        with pytest.raises(
            RuleArityError,
            match=rf"register_rule: .*{cls.__name__} takes several input tensors, but the "
            rf"rule Channelwise couples only the first.*Merge\(\).*layer_class=.*{cls.__name__}",
        ):
            register_rule(cls, Channelwise())
    assert find_rule(PairSum()) is None and isinstance(find_rule(layers.Add()), Merge)


def test_merge_rule_for_multi_input_layer_prunes_with_parity():
    model = _two_branches(WeightedSum(name="wsum"))
    x = sample_input(model)
    with registered_rule(WeightedSum, Merge()):
        masked = tfc.wrap(model)
        tfc.prune(masked, ratio=0.5)
        compact = tfc.strip(masked)
    assert compact.get_layer("conv_a").filters == compact.get_layer("conv_b").filters == 4
    assert max_rel_error(outputs(masked, x), outputs(compact, x)) <= 1e-4


def test_unknown_layer_error_suggests_a_fitting_rule():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same")(inp)
    single = keras.Model(inp, Doubler(name="doubler")(x))
    with pytest.raises(
        UnknownLayerError,
        match=r"'doubler' .* no channel rule.*If output channel c is input channel c, "
        r"register `tfcompress.graph.register_rule\(Doubler, "
        r"tfcompress.graph.rules.Channelwise\(\)\)`.*`exclude=\['doubler'\]`",
    ):
        tfc.DependencyGraph(single)
    with pytest.raises(
        UnknownLayerError,
        match=r"'wsum' .* no channel rule.*It takes 2 input tensors: if they and its output "
        r"are the same channels \(as Add's\), register `tfcompress.graph.register_rule\("
        r"WeightedSum, tfcompress.graph.rules.Merge\(\)\)`.*`exclude=\['wsum'\]`",
    ):
        tfc.DependencyGraph(_two_branches(WeightedSum(name="wsum")))
    a, b = Halves(name="halves")(x)
    with pytest.raises(UnknownLayerError, match=r"'halves' .*") as info:
        tfc.DependencyGraph(keras.Model(inp, [a, b]))
    message = str(info.value)
    assert (
        "called on 1 input(s) with 2 outputs, which no built-in rule couples: leave it "
        "alone with `exclude=['halves']`" in message
    )
    assert "register_rule(" not in message


class _Mixer(layers.Layer):
    """A layer of one's own that mixes its input channels through a weight of its own."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 8), name="kernel")

    def call(self, x):
        return keras.ops.matmul(x, self.kernel)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 8)


def test_a_layer_with_weights_is_not_suggested_a_bare_channelwise():
    """A layer of one's own holding a weight sized by its channels (an LSTM before Keras's
    recurrent layers had a rule): Channelwise() would slice none of its weights (following
    that advice made strip fail on a shape mismatch); the message leads with exclude, which
    works."""
    inp = keras.Input((5, 8))
    x = layers.Dense(16, name="proj")(inp)
    model = keras.Model(inp, layers.Dense(2)(_Mixer(name="mixer")(x)))
    with pytest.raises(UnknownLayerError) as info:
        tfc.DependencyGraph(model)
    message = str(info.value)
    assert "It holds weights (['mixer/kernel']" in message
    assert ("leave it alone with `exclude=['mixer']` (a recurrent layer of your own: "
            "always)") in message  # fmt: skip
    assert "Channelwise())" not in message
    masked = tfc.wrap(model, exclude=["mixer"])  # every group pinned: no mask placed
    with pytest.raises(ValueError, match="pinned by .*excluded layer mixer"):
        tfc.prune(masked, ratio=0.5)  # it said mixer had no channel rule, excluded as it was
    x = sample_input(model)
    assert max_rel_error(outputs(model, x), outputs(masked, x)) <= 1e-6
    with pytest.raises(ValueError, match="holds no mask layers"):
        tfc.strip(masked)  # as prune, nothing to strip


def test_a_refused_op_is_suggested_only_exclude():
    """keras.ops.take has a named refusal (opaque.Refused), not a missing rule: the message
    suggests leaving it alone, not registering Channelwise, and that suggestion works."""
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = layers.Conv2D(4, 3, padding="same", name="c2")(ops.take(x, [0, 2, 4], axis=1))
    model = keras.Model(inp, layers.GlobalAveragePooling2D()(x))
    (take,) = [op.name for op in model.operations if type(op).__name__ == "Take"]
    with pytest.raises(UnknownLayerError) as info:
        tfc.DependencyGraph(model)
    message = str(info.value)
    assert "keras.ops.take is refused" in message
    assert f"Leave it alone with `exclude=['{take}']` (or write a Rule for it)." in message
    assert "Channelwise" not in message and "register_rule(" not in message
    graph = tfc.DependencyGraph(model, exclude=[take])
    assert not graph.prunable_groups  # excluded, take keeps the channels it reads


def test_a_generic_keras_class_is_not_suggested_a_class_wide_rule():
    """A Lambda of TF ops: registering Channelwise for the Lambda class (the advice before)
    held for every Lambda of the model, and a channel-flipping Lambda then made the compact
    model differ from the masked one (2.5 relative). The advice is keras.ops, exclude, or
    a class of one's own; the same for the other generic classes (a TimeDistributed of a
    layer without a rule ...)."""
    import tensorflow as tf

    inp = keras.Input((6, 6, 3))
    x = layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = layers.Lambda(lambda t: tf.nn.relu6(t), name="tf_relu6")(x)
    model = keras.Model(inp, layers.Conv2D(4, 3, name="c2")(x))
    with pytest.raises(UnknownLayerError) as info:
        tfc.DependencyGraph(model)
    message = str(info.value)
    assert (
        "Lambda is a generic Keras class (each instance computes the function, model or "
        "layer it is given): a rule registered for it would hold for every Lambda of every "
        "model, and silently mis-handle those that compute something else. Write its "
        "function with keras.ops only (`keras.ops.relu6`, not `tf.nn.relu6`): tfcompress "
        "sees through such a Lambda. Leave it alone with `exclude=['tf_relu6']`, or make it "
        "a class of your own (a subclass) and register a rule for that class." in message
    )
    assert "register_rule(" not in message
    seq = keras.Input((5, 8))
    td = layers.TimeDistributed(_Mixer(), name="td")(layers.Dense(8)(seq))
    with pytest.raises(UnknownLayerError) as info:
        tfc.DependencyGraph(keras.Model(seq, layers.Dense(4)(td)))
    message = str(info.value)
    assert "TimeDistributed is a generic Keras class" in message
    assert "Leave it alone with `exclude=['td']`" in message
    assert "register_rule(" not in message and "keras.ops only" not in message
    # ... and a rule registered for one anyway is refused (it broke the other Lambdas)
    with pytest.raises(ValueError, match=r"register_rule: keras.*Lambda is a generic "
                       r"Keras class .* Received: layer_class=keras.*Lambda"):
        register_rule(layers.Lambda, Channelwise())
