"""Stage 2 of Deep Compression (Han, Mao & Dally 2016): trained quantization.

import tfcompress.sharing as sharing
shared = sharing.share_weights(pruned, bits={"fc1": 6})  # conv 8 bits, dense 5 bits
shared.compile(...); shared.fit(...)                     # trains the centroids only
plain = sharing.strip_shared(shared)                     # plain layers, shared values
result = sharing.deep_compress(dense, train, densities=0.1, output_path="m.tfdc")  # all 3
"""

from tfcompress.sharing.kmeans import cluster_kernel, kmeans, linear_init
from tfcompress.sharing.layer import SharedWeights
from tfcompress.sharing.model import DEFAULT_BITS, share_weights, strip_shared
from tfcompress.sharing.pipeline import Result, Stage, deep_compress

__all__ = [
    "DEFAULT_BITS",
    "Result",
    "SharedWeights",
    "Stage",
    "cluster_kernel",
    "deep_compress",
    "kmeans",
    "linear_init",
    "share_weights",
    "strip_shared",
]
