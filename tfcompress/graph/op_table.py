"""keras.ops in functional models: the rule of every operation a `keras.ops` function records
when it is called on KerasTensors (`keras.src.ops.*` classes, e.g. `keras.ops.sin(x)` ->
`keras.src.ops.numpy.Sin`), or the reason it has none.

Each operation is one of:
- a rule: elementwise (Channelwise; Broadcast on several tensors, as Merge), along an
  `axis` (Reduce: channelwise unless the channel axis is reduced, sorted, flipped ...),
  adding or moving axes (KeepsLastAxis), or Pin: its output depends on all channels of an
  input together (matmul, einsum, linear algebra, FFT, losses, normalizations), so they are
  kept (`keras.ops.layer_normalization` too: only the LayerNormalization layer has a rule);
- a refusal (`REFUSALS`, `opaque.Refused`): it stays opaque: accepted when every channel it
  touches is kept anyway, else refused by name with the reason (its channel map depends on
  indices or shapes given as arguments, which no rule reads, or it runs a Python function).

`OP_RULES` maps the operation's qualified class name to its rule (refusals included) and
is merged into `tfcompress.graph.rules.RULES` on import (`tfcompress.graph` imports this
module). `tests/test_keras_ops_coverage.py` checks that every operation of `keras.ops` is
here.
"""

from tfcompress.graph import op_rules
from tfcompress.graph.op_rules import (
    Broadcast,
    GetItem,
    KeepsLastAxis,
    Pad,
    Reduce,
    ReshapeOp,
    Split,
)
from tfcompress.graph.opaque import Refused
from tfcompress.graph.rules import RULES, Channelwise, Concat, Pin

