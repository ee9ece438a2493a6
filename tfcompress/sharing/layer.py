"""`SharedWeights`: a layer whose kernel is a few shared values (trained quantization)."""

import keras
import numpy as np
from keras import ops

from tfcompress.layers._wrapper import EditedWeights
from tfcompress.sharing.kmeans import check_bits, cluster_kernel


@keras.saving.register_keras_serializable(package="tfcompress")
class SharedWeights(EditedWeights):
    """Runs the wrapped layer with its kernel made of `2**bits` shared values.

    The wrapper holds the codebook (the centroids, trainable, shape [2**bits]), the index
    map (non-trainable int32, the kernel's shape) and the pruning mask (non-trainable,
    the kernel's shape), and calls the layer with
    `kernel = take(codebook, indices) * mask`. The gradient of a centroid is therefore the
    sum of the gradients of the surviving weights of its cluster (Han et al. 2016, Fig. 3)
    and pruned weights stay exactly zero whatever the optimizer does.

    The wrapped layer's own kernel is frozen and unused (it keeps the values it held when
    `cluster` last ran); its other weights (the bias) keep training as floats: they are
    few and the compressed file stores them as raw float32.

    The wrapper takes the wrapped layer's dtype policy (`EditedWeights`): the codebook
    has the kernel's dtype and the layer computes as the plain layer of `strip_shared`
    does (a float32 head of a mixed-precision model stays float32).

    Args:
        layer: a layer with a kernel (Dense, Conv*, DepthwiseConv*).
        bits: the codebook holds `2**bits` centroids, 1 <= bits <= 16.
        weight_name: the shared weight (default "kernel"; Keras 3 names the kernels of
            Dense, Conv* and DepthwiseConv* so).
    """

    def __init__(self, layer, bits=5, weight_name="kernel", **kwargs):
        super().__init__(layer, **kwargs)
        self.bits = check_bits(bits)
        self.weight_name = str(weight_name)

    @property
    def size(self):
        """The number of centroids, `2**bits`."""
        return 2**self.bits

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        found = [v for v in self.layer.weights if v.name == self.weight_name]
        if not found:
            raise ValueError(
                f"SharedWeights: layer '{self.layer.name}' has no weight "
                f"{self.weight_name!r} to share. Its weights are "
                f"{[v.name for v in self.layer.weights]}."
            )
        self._kernel = found[0]
        self._kernel.trainable = False
        shape = tuple(self._kernel.shape)
        self.codebook = self.add_weight(
            shape=(self.size,), initializer="zeros", trainable=True, name="codebook"
        )
        self.indices = self.add_weight(
            shape=shape, initializer="zeros", dtype="int32", trainable=False, name="indices"
        )
        self.mask = self.add_weight(shape=shape, initializer="ones", trainable=False, name="mask")
        self.built = True

    @property
    def kernel(self):
        """The wrapped layer's (frozen, unused) kernel variable."""
        return self._kernel

    def shared_kernel(self):
        """The kernel the layer runs with: `take(codebook, indices) * mask` (a tensor)."""
        kernel = ops.take(self.codebook, self.indices)
        return kernel * ops.cast(self.mask, kernel.dtype)

    def shared_values(self):
        """The kernel as a NumPy array: the codebook value of each surviving weight and +0.0
        at pruned positions (what `strip_shared` and the compressed file hold)."""
        codebook = ops.convert_to_numpy(self.codebook)
        indices, mask = self.surviving_indices()
        return np.where(mask, codebook[indices], np.zeros((), codebook.dtype))

    def surviving_indices(self):
        """`(indices, mask)` as NumPy arrays (int32, bool), the indices at pruned positions
        set to 0; raises naming this layer if a surviving index is outside the codebook
        (`ops.take` would clip it silently)."""
        indices = ops.convert_to_numpy(self.indices)
        mask = ops.convert_to_numpy(self.mask) != 0
        kept = indices[mask]
        if kept.size and (kept.min() < 0 or kept.max() >= self.size):
            raise ValueError(
                f"SharedWeights '{self.name}' has indices outside its codebook of "
                f"{self.size}: [{kept.min()}, {kept.max()}]"
            )
        return np.where(mask, indices, 0), mask

    def cluster(self, kernel=None, mask=None, iterations=100):
        """Sets codebook, indices and mask by k-means over `kernel`'s weights where `mask`
        is non-zero (defaults: the wrapped layer's kernel; its non-zero positions)."""
        if not self.built:
            raise ValueError(f"SharedWeights '{self.name}' must be built before clustering.")
        kernel = ops.convert_to_numpy(self._kernel) if kernel is None else np.asarray(kernel)
        if kernel.shape != tuple(self._kernel.shape):
            raise ValueError(
                f"SharedWeights '{self.name}': the kernel to cluster must have shape "
                f"{tuple(self._kernel.shape)}. Received: shape={kernel.shape}"
            )
        mask = (kernel != 0) if mask is None else (np.asarray(mask) != 0)
        codebook, indices = cluster_kernel(kernel, mask, self.bits, iterations)
        self.codebook.assign(codebook)
        self.indices.assign(indices)
        self.mask.assign(mask.astype(self.mask.dtype))
        self._kernel.assign(self.shared_values())

    def edits(self, variable):
        return variable is self._kernel

    def edited_value(self, variable):
        return self.shared_kernel()

    def get_config(self):
        return {**super().get_config(), "bits": self.bits, "weight_name": self.weight_name}
