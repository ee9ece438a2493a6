"""One record per pruning method, registered once, and the record a wrapped model carries.

A `Method` binds what the rest of tfcompress needs to know about a method: the mask layer
`wrap` inserts, the criterion that ranks channels, the callback that drives the masks
during `fit`, the optional clone hook (e.g. slimming's L1 penalty on BatchNorm scales) and
the ranking defaults. `tfcompress.METHODS` is `names()`: derived from the registry.

    import tfcompress as tfc
    masked = tfc.wrap(model, method="taylor", exclude=["odd"])
    tfc.methods.wrapping_of(masked)  # Wrapping(method='taylor', exclude=('odd',), ...)
    tfc.prune(masked, ratio=0.5, data=ds)  # ranks by taylor, leaves "odd" alone

The wrapped model's record (`Wrapping`: method, exclude list, wrap options) lives in the
config of each of its mask layers, so it survives `model.save("x.keras")` and
`keras.saving.load_model`; `prune`, `strip` and the callbacks read it back.

Layering: this module imports only `tfcompress.layers` and `tfcompress.graph.trace` at
the top; the built-in records are made on first use (they name callbacks and clone hooks,
which import the pruners, which import `wrap`, which reads this registry).
"""

import contextlib
import dataclasses

import keras

from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, WeightMask
from tfcompress.names import check_name
from tfcompress.numbers import check_count
from tfcompress.pruners.ranking import NORMALIZERS, SCOPES

NORMALIZE = tuple(NORMALIZERS)
# What a compression factor N means: the channel ratio leaving 1/N of the parameters,
# (ACoSP) 1/N of each group's channels, or 1/N of the latency a cost table measured on
# this machine predicts (`tfcompress.latency`).
COMPRESSION_TARGETS = ("params", "channels", "latency")


@dataclasses.dataclass(frozen=True)
class Method:
    """How one pruning method is wrapped, scored and driven.

    Args:
        name: the method's name (`tfcompress.wrap(model, method=name)`).
        mask_class: the `ChannelMask` subclass `wrap` inserts; None for an unstructured
            method (element-wise `WeightMask`s on kernels).
        criterion: the key of `tfcompress.importance.CRITERIA` that ranks channels
            (None for an unstructured method).
        callback: the Keras callback class that drives the masks during `fit`.
        clone_hook: optional `fn(graph, **options) -> edit(layer, config) -> config`
            (see `tfcompress.surgery.penalties`); `wrap`'s keyword options go to it.
        scope: the ranking scope `compress` uses by default ("local" or "global").
        normalize: score normalisation before a global ranking (a key of
            `tfcompress.pruners.ranking.NORMALIZERS`); a per-group ranking never
            normalises.
        min_channels: the channels every group keeps at least, by default.
        budget_criterion: the criterion a compression target (N x fewer parameters) is
            measured with before training (Taylor scores need training; default:
            `criterion`).
        compression_target: what a compression factor N means by default: "params"
            (the channel ratio leaving 1/N of the parameters), "channels" (ACoSP: each
            group keeps 1/N of its channels) or "latency" (1/N of the predicted latency).
    """

    name: str
    mask_class: type | None
    criterion: str | None
    callback: type
    clone_hook: object = None
    scope: str = "local"
    normalize: str = "none"
    min_channels: int = 1
    budget_criterion: str | None = None
    compression_target: str = "params"

    def __post_init__(self):
        check_name("name", self.name)
        if self.mask_class is not None and not (
            isinstance(self.mask_class, type) and issubclass(self.mask_class, ChannelMask)
        ):
            raise TypeError(
                f"mask_class must subclass ChannelMask (or be None for an unstructured "
                f"method). Received: mask_class={self.mask_class!r}"
            )
        if (self.mask_class is None) != (self.criterion is None):
            raise ValueError(
                "A structured method (mask_class given) needs a criterion, an unstructured "
                f"one none. Received: mask_class={self.mask_class!r}, "
                f"criterion={self.criterion!r}"
            )
        if not (
            isinstance(self.callback, type) and issubclass(self.callback, keras.callbacks.Callback)
        ):
            raise TypeError(
                f"callback must be a keras.callbacks.Callback subclass. Received: "
                f"callback={self.callback!r}"
            )
        if self.clone_hook is not None and not callable(self.clone_hook):
            raise TypeError(
                f"clone_hook must be callable. Received: clone_hook={self.clone_hook!r}"
            )
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}. Received: scope={self.scope!r}")
        if self.normalize not in NORMALIZE:
            raise ValueError(
                f"normalize must be one of {NORMALIZE}. Received: normalize={self.normalize!r}"
            )
        check_count("min_channels", self.min_channels)
        if self.compression_target not in COMPRESSION_TARGETS:
            raise ValueError(
                f"compression_target must be one of {COMPRESSION_TARGETS}. Received: "
                f"compression_target={self.compression_target!r}"
            )
        if self.budget_criterion is None and self.criterion is not None:
            object.__setattr__(self, "budget_criterion", self.criterion)

    @property
    def structured(self):
        return self.mask_class is not None

    def global_normalize(self, scope):
        """The normalisation a ranking of `scope` uses by default: `normalize` for a
        global ranking, "none" for a per-group one."""
        return self.normalize if scope == "global" else "none"


