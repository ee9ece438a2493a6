"""Every registered model wraps, prunes 50 % with l1_filter and strips with parity."""

import pytest

from tests.parity import prune_with_parity
from tests.topologies import randomize_bn
from tfcompress import models

# name -> (input shape, width) small enough for CPU tests.
SMALL = {
    "adapnet_pp": ((64, 64, 3), 0.25),
    "yolov2": ((64, 64, 3), 0.25),
    "vgg16_bn": ((32, 32, 3), 0.25),
    "vgg19_bn": ((32, 32, 3), 0.25),
    "resnet18": ((32, 32, 3), 0.25),
    "resnet50": ((32, 32, 3), 0.25),
    "resnet20": ((32, 32, 3), 0.5),
    "resnet56": ((32, 32, 3), 0.25),
    "pspnet": ((96, 96, 3), 0.25),
    "lenet5": ((28, 28, 1), 1.0),
    "lenet_300_100": ((28, 28, 1), 1.0),
}


def test_every_registered_model_is_covered():
    assert set(SMALL) == set(models.REGISTRY)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_model_prunes_with_parity_and_keeps_heads(name):
    shape, width = SMALL[name]
    model = randomize_bn(models.build(name, 5, shape, width=width))
    masked, compact, x = prune_with_parity(model, 0.5, method="l1_filter")
    assert compact.count_params() < 0.6 * model.count_params()
    # task heads and outputs keep their channels
    assert [tuple(o.shape) for o in compact.outputs] == [tuple(o.shape) for o in model.outputs]
    assert compact.output_names == model.output_names
