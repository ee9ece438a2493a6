"""The base of the wrappers that run a layer with edited weight values."""

import keras


class EditedWeights(keras.layers.Wrapper):
    """Runs the wrapped layer with `trainable_values()` in place of its trainable
    variables' values (the variables themselves, and their gradients, stay the layer's).
    A Keras mask (padding of a sequence) passes as it passes the wrapped layer."""

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("dtype", layer.dtype_policy)  # as the layer computes (a float32
        # head of a mixed-precision model stays float32)
        super().__init__(layer, **kwargs)
        self.supports_masking = layer.supports_masking

    def trainable_values(self):
        raise NotImplementedError

    def call(self, inputs):
        outputs, _ = self.layer.stateless_call(
            self.trainable_values(),
            [v.value for v in self.layer.non_trainable_variables],
            inputs,
        )
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