_REGISTRY = {}
_BUILTINS_LOADED = []


def _builtins():
    from tfcompress import callbacks, layers
    from tfcompress.importance.taylor import wrap_options as taylor_wrap_options
    from tfcompress.surgery.penalties import bn_gamma_l1

    return (
        Method("magnitude", None, None, callbacks.MagnitudePruning),
        # L1 norms grow with a filter's fan-in: compared relative to their layer's mean.
        Method(
            "l1_filter",
            layers.ChannelMask,
            "l1_filter",
            callbacks.StructuredPruning,
            normalize="mean",
        ),
        # AdapNet++'s recipe: Taylor scores l2-normalised per layer, one global threshold.
        Method(
            "taylor",
            layers.TaylorMask,
            "taylor",
            callbacks.StructuredPruning,
            clone_hook=taylor_wrap_options,  # wrap(..., aggregation=): see TaylorMask
            scope="global",
            normalize="l2",
            budget_criterion="l1_filter",
        ),
        # Liu et al.: one global threshold on the raw BatchNorm scales.
        Method(
            "slimming",
            layers.ChannelMask,
            "slimming",
            callbacks.StructuredPruning,
            clone_hook=bn_gamma_l1,
            scope="global",
        ),
        # ACoSP: the same fraction of every layer, at least 8 channels.
        Method(
            "soft_topk",
            layers.SoftTopKMask,
            "soft_topk",
            callbacks.SoftTopK,
            min_channels=8,
            budget_criterion="l1_filter",
            compression_target="channels",
        ),
    )


def _registry():
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED.append(True)
        for m in _builtins():
            _REGISTRY.setdefault(m.name, m)
    return _REGISTRY


def register_method(method):
    """Registers `method` (a `Method`) under its name, once; returns it.

    Its criterion must be registered first (`tfcompress.importance.register_criterion`).
    """
    if not isinstance(method, Method):
        raise TypeError(f"method must be a tfcompress.methods.Method. Received: method={method!r}")
    registry = _registry()
    if method.name in registry:
        raise ValueError(
            f"A method named {method.name!r} is already registered. Received: method={method!r}"
        )
    from tfcompress import importance

    for field in ("criterion", "budget_criterion"):
        value = getattr(method, field)
        if value is not None and value not in importance.CRITERIA:
            raise ValueError(
                f"{field}={value!r} is not a registered criterion; known: "
                f"{sorted(importance.CRITERIA)}. Register it with "
                "`tfcompress.importance.register_criterion` first."
            )
    registry[method.name] = method
    return method


@contextlib.contextmanager
def registered_method(method):
    """`register_method` for a `with` block: the method is unregistered on exit."""
    register_method(method)
    try:
        yield method
    finally:
        _REGISTRY.pop(method.name, None)


def names():
    """The registered method names, in registration order (`tfcompress.METHODS`)."""
    return tuple(_registry())


def default_normalize(criterion, scope):
    """The score normalisation a ranking of `scope` by `criterion` uses when none is
    given: that of the method ranking by `criterion` for a global ranking ("none" for a
    criterion no method names), "none" for a per-group one."""
    for m in _registry().values():
        if m.criterion == criterion:
            return m.global_normalize(scope)
    return "none"


