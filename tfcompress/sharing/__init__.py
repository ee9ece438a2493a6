"""Stage 2 of Deep Compression (Han, Mao & Dally 2016): trained quantization.

import tfcompress.sharing as sharing
shared = sharing.share_weights(pruned, bits={"fc1": 6})  # conv 8 bits, dense 5 bits
shared.compile(...); shared.fit(...)                     # trains the centroids only
plain = sharing.strip_shared(shared)                     # plain layers, shared values
"""

from tfcompress.sharing.kmeans import cluster_kernel, kmeans, linear_init
from tfcompress.sharing.layer import SharedWeights
from tfcompress.sharing.model import DEFAULT_BITS, share_weights, strip_shared

__all__ = [
    "DEFAULT_BITS",
    "SharedWeights",
    "cluster_kernel",
    "kmeans",
    "linear_init",
    "share_weights",
    "strip_shared",
]
