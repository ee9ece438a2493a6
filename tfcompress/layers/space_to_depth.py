"""Space-to-depth (YOLOv2's passthrough "reorg"): a Keras 3 layer, and the same map built
from standard Keras layers (`space_to_depth`), which a saved model loads without
tfcompress."""

import keras
from keras import ops

from tfcompress.numbers import check_int


@keras.saving.register_keras_serializable(package="tfcompress")
class SpaceToDepth(keras.layers.Layer):
    """Moves `block_size x block_size` spatial blocks into channels (NHWC).

    Same layout as `tf.nn.space_to_depth`: output channel `(dy * b + dx) * C + c`
    holds input channel `c` at offset `(dy, dx)` of its block. A model saved with this
    layer needs tfcompress to load; the model zoo builds the same map from standard layers
    (`space_to_depth`: Reshape -> Permute -> Reshape), and `strip` replaces this layer
    with it.

    Args:
        block_size: int >= 2, the spatial block edge.
    """

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        check_int("block_size", block_size, minimum=2)
        self.block_size = int(block_size)  # an np.int64 too; the config stays JSON

    def call(self, inputs):
        b = self.block_size
        shape = ops.shape(inputs)
        h, w, c = shape[1], shape[2], shape[3]
        x = ops.reshape(inputs, (-1, h // b, b, w // b, b, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h // b, w // b, b * b * c))

    def compute_output_shape(self, input_shape):
        b = self.block_size
        n, h, w, c = input_shape
        if h is not None and h % b:
            raise ValueError(f"SpaceToDepth: height {h} is not divisible by block_size={b}.")
        if w is not None and w % b:
            raise ValueError(f"SpaceToDepth: width {w} is not divisible by block_size={b}.")
        return (
            n,
            None if h is None else h // b,
            None if w is None else w // b,
            None if c is None else c * b * b,
        )

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


def space_to_depth(x, block_size, name):
    """`tf.nn.space_to_depth` of the NHWC KerasTensor `x` (static H, W, C) from standard
    Keras layers: output channel `(dy * block_size + dx) * C + c` holds input channel `c` at
    offset `(dy, dx)` of its block. Layers `{name}_blocks` (Reshape), `{name}_permute`
    (Permute), `{name}` (Reshape); the dependency graph maps input channel c to output
    channels `k * C + c`."""
    _, h, w, c = x.shape
    b = block_size
    if None in (h, w, c) or h % b or w % b:
        raise ValueError(
            f"space_to_depth needs static height and width divisible by block_size={b} and "
            f"a static channel count. Received: x.shape={tuple(x.shape)}"
        )
    x = keras.layers.Reshape((h // b, b, w // b, b, c), name=f"{name}_blocks")(x)
    x = keras.layers.Permute((1, 3, 2, 4, 5), name=f"{name}_permute")(x)
    return keras.layers.Reshape((h // b, w // b, b * b * c), name=name)(x)