def with_method_defaults(options, record, criterion):
    """`options` (a `tfcompress.pruners.ranking.RankingOptions`) with what the user left
    None filled in: `scope` with `ranking.DEFAULT_SCOPE`, and from the method
    `min_channels` with `record.min_channels` (a `Method`) and `normalize` with
    `default_normalize(criterion, scope)`. The one place a method's ranking defaults
    apply: `prune`, `StructuredPruning` and `ratio_for_compression` (whether the options
    came loose or as `options=`)."""
    options = options.with_defaults()  # the scope, which the normalisation depends on
    return options.with_defaults(
        normalize=default_normalize(criterion, options.scope), min_channels=record.min_channels
    )


def get(name):
    """The `Method` registered as `name`; raises naming the known ones."""
    registry = _registry()
    if name not in registry:
        raise ValueError(
            f"Unknown pruning method. Received: method={name!r}. Known methods: {sorted(registry)}."
        )
    return registry[name]


@dataclasses.dataclass(frozen=True)
class Wrapping:
    """What a model was wrapped with: its method, the layers left alone and the options
    given to `wrap` (JSON-able; kept in every mask layer's config)."""

    method: str
    exclude: tuple = ()
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.exclude, str):
            raise TypeError(
                f"exclude must be a list of layer names, not a string. Received: "
                f"exclude={self.exclude!r}"
            )
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "options", dict(self.options))

    def get_config(self):
        return {"method": self.method, "exclude": list(self.exclude), "options": dict(self.options)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def wrapping_of(model):
    """The `Wrapping` the mask layers of `model` carry, or None when it has no mask layer
    made by `wrap` (no prunable group, or masks placed by hand)."""
    found = {}
    for layer in layers_of(model, (ChannelMask, WeightMask)):
        config = getattr(layer, "wrapping", None)
        if config:
            w = Wrapping.from_config(config)
            found.setdefault(repr(w), w)
    if len(found) > 1:
        raise ValueError(
            f"The mask layers of model '{model.name}' carry different wrappings: "
            f"{sorted(found)}. Wrap a model once."
        )
    return next(iter(found.values()), None)


def resolve(masked, method=None, criterion=None, *, caller="prune"):
    """The method record and the criterion to rank `masked` with.

    `method`, when given, must be the method `masked` was wrapped with; `criterion`
    re-scores with another criterion on purpose. Without a wrapping record (masks placed
    by hand) the method defaults to "magnitude" for weight masks, else "l1_filter".

    Returns:
        `(Method, criterion name)`.
    """
    wrapping = wrapping_of(masked)
    wrapped = None if wrapping is None else wrapping.method
    if method is not None and wrapped is not None and method != wrapped:
        raise ValueError(
            f"Model '{masked.name}' was wrapped with method={wrapped!r}, but {caller} was "
            f"given method={method!r}. Leave method out to use the wrapped method, or pass "
            f"criterion={method!r} to re-score with another criterion on purpose."
        )
    fallback = "magnitude" if layers_of(masked, WeightMask) else "l1_filter"
    record = get(method or wrapped or fallback)
    if criterion is not None:
        from tfcompress import importance

        if criterion not in importance.CRITERIA:
            raise ValueError(
                f"Unknown channel criterion. Received: criterion={criterion!r}. Known: "
                f"{sorted(importance.CRITERIA)}."
            )
    return record, criterion or record.criterion


def check_ranked_by_scores(masked, record, criterion, caller):
    """Raises unless `caller` (`prune`, `StructuredPruning`) may rank the channels of
    `masked`, wrapped with `record`, by `criterion` as given (None: the method's): a
    method whose masks another callback drives (soft_topk: `SoftTopK` trains the logits
    its criterion reads) is refused unless a criterion is chosen on purpose."""
    from tfcompress.callbacks import StructuredPruning

    if criterion is None and not issubclass(StructuredPruning, record.callback):
        raise ValueError(
            f"Model '{masked.name}' was wrapped with method={record.name!r}, whose "
            f"masks {record.callback.__name__} drives; {caller} would rank its channels "
            f"by their untrained {record.criterion!r} scores. Use "
            f"tfcompress.callbacks.{record.callback.__name__}, or pass criterion= to "
            "rank by another criterion on purpose."
        )


def graph_of(masked):
    """The dependency graph of a wrapped model, with the layers it was wrapped to leave
    alone (`exclude`) left alone again. A model `wrap` made is traced once (`graph.memo`):
    `prune` and `strip` share its graph."""
    from tfcompress.graph.memo import exclude_of, graph_for

    wrapping = wrapping_of(masked)
    exclude = wrapping.exclude if wrapping is not None else exclude_of(masked) or ()
    return graph_for(masked, exclude=exclude)
