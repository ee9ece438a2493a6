"""Contracts of the model zoo: every registered model builds, runs, serializes and is made of
layers the pruning graph knows; published configurations match the published sizes."""

import logging
import re

import keras
import numpy as np
import pytest

from tfcompress import models
from tfcompress.models import adapnet_pp, pspnet, vgg, yolov2

log = logging.getLogger(__name__)

# name -> (num_classes, input_shape, published parameter count or None, source)
PUBLISHED = {
    "adapnet_pp": (12, (384, 768, 3), 30_200_000, "Valada et al. 2019: 30.20 M"),
    "yolov2": (20, (416, 416, 3), 50_655_389, "seed table (Darknet yolo-voc.cfg)"),
    "vgg16_bn": (10, (32, 32, 3), None, "-"),
    "vgg19_bn": (10, (32, 32, 3), 20_040_000, "Liu et al. 2017 (slimming): 20.04 M"),
    "resnet18": (1000, (224, 224, 3), 11_689_512, "torchvision: 11.69 M"),
    "resnet50": (1000, (224, 224, 3), 25_557_032, "torchvision: 25.56 M"),
    "resnet20": (10, (32, 32, 3), 270_000, "He et al. 2016, table 6: 0.27 M"),
    "resnet56": (10, (32, 32, 3), 850_000, "He et al. 2016, table 6: 0.85 M"),
    "pspnet": (19, (473, 473, 3), None, "-"),
    "lenet5": (10, (28, 28, 1), 431_000, "Han et al. 2016: 431 K"),
    "lenet_300_100": (10, (28, 28, 1), 267_000, "Han et al. 2016: 267 K"),
}

# name -> (num_classes, input_shape, width, options) of a small, fast variant
SMALL = {
    "adapnet_pp": (5, (32, 32, 3), 0.125, {}),
    "yolov2": (3, (64, 64, 3), 0.125, {}),
    "vgg16_bn": (10, (32, 32, 3), 0.125, {}),
    "vgg19_bn": (10, (32, 32, 3), 0.125, {}),
    "resnet18": (10, (32, 32, 3), 0.125, {}),
    "resnet50": (10, (32, 32, 3), 0.125, {"output_stride": 8}),
    "resnet20": (10, (32, 32, 3), 0.5, {}),
    "resnet56": (10, (32, 32, 3), 0.25, {}),
    "pspnet": (4, (57, 57, 3), 0.125, {}),  # res5 8 x 8: bins 3 and 6 pool unevenly
    "lenet5": (10, (28, 28, 1), 0.5, {}),
    "lenet_300_100": (10, (28, 28, 1), 0.5, {}),
}

# output layer names, in order, where they are not a single `logits`
OUTPUT_NAMES = {
    "adapnet_pp": adapnet_pp.OUTPUTS,
    "pspnet": pspnet.OUTPUTS,
    "yolov2": ("yolo_head",),
}

# Layer classes the pruning engine's dependency graph understands.
KNOWN_LAYERS = (
    keras.layers.InputLayer,
    keras.layers.Conv2D,
    keras.layers.Conv2DTranspose,
    keras.layers.Dense,
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.Dropout,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.UpSampling2D,
    keras.layers.Resizing,
    keras.layers.Cropping2D,
    keras.layers.Add,
    keras.layers.Concatenate,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Permute,
)


def _trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_registry_lists_every_model():
    assert set(models.REGISTRY) == set(PUBLISHED) == set(SMALL)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_configuration_parameter_count(name):
    num_classes, input_shape, published, source = PUBLISHED[name]
    model = models.build(name, num_classes, input_shape)
    trainable, total = _trainable_params(model), model.count_params()
    line = (
        f"{name}: trainable {trainable:,} (all weights incl. BN statistics {total:,}) "
        f"vs published {source}"
    )
    if published:
        line += f" -> {100.0 * (trainable - published) / published:+.2f} %"
    print(line)
    log.info(line)
    if published:
        assert trainable == pytest.approx(published, rel=0.01), line


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_width_builds_runs_and_is_made_of_known_layers(name):
    num_classes, input_shape, width, options = SMALL[name]
    model = models.build(name, num_classes, input_shape, width=width, **options)
    assert type(model).__name__ == "Functional"
    unknown = [type(layer).__name__ for layer in model.layers if type(layer) not in KNOWN_LAYERS]
    assert not unknown, unknown
    assert tuple(model.output_names) == OUTPUT_NAMES.get(name, ("logits",))
    batch = np.random.default_rng(0).uniform(0, 1, (2, *input_shape)).astype("float32")
    outputs = model(batch, training=False)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    for out, spec in zip(outputs, model.outputs, strict=True):
        assert tuple(out.shape) == (2, *spec.shape[1:])
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))


