"""Stage 3 of Deep Compression (Han, Mao & Dally 2016): the compressed file.

import tfcompress.codec as codec
rep = codec.encode(shared_model, "out/lenet.tfdc")  # sparse + Huffman, written atomically
print(rep.format())                                  # bytes per layer and part, ratio
model = codec.decode("out/lenet.tfdc")               # plain layers, == strip_shared(...)
"""

from tfcompress.codec.container import VERSION, CodecFileError
from tfcompress.codec.decoder import decode
from tfcompress.codec.encoder import encode
from tfcompress.codec.report import LayerBytes, Report, report
from tfcompress.codec.schema import DEFAULT_INDEX_BITS

__all__ = ["DEFAULT_INDEX_BITS", "VERSION", "CodecFileError", "LayerBytes", "Report", "decode",
           "encode", "report"]
