"""The base of the wrappers that run a layer with edited weight values."""

import keras


class EditedWeights(keras.layers.Wrapper):
    """Runs the wrapped layer with `edited_value(v)` in place of the value of each
    variable `v` it `edits` (the variables themselves, and their gradients, stay the
    layer's), trainable or not: a frozen layer (`trainable = False`, transfer learning)
    is edited as a trainable one. A Keras mask (padding of a sequence) passes as it
    passes the wrapped layer."""

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("dtype", layer.dtype_policy)  # as the layer computes (a float32
        # head of a mixed-precision model stays float32)
        super().__init__(layer, **kwargs)
        self.supports_masking = layer.supports_masking
        # Keras adds a layer's activity-regularization loss in `__call__`, which the
        # wrapped layer's `stateless_call` skips: the wrapper adds it, on the same outputs
        if self.activity_regularizer is None:
            self.activity_regularizer = layer.activity_regularizer

    def edits(self, variable):
        """Whether `variable` (one of the wrapped layer's) is run edited."""
        raise NotImplementedError

    def edited_value(self, variable):
        """The value the wrapped layer runs with in place of `variable`'s."""
        raise NotImplementedError

    def variable_values(self):
        """`(trainable, non_trainable)` values for the wrapped layer's `stateless_call`."""

        def value(v):
            return self.edited_value(v) if self.edits(v) else v.value

        return (
            [value(v) for v in self.layer.trainable_variables],
            [value(v) for v in self.layer.non_trainable_variables],
        )

    def call(self, inputs):
        outputs, _ = self.layer.stateless_call(*self.variable_values(), inputs)
        return outputs

    def compute_mask(self, inputs, mask=None):
        # the wrapped layer's (an Embedding with mask_zero makes one), not the wrapper's
        return self.layer.compute_mask(inputs, mask)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # keras.layers.Wrapper.from_config pops "layer" from the dict it is given.
        return super().from_config(dict(config), custom_objects)