def test_width_scales_hidden_channels_but_not_heads():
    model = models.build("resnet20", 10, (32, 32, 3), width=0.5)
    convs = {layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}
    assert convs == {8, 16, 32} and model.get_layer("logits").units == 10
    model = models.build("yolov2", 3, (64, 64, 3), width=0.125)
    convs = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert max(convs[:-1]) == 128 and convs[-1] == 5 * (5 + 3)
    model = models.build("adapnet_pp", 7, (32, 32, 3), width=0.25)
    assert model.get_layer("easpp_fuse_conv").filters == 64
    assert model.get_layer("skip1_conv").filters == 6
    assert model.get_layer("main_deconv_head").filters == 7


@pytest.mark.slow
def test_segmentation_outputs_are_full_resolution_logits():
    model = models.build("adapnet_pp", 5, (64, 96, 3), width=0.125)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 64, 96, 5)] * 3
    model = models.build("pspnet", 4, (48, 96, 3), width=0.125, output_stride=16, bins=(1, 3))
    assert [tuple(o.shape) for o in model.outputs] == [(None, 48, 96, 4)] * 2


def test_yolov2_output_layout_and_custom_anchors():
    model = models.build("yolov2", 20, (416, 416, 3), width=0.125)
    assert tuple(model.output_shape) == (None, 13, 13, 5 * 25)
    assert model.get_layer("passthrough_s2d").target_shape == (13, 13, 4 * 8)
    anchors = ((1.0, 1.0), (2.0, 3.0))
    model = models.build("yolov2", 3, (64, 96, 3), width=0.125, anchors=anchors)
    assert tuple(model.output_shape) == (None, 2, 3, 2 * 8)


def test_vgg_rebuilds_a_slimmed_configuration():
    cfg = (12, "M", 20, 24, "M", 40)
    model = models.build("vgg16_bn", 10, (32, 32, 3), cfg=cfg)
    convs = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == [12, 20, 24, 40]
    assert models.options("vgg19_bn") == {"cfg": vgg.VGG19_CFG, "style": "keras"}


def test_resnet_output_stride_dilates_the_last_stages():
    inputs = keras.Input((64, 64, 3))
    for stride, size in ((32, 2), (16, 4), (8, 8)):
        features = models.resnet.resnet_features(inputs, "resnet18", 0.125, stride)
        assert features["res5"].shape[1] == size
        keras.backend.clear_session()


def test_small_yolov2_serializes_through_keras_file(tmp_path):
    model = models.build("yolov2", 3, (64, 64, 3), width=0.125)
    path = str(tmp_path / "yolo.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    batch = np.random.default_rng(1).uniform(size=(1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(restored(batch), model(batch), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="alexnet"), "Unknown model name 'alexnet'. Known names: ['adapnet_pp'"),
        (dict(width=0), "width must be a finite number > 0. Received: width=0"),
        (dict(width=-0.5), "Received: width=-0.5"),
        (dict(width="half"), "Received: width='half'"),
        (dict(width=float("nan")), "Received: width=nan"),
        (dict(num_classes=0), "num_classes must be an integer >= 1. Received: num_classes=0"),
        (dict(num_classes=2.5), "Received: num_classes=2.5"),
        (dict(input_shape=(None, 64, 3)), "static positive integers"),
        (dict(input_shape=(64, 64)), "Received: input_shape=(64, 64)"),
        (dict(name="yolov2", input_shape=(100, 96, 3)), "divisible by 32"),
        (dict(name="adapnet_pp", input_shape=(72, 64, 3)), "divisible by 16"),
        (dict(name="pspnet", bins=(0, 2)), "bins must be a non-empty list of positive ints"),
        (dict(name="lenet5", input_shape=(8, 8, 1)), "at least 16"),
        (dict(name="yolov2", colour="red"), "Unknown option(s) ['colour'] for model 'yolov2'"),
        (dict(name="resnet50", output_stride=4), "output_stride must be one of [8, 16, 32]"),
        (dict(name="pspnet", output_stride=32), "Received: output_stride=32"),
        (dict(name="vgg16_bn", cfg=("M", "M")), "Received: cfg=('M', 'M')"),
        (dict(name="vgg16_bn", cfg=(64, 0)), "Received: cfg=(64, 0)"),
        (dict(name="yolov2", anchors=((1, -1),)), "Received: anchors=((1, -1),)"),
        (dict(name="adapnet_pp", dropout_rate=1.0), "Received: dropout_rate=1.0"),
    ],
)
@pytest.mark.slow
def test_bad_arguments_raise_clear_messages(kwargs, message):
    args = dict(name="resnet20", num_classes=10, input_shape=(64, 64, 3), width=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        models.build(args.pop("name"), args.pop("num_classes"), args.pop("input_shape"), **args)


def test_builders_do_not_mutate_arguments():
    cfg = [16, "M", 32]
    anchors = [[1.0, 2.0]]
    shape = [32, 32, 3]
    models.build("vgg19_bn", 10, shape, cfg=cfg)
    yolov2.yolov2(2, [64, 64, 3], width=0.125, anchors=anchors)
    assert cfg == [16, "M", 32] and anchors == [[1.0, 2.0]] and shape == [32, 32, 3]
