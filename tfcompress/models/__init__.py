"""Model zoo: `build(name, num_classes, input_shape, width=1.0, **options)` over a registry.

Every builder returns a functional, channels_last Keras model made of standard Keras layers
only (a saved model loads without tfcompress) whose outputs are logits. Builders are
also reachable by module, e.g. `tfcompress.models.yolov2.yolov2(...)`. See
`docs/models.md` for each model's options, outputs and parameter counts.
"""

import inspect

from tfcompress.models import adapnet_pp, cifar_resnet, lenet, pspnet, resnet, vgg, yolov2

REGISTRY = {
    "adapnet_pp": adapnet_pp.adapnet_pp,
    "yolov2": yolov2.yolov2,
    "vgg16_bn": vgg.vgg16_bn,
    "vgg19_bn": vgg.vgg19_bn,
    "resnet18": resnet.resnet18,
    "resnet50": resnet.resnet50,
    "resnet20": cifar_resnet.resnet20,
    "resnet56": cifar_resnet.resnet56,
    "pspnet": pspnet.pspnet,
    "lenet5": lenet.lenet5,
    "lenet_300_100": lenet.lenet_300_100,
}

_COMMON_ARGS = ("num_classes", "input_shape", "width")


def options(name):
    """The model-specific keyword options `name`'s builder accepts, with their defaults."""
    _check_name(name)
    params = inspect.signature(REGISTRY[name]).parameters.values()
    return {p.name: p.default for p in params if p.name not in _COMMON_ARGS}


def build(name, num_classes, input_shape, width=1.0, **kwargs):
    """Builds the registered model `name` (see `REGISTRY`); `kwargs` are its `options(name)`."""
    accepted = options(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown} for model '{name}'. "
            f"Accepted options: {sorted(accepted)}. Received: {sorted(kwargs)}"
        )
    return REGISTRY[name](num_classes, input_shape, width=width, **kwargs)


def _check_name(name):
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"Unknown model name {name!r}. Known names: {sorted(REGISTRY)}")


__all__ = ["REGISTRY", "build", "options"]
