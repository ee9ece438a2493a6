"""Library errors name the thing and the value: a model wrapped twice, masks holding NaN
or inf, a damaged checkpoint against one of another model, and the paths a script writes."""

import keras
import numpy as np
import pytest

import tfcompress as tfc
from tfcompress.graph.trace import layers_of
from tfcompress.layers import ChannelMask, WeightMask


def _convnet():
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="c1"),
            keras.layers.Conv2D(4, 3, name="c2"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, name="d"),
        ],
        name="convnet",
    )


@pytest.mark.parametrize("method", ["l1_filter", "magnitude"])
def test_wrapping_a_wrapped_model_says_so(method):
    masked = tfc.wrap(_convnet(), method)
    with pytest.raises(
        ValueError,
        match=rf"Model 'convnet' is already wrapped \(with method '{method}'; \d mask layers.*"
        r"Prune it \(`tfcompress.prune`\), or strip it first",
    ):
        tfc.wrap(masked, method)
    tfc.wrap(tfc.strip(masked), method)  # the compact model wraps again


def _poison(masked, value):
    """Writes `value` into the first value of the first mask layer; returns its name."""
    layer = layers_of(masked, (ChannelMask, WeightMask))[0]
    variable = layer.mask if isinstance(layer, ChannelMask) else next(iter(layer.masks.values()))
    values = np.ones(variable.shape, np.float32)
    values.flat[1] = value
    variable.assign(values)
    return layer.name


@pytest.mark.parametrize(
    "method, value, what",
    [("l1_filter", np.nan, "mask"), ("soft_topk", np.inf, "mask"), ("magnitude", np.nan,
     "kernel mask")],
)  # fmt: skip
def test_a_mask_that_is_not_finite_is_refused(method, value, what):
    masked = tfc.wrap(_convnet(), method)
    name = _poison(masked, value)
    message = rf"Mask layer '{name}': 1 of \d+ {what} values are not finite \(NaN or inf\)"
    with pytest.raises(ValueError, match=message):
        tfc.strip(masked)
    if method != "magnitude":  # iterative channel pruning reads the masks
        with pytest.raises(ValueError, match=message):
            tfc.prune(masked, 0.5, keep_pruned=True)


# --- checkpoints: damaged (cannot be read) vs foreign (readable, another model) ----------


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    from .test_scripts_helpers import make_fmnist

    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=64, num_test=16)


def _train_config(data, checkpoint, model="lenet5", **kw):
    from tfcompress.training import config as cfg

    return cfg.TrainConfig(
        model=cfg.ModelConfig(model, 10),
        train_data=f"{data}/train-*.tfrecord",
        checkpoint=checkpoint,
        max_iteration=2,
        save_step=1,
        batch_size=16,
        progress=False,
        **kw,
    )


@pytest.fixture(scope="module")
def unfinished_run(fmnist, tmp_path_factory):
    """A lenet5 run with checkpoints at steps 1 and 2 and no final model or result yet (a
    run killed after its last checkpoint): the next start resumes from ckpt-2."""
    import os

    from tfcompress import training

    path = str(tmp_path_factory.mktemp("runs") / "lenet5")
    training.train(_train_config(fmnist, path))
    for name in ("result.json", "final.keras"):
        os.remove(os.path.join(path, name))
    return path


def _copy_run(source, target):
    import shutil

    shutil.copytree(source, target)
    return str(target)


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def _truncate(path):
    import os

    os.truncate(path, os.path.getsize(path) // 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, suffix",
    [(_flip, "data-00000-of-00001"), (_truncate, "data-00000-of-00001"), (_flip, "index"),
     (_truncate, "index")],
)  # fmt: skip
def test_a_damaged_checkpoint_is_named_and_left_alone(fmnist, unfinished_run, tmp_path, damage,
                                                      suffix):  # fmt: skip
    import os

    from tfcompress import training

    from .test_scripts_errors import snapshot

    run = _copy_run(unfinished_run, tmp_path / "run")
    target = os.path.join(run, f"ckpt-2.{suffix}")
    if damage is _flip:
        damage(target, os.path.getsize(target) // 2)
    else:
        damage(target)
    before = snapshot(run)
    with pytest.raises(ValueError, match=r"the checkpoint .*ckpt-2 is damaged \(truncated or "
                       r"corrupted\) and cannot be read: .*delete its files \(ckpt-2.index, "
                       r"ckpt-2.data-\*\) to resume from an earlier checkpoint"):  # fmt: skip
        training.train(_train_config(fmnist, run))
    assert snapshot(run) == before  # nothing overwritten
    for name in ("ckpt-2.index", "ckpt-2.data-00000-of-00001"):
        os.remove(os.path.join(run, name))
    result = training.train(_train_config(fmnist, run))  # resumes from ckpt-1
    assert result["steps"] == 2


@pytest.mark.slow
def test_a_readable_checkpoint_of_another_model_names_its_variables(fmnist, unfinished_run,
                                                                     tmp_path):  # fmt: skip
    import glob
    import os
    import shutil

    from tfcompress import training

    other = str(tmp_path / "other")
    training.train(_train_config(fmnist, other, model="lenet_300_100"))
    run = _copy_run(unfinished_run, tmp_path / "run")
    for path in glob.glob(os.path.join(run, "ckpt-2.*")):
        os.remove(path)
    for path in glob.glob(os.path.join(other, "ckpt-2.*")):
        shutil.copy(path, run)
    with pytest.raises(ValueError, match=r"the checkpoint .*ckpt-2 is intact but does not fit "
                       r"the model this command builds: .*shape.*It is a checkpoint from a "
                       r"different model"):  # fmt: skip
        training.train(_train_config(fmnist, run))