_CHANNELWISE = {
    "numpy": """Abs Absolute Angle Arccos Arccosh Arcsin Arcsinh Arctan Arctanh BitwiseInvert
        BitwiseNot Cbrt Ceil Clip Conjugate Copy Cos Cosh Deg2rad EmptyLike Exp Exp2 Expm1
        Fabs Floor FullLike I0 Imag Isfinite Isinf Isnan Isneginf Isposinf Isreal Log Log10
        Log1p Log2 LogicalNot NanToNum Negative OnesLike Rad2deg Real Reciprocal Round Sign
        Signbit Sin Sinc Sinh Sqrt Square Tan Tanh Trunc ZerosLike""",
    "core": "Cast ConvertToTensor SaturateCast StopGradient",
    "math": "Erf Erfc Erfinv Rsqrt",
    "nn": """AdaptiveAveragePool AdaptiveMaxPool AveragePool Celu Elu Gelu HardShrink
        HardSigmoid HardSilu HardTanh LeakyRelu LogSigmoid MaxPool Relu Relu6 Selu
        Sigmoid Silu SoftShrink Softplus Softsign SparsePlus SparseSigmoid Squareplus
        TanhShrink Threshold""",
}
_BROADCAST = {
    "numpy": """Add Arctan2 BitwiseAnd BitwiseLeftShift BitwiseOr BitwiseRightShift BitwiseXor
        Divide DivideNoNan Equal FloorDivide Fmax Fmin Fmod Gcd Greater GreaterEqual
        Heaviside Hypot Isclose Lcm Ldexp LeftShift Less LessEqual Logaddexp Logaddexp2
        LogicalAnd LogicalOr LogicalXor Maximum Minimum Mod Multiply Nextafter NotEqual Power
        RightShift Subtract TrueDivide Where""",
}
_ALONG_AXIS = {
    "numpy": """All Amax Amin Any Argmax Argmin Argpartition Argsort Average CountNonzero
        Cumprod Cumsum Diff Flip Max Mean Median Min Nanargmax Nanargmin Nancumprod Nancumsum
        Nanmax Nanmean Nanmedian Nanmin Nanprod Nanstd Nansum Nanvar Prod Ptp Repeat Roll Sort
        Std Sum Trapezoid Var""",
    "math": "Logsumexp",
    "linalg": "Norm",
    "nn": "Glu Normalize Sparsemax",
}
_KEEPS_LAST_AXIS = {
    "numpy.Append": op_rules.append_keeps,
    "numpy.ExpandDims": op_rules.expand_dims_keeps,
    "numpy.Moveaxis": op_rules.moveaxis_keeps,
    "numpy.Squeeze": op_rules.squeeze_keeps,
    "numpy.Stack": op_rules.stack_keeps,
    "numpy.Swapaxes": op_rules.swapaxes_keeps,
    "numpy.Tile": op_rules.tile_keeps,
    "numpy.Transpose": op_rules.transpose_keeps,
}
_PIN = {
    "numpy": """AllClose Bincount Corrcoef Correlate Cross Diag Diagflat Diagonal Digitize
        Dot Einsum Histogram Inner IsIn Kron Matmul Nanpercentile Nanquantile Ndim Nonzero
        Outer Percentile Quantile SearchSorted Size Slogdet Tensordot Trace Tril Triu Unique
        Vander Vdot""",
    "linalg": """Cholesky CholeskyInverse Det Eig Eigh Inv Lstsq LuFactor MatrixRank Pinv Qr
        SVD Solve SolveTriangular""",
    "math": """CDist ExtractSequences FFT FFT2 IFFT2 IRFFT ISTFT InTopK Logdet RFFT STFT
        SegmentMax SegmentMin SegmentProd SegmentSum TopK ViewAsComplex ViewAsReal""",
    "nn": """BatchNorm BinaryCrossentropy CTCDecode CTCLoss CategoricalCrossentropy Conv
        ConvTranspose DepthwiseConv DotProductAttention LayerNorm LogSoftmax Moments MultiHot
        OneHot PSNR Polar RMSNorm SeparableConv Softmax SparseCategoricalCrossentropy""",
}
_ARGUMENTS = "its channel map depends on {what} given as arguments, which no rule reads yet"
_FUNCTION = (
    "it runs a Python function on the tensors, and what that function does to the "
    "channels is not part of the graph"
)
# qualified class name (after "keras.src.ops.") -> (keras.ops function, reason)
_REFUSED = {
    "core.AssociativeScan": ("associative_scan", _FUNCTION),
    "core.Cond": ("cond", _FUNCTION),
    "core.ForiLoop": ("fori_loop", _FUNCTION),
    "core.Map": ("map", _FUNCTION),
    "core.Scan": ("scan", _FUNCTION),
    "core.Switch": ("switch", _FUNCTION),
    "core.VectorizedMap": ("vectorized_map", _FUNCTION),
    "core.WhileLoop": ("while_loop", _FUNCTION),
    "linalg.JVP": ("linalg.jvp", _FUNCTION),
    "core.Scatter": ("scatter", _ARGUMENTS.format(what="indices")),
    "core.ScatterUpdate": ("scatter_update", _ARGUMENTS.format(what="indices")),
    "core.Slice": ("slice", _ARGUMENTS.format(what="start indices and a shape")),
    "core.SliceUpdate": ("slice_update", _ARGUMENTS.format(what="start indices")),
    "core.Unstack": ("unstack", _ARGUMENTS.format(what="an axis to unstack")),
    "numpy.Arange": ("arange", _ARGUMENTS.format(what="the bounds")),
    "numpy.Array": ("array", _ARGUMENTS.format(what="nested values")),
    "numpy.ArraySplit": ("array_split", _ARGUMENTS.format(what="a number of sections")),
    "numpy.BroadcastTo": ("broadcast_to", _ARGUMENTS.format(what="a target shape")),
    "numpy.Dsplit": ("dsplit", _ARGUMENTS.format(what="split points")),
    "numpy.Dstack": ("dstack", _ARGUMENTS.format(what="the inputs' ranks")),
    "numpy.Fliplr": ("fliplr", _ARGUMENTS.format(what="the input's rank")),
    "numpy.Flipud": ("flipud", _ARGUMENTS.format(what="the input's rank")),
    "numpy.Full": ("full", _ARGUMENTS.format(what="a shape")),
    "numpy.Geomspace": ("geomspace", _ARGUMENTS.format(what="a number of samples")),
    "numpy.Hsplit": ("hsplit", _ARGUMENTS.format(what="split points")),
    "numpy.Hstack": ("hstack", _ARGUMENTS.format(what="the inputs' ranks")),
    "numpy.Linspace": ("linspace", _ARGUMENTS.format(what="a number of samples")),
    "numpy.Logspace": ("logspace", _ARGUMENTS.format(what="a number of samples")),
    "numpy.Meshgrid": ("meshgrid", _ARGUMENTS.format(what="an indexing order")),
    "numpy.Ravel": ("ravel", _ARGUMENTS.format(what="the flattened shape")),
    "numpy.Rot90": ("rot90", _ARGUMENTS.format(what="the rotated axes")),
    "numpy.Select": ("select", _ARGUMENTS.format(what="lists of conditions and choices")),
    "numpy.Take": ("take", _ARGUMENTS.format(what="indices")),
    "numpy.TakeAlongAxis": ("take_along_axis", _ARGUMENTS.format(what="indices")),
    "numpy.UnravelIndex": ("unravel_index", _ARGUMENTS.format(what="a shape")),
    "numpy.View": ("view", _ARGUMENTS.format(what="a dtype")),
    "numpy.Vsplit": ("vsplit", _ARGUMENTS.format(what="split points")),
    "numpy.Vstack": ("vstack", _ARGUMENTS.format(what="the inputs' ranks")),
    "nn.DepthToSpace": ("nn.depth_to_space", _ARGUMENTS.format(what="a block size")),
    "nn.Fold": ("nn.fold", _ARGUMENTS.format(what="an output size")),
    "nn.SpaceToDepth": ("nn.space_to_depth", _ARGUMENTS.format(what="a block size")),
    "nn.Unfold": ("nn.unfold", _ARGUMENTS.format(what="a kernel size")),
    "einops.Rearrange": ("rearrange", _ARGUMENTS.format(what="an einops pattern")),
}

PREFIX = "keras.src.ops."


def _table():
    table = {
        "numpy.Concatenate": Concat(),
        "numpy.GetItem": GetItem(),
        "numpy.Pad": Pad(),
        "numpy.Reshape": ReshapeOp(),
        "numpy.Split": Split(),
    }
    for groups, rule in (
        (_CHANNELWISE, Channelwise()),
        (_BROADCAST, Broadcast()),
        (_ALONG_AXIS, Reduce()),
        (_PIN, Pin()),
    ):
        for module, names in groups.items():
            table.update({f"{module}.{name}": rule for name in names.split()})
    table.update({name: KeepsLastAxis(keeps) for name, keeps in _KEEPS_LAST_AXIS.items()})
    for name, (function, reason) in _REFUSED.items():
        table[name] = Refused(f"keras.ops.{function}", reason)
    return {PREFIX + name: rule for name, rule in table.items()}


OP_RULES = _table()
REFUSALS = {name: rule for name, rule in OP_RULES.items() if isinstance(rule, Refused)}
RULES.update(OP_RULES)
