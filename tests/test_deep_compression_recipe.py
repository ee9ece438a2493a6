"""`sharing.deep_compress`: prune -> retrain -> share -> retrain -> file, on a tiny MLP."""

import hashlib
import json
import os
import re

import keras
import numpy as np
import pytest

from tfcompress import codec, strip
from tfcompress.codec import container
from tfcompress.layers import WeightMask
from tfcompress.sharing import deep_compress, share_weights, strip_shared
from tfcompress.sharing.pipeline import (
    STAGES,
    check_density,
    density_schedule,
    keras_gzip_bytes,
    prune_to_densities,
    resolve_densities,
)

from .summaries import scalars


def _data(n=256, features=32, classes=4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features)).astype("float32")
    return x, x[:, :classes].argmax(1).astype("int32")


def _model(features=32, classes=4):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((features,))
    x = keras.layers.Dense(64, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="fc2")(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(x))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deep")
    keras.utils.set_random_seed(0)
    x, y = _data()
    result = deep_compress(
        _model(),
        (x, y),
        val_data=(x[:128], y[:128]),
        densities={"fc1": 0.2, "fc2": 0.3},
        batch_size=128,
        output_path=str(tmp / "m.tfdc"),
        log_dir=str(tmp / "tb"),
        compile_args={"run_eagerly": True},  # a few tiny batches: no graph tracing
        verbose=0,
    )
    return result, tmp


def _bits(values):
    return [np.asarray(v, np.float32).view(np.uint32) for v in values]


def test_file_decodes_bit_exact_to_the_final_shared_model(run):
    result, tmp = run
    decoded = codec.decode(str(tmp / "m.tfdc"))
    expected = strip_shared(result.model)
    for got, want in zip(_bits(decoded.get_weights()), _bits(expected.get_weights()), strict=True):
        np.testing.assert_array_equal(got, want)


def test_pruned_weights_stay_zero_at_every_later_stage(run):
    result, tmp = run
    masks = {
        layer.layer.name: layer.mask_values("kernel")
        for layer in result.pruned.layers
        if isinstance(layer, WeightMask)
    }
    assert masks["fc1"].mean() == pytest.approx(0.2, abs=1 / 2048)
    assert masks["fc2"].mean() == pytest.approx(0.3, abs=1 / 2048)
    assert masks["logits"].all()
    later = [strip(result.pruned), strip_shared(result.model), codec.decode(str(tmp / "m.tfdc"))]
    for model in later:
        for name, mask in masks.items():
            kernel = np.asarray(model.get_layer(name).kernel)
            assert not kernel[mask == 0].any(), (model.name, name)


def test_stage_records_carry_increasing_storage_ratios(run):
    result, tmp = run
    assert [s.name for s in result.stages] == list(STAGES)
    ratios = [s.ratio for s in result.stages]
    assert ratios[0] == 1.0
    assert all(a < b for a, b in zip(ratios, ratios[1:])), ratios
    final = result.stages[-1]
    assert final.file_bytes == os.path.getsize(tmp / "m.tfdc") == result.report.file_bytes
    assert final.ratio == pytest.approx(result.report.ratio)
    assert all(s.accuracy is not None for s in result.stages)
    assert result.stages[-1].accuracy == result.stages[-2].accuracy  # the file == shared
    assert result.stages[1].nonzero < result.stages[0].nonzero
    assert any(name.startswith("events") for name in os.listdir(tmp / "tb"))


def test_density_schedule_is_geometric_and_ends_at_the_density():
    assert density_schedule(0.25, 2) == [0.5, 0.25]
    assert density_schedule(0.1, 1) == [0.1]


def test_prune_to_densities_keeps_what_earlier_steps_masked():
    from tfcompress import wrap

    masked = wrap(_model(), method="magnitude")
    first = prune_to_densities(masked, resolve_densities(masked, 0.5))
    fc1 = [layer for layer in masked.layers if isinstance(layer, WeightMask)][0]
    before = fc1.mask_values("kernel").copy()
    second = prune_to_densities(masked, resolve_densities(masked, 0.25))
    after = fc1.mask_values("kernel")
    assert first["fc1"] == 0.5 and second["fc1"] == 0.25
    assert not after[before == 0].any()


def test_quality_prunes_by_han_threshold(tmp_path):
    model = _model()
    kernel = np.asarray(model.get_layer("fc1").kernel)
    expected = float(np.mean(np.abs(kernel) > 1.0 * np.std(kernel)))
    data = _data(n=64)
    result = deep_compress(
        model,
        data,
        quality=1.0,
        prune_epochs=0,
        share_epochs=0,
        output_path=str(tmp_path / "q.tfdc"),
        compile_args={"run_eagerly": True},
        verbose=0,
    )
    mask = next(
        layer.mask_values("kernel")
        for layer in result.pruned.layers
        if isinstance(layer, WeightMask) and layer.layer.name == "fc1"
    )
    assert float(mask.mean()) == pytest.approx(expected)
    assert result.stages[0].accuracy is None  # no val_data


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"densities": {"fc9": 0.1}}, r"densities names no prunable layer .*\['fc9'\]"),
        (
            {"densities": {"fc1": 0.0}},
            r"densities\['fc1'\] must be a number in \(0, 1\]\. "
            r"Received: densities\['fc1'\]=0\.0",
        ),
        (
            {"densities": 0},
            r"^densities must be a number in \(0, 1\]\. Received: densities=0$",
        ),
        (
            {"densities": 1.5},
            r"^densities must be a number in \(0, 1\]\. Received: densities=1\.5$",
        ),
        ({"densities": "0.1"}, r"Received: densities='0\.1'$"),
        ({"quality": 0}, r"quality must be a number > 0\. Received: quality=0"),
        ({"quality": -1.0}, r"Received: quality=-1\.0"),
        ({}, r"exactly one of densities or quality\. Received: densities=None, quality=None"),
        ({"densities": 0.1, "quality": 1.0}, r"Received: densities=0\.1, quality=1\.0"),
        (
            {"densities": 0.1, "prune_steps": 0},
            r"prune_steps must be an integer >= 1\. "
            r"Received: prune_steps=0",
        ),
        ({"densities": 0.1, "share_epochs": -1}, r"Received: share_epochs=-1"),
        ({"densities": 0.1, "log_every": 0}, r"log_every must be an integer >= 1\. "
                                             r"Received: log_every=0"),
        (
            {"densities": 0.1, "optimizer": keras.optimizers.Adam()},
            r"optimizer must be an optimizer name or a function .* Received: optimizer=<",
        ),
        ({"densities": 0.1, "output_path": ""}, r"output_path must be a file path"),
        ({"densities": 0.1, "bits": {"fc7": 4}}, r"bits names no layer .*'fc7'"),
        ({"densities": 0.1, "bits": 0}, r"bits must be in \[1, 16\]\. Received: bits=0"),
        (
            {"densities": {"fc1": 0.1, "fc2": 0.5}, "exclude": ["fc1"]},
            r"^densities names layers that exclude leaves unpruned: \['fc1'\] \(exclude keeps "
            r"a layer out of both pruning and weight sharing\)\. Received: densities="
            r"\{'fc1': 0\.1, 'fc2': 0\.5\}, exclude=\['fc1'\]$",
        ),
        (
            {"densities": 0.1, "bits": {"fc2": 3}, "exclude": ["fc2"]},
            r"^bits names layers that exclude leaves unshared: \['fc2'\]\. Received: "
            r"bits=\{'fc2': 3\}, exclude=\['fc2'\]$",
        ),
    ],
)
def test_bad_arguments_raise_naming_the_value(kwargs, message, tmp_path):
    kwargs = {"output_path": str(tmp_path / "x.tfdc"), **kwargs}
    with pytest.raises(ValueError, match=message):
        deep_compress(_model(), _data(n=8), verbose=0, **kwargs)
    assert not os.path.exists(tmp_path / "x.tfdc")


def test_check_density_accepts_one():
    assert check_density(1) == 1.0


def test_keras_gzip_bytes_leaves_the_optimizer_state_out():
    model = _model()
    plain = keras_gzip_bytes(model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss, run_eagerly=True)
    model.fit(*_data(n=8), epochs=1, verbose=0)  # Adam's slots: 2 more copies of the weights
    assert keras_gzip_bytes(model) < 1.5 * plain  # (3x with the slots)


def test_bits_and_exclude_name_a_wrapped_models_layers_as_before_wrap():
    from tfcompress import wrap

    masked = wrap(_model(), method="magnitude")
    shared = share_weights(masked, bits={"fc1": 3}, exclude=("logits",))
    assert shared.get_layer("fc1_shared").bits == 3
    assert shared.get_layer("fc2_shared").bits == 5
    assert type(shared.get_layer("logits")) is keras.layers.Dense


def test_exclude_keeps_a_layer_out_of_pruning_and_sharing(tmp_path):
    """deep_compress's exclude, as documented: the layer is neither pruned nor shared."""
    model = _model()
    result = deep_compress(model, _data(n=32), densities=0.3, exclude=["fc1"],
                           prune_epochs=0, share_epochs=0, batch_size=16,
                           output_path=str(tmp_path / "e.tfdc"), verbose=0)  # fmt: skip
    pruned = [wm.layer.name for wm in result.pruned.layers if isinstance(wm, WeightMask)]
    assert pruned == ["fc2", "logits"]
    assert type(result.model.get_layer("fc1")) is keras.layers.Dense
    np.testing.assert_array_equal(result.model.get_layer("fc1").kernel,
                                  model.get_layer("fc1").kernel)  # fmt: skip


def test_exclude_may_name_a_nested_model(tmp_path):
    """exclude=["block"] leaves every layer of the nested model "block" unpruned and
    unshared (before: share_weights' check refused it as naming no layer)."""
    keras.utils.set_random_seed(0)
    block_in = keras.Input((32,))
    block = keras.Model(block_in, keras.layers.Dense(16, name="fc1")(block_in), name="block")
    inputs = keras.Input((32,))
    model = keras.Model(inputs, keras.layers.Dense(4, name="logits")(block(inputs)))
    result = deep_compress(model, _data(n=32), densities=0.5, exclude=["block"],
                           prune_epochs=0, share_epochs=0, batch_size=16,
                           output_path=str(tmp_path / "n.tfdc"), verbose=0)  # fmt: skip
    assert type(result.model.get_layer("fc1")) is keras.layers.Dense
    assert type(result.model.get_layer("logits_shared")).__name__ == "SharedWeights"
    assert [wm.layer.name for wm in result.pruned.layers if isinstance(wm, WeightMask)] == [
        "logits"]  # fmt: skip


def test_a_workdir_serves_only_the_arguments_that_made_it(tmp_path):
    args = dict(prune_epochs=0, share_epochs=0, output_path=str(tmp_path / "w.tfdc"),
                workdir=str(tmp_path / "work"), compile_args={"run_eagerly": True}, verbose=0)
    data = _data(n=64)
    first = deep_compress(_model(), data, densities={"fc1": 0.2}, **args)
    with pytest.raises(ValueError, match=r"other arguments \(bits: \{'fc1': 5, .* now; "
                                         r"densities: \{'fc1': 0.2, .* there, \{'fc1': 0.05, "):
        deep_compress(_model(), data, densities={"fc1": 0.05}, bits=3, **args)
    with pytest.raises(ValueError, match=r"weight_shapes: "):  # another architecture
        deep_compress(_model(classes=5), _data(n=64, classes=5), densities={"fc1": 0.2},
                      **args)
    again = deep_compress(_model(), data, densities={"fc1": 0.2}, **args)  # resumes: equal
    assert [s.nonzero for s in again.stages] == [s.nonzero for s in first.stages]


def _finished_run(tmp_path):
    """A finished short run: (its file, its workdir, its arguments, data, result)."""
    path, work = tmp_path / "d.tfdc", tmp_path / "work"
    args = dict(densities={"fc1": 0.2}, prune_epochs=0, share_epochs=0, output_path=str(path),
                workdir=str(work), compile_args={"run_eagerly": True}, verbose=0)
    data = _data(n=64)
    return path, work, args, data, deep_compress(_model(), data, **args)


def test_a_finished_runs_damaged_or_removed_file_is_written_again_from_shared(tmp_path, caplog):
    path, work, args, data, first = _finished_run(tmp_path)
    written = path.read_bytes()
    header, start = container.read_header(str(path), written)
    part = next(p for p in header["parts"] if p["name"] == "fc1/kernel/indices")
    damaged = bytearray(written)
    damaged[start + part["offset"]] ^= 0x01  # a flipped byte in a part: its CRC tells
    for problem, damage in ((f"{path}: part 'fc1/kernel/indices' is corrupted", True),
                            (f"{path} is missing", False)):  # fmt: skip
        if damage:
            path.write_bytes(bytes(damaged))
        else:
            os.remove(path)
        caplog.clear()
        with caplog.at_level("WARNING", logger="absl"):
            again = deep_compress(_model(), data, **args)
        assert path.read_bytes() == written
        assert [s.nonzero for s in again.stages] == [s.nonzero for s in first.stages]
        assert again.report.file_bytes == len(written)
        assert any(problem in r.getMessage()
                   and f"written again from the shared stage's model ({work / 'shared.keras'})"
                   in r.getMessage() for r in caplog.records), caplog.text  # fmt: skip
    # without the shared stage's model nothing can write it again: refused, naming both
    path.write_bytes(bytes(damaged))
    os.remove(work / "shared.keras")
    with pytest.raises(ValueError, match=re.escape(
            f"{path}: part 'fc1/kernel/indices' is corrupted")) as raised:  # fmt: skip
        deep_compress(_model(), data, **args)
    assert f"{work / 'shared.keras'}, which would write it again, is missing" in str(raised.value)
    assert path.read_bytes() == bytes(damaged)  # left as found

def test_a_finished_runs_file_swapped_for_another_valid_one_is_written_again(tmp_path, caplog):
    path, work = tmp_path / "d.tfdc", tmp_path / "work"
    args = dict(prune_epochs=0, share_epochs=0, compile_args={"run_eagerly": True}, verbose=0)
    data = _data(n=64)
    first = deep_compress(_model(), data, densities={"fc1": 0.2}, output_path=str(path),
                          workdir=str(work), **args)  # fmt: skip
    written = path.read_bytes()
    assert first.stages[-1].file_sha256 == hashlib.sha256(written).hexdigest()
    # valid files (every CRC right) of other runs: the same architecture at another
    # density, and another tiny model; each reads whole, neither is this run's result
    others = {
        "same architecture": (_model(), data, {"fc1": 0.5}),
        "another model": (_model(classes=5), _data(n=64, classes=5), {"fc2": 0.5}),
    }
    for name, (model, other_data, densities) in others.items():
        other = tmp_path / f"{name}.tfdc"
        deep_compress(model, other_data, densities=densities, output_path=str(other), **args)
        path.write_bytes(other.read_bytes())
        found = hashlib.sha256(other.read_bytes()).hexdigest()
        caplog.clear()
        with caplog.at_level("WARNING", logger="absl"):
            again = deep_compress(_model(), data, densities={"fc1": 0.2},
                                  output_path=str(path), workdir=str(work), **args)  # fmt: skip
        assert path.read_bytes() == written, name
        for got, want in zip(codec.decode(path).get_weights(),
                             strip_shared(first.model).get_weights(), strict=True):  # fmt: skip
            np.testing.assert_array_equal(got, want)
        assert again.stages[-1].file_sha256 == first.stages[-1].file_sha256
        problem = (f"{path} is not the file this run wrote: it reads whole, but its SHA-256 "
                   f"is {found}, not the {first.stages[-1].file_sha256} of the file stage's "
                   "record")  # fmt: skip
        assert any(problem in r.getMessage()
                   and f"written again from the shared stage's model ({work / 'shared.keras'})"
                   in r.getMessage() for r in caplog.records), caplog.text  # fmt: skip
    # without the shared stage's model nothing can write it again: refused, naming both
    path.write_bytes(other.read_bytes())
    os.remove(work / "shared.keras")
    with pytest.raises(ValueError, match=re.escape(f"{path} is not the file this run wrote")
                       ) as raised:  # fmt: skip
        deep_compress(_model(), data, densities={"fc1": 0.2}, output_path=str(path),
                      workdir=str(work), **args)  # fmt: skip
    assert f"{work / 'shared.keras'}, which would write it again, is missing" in str(raised.value)
    assert path.read_bytes() == other.read_bytes()  # left as found


def test_a_stage_record_kept_before_file_digests_still_resumes(tmp_path, caplog):
    # stages.json written before the file stage kept its SHA-256: the CRCs alone check
    path, work, args, data, first = _finished_run(tmp_path)
    records = work / "stages.json"
    content = json.loads(records.read_text())
    for stage in content["stages"]:
        del stage["file_sha256"]
    records.write_text(json.dumps(content))
    with caplog.at_level("WARNING", logger="absl"):
        again = deep_compress(_model(), data, **args)
    assert not caplog.records, caplog.text
    assert again.stages[-1].file_sha256 is None
    assert [s.nonzero for s in again.stages] == [s.nonzero for s in first.stages]


def test_log_every_logs_each_training_stage_every_n_steps(tmp_path, caplog):
    # 64 examples in batches of 16: 4 steps an epoch; pruned: 2 steps of 1 epoch each
    args = dict(densities={"fc1": 0.3}, dense_epochs=1, prune_steps=2, prune_epochs=1,
                share_epochs=2, batch_size=16, compile_args={"run_eagerly": True}, verbose=0)
    with caplog.at_level("INFO", logger="absl"):
        deep_compress(_model(), _data(n=64), output_path=str(tmp_path / "a.tfdc"),
                      log_every=3, log_dir=str(tmp_path / "tb"), **args)  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if ": step " in r.getMessage()]
    assert [line.split("  ")[0] for line in lines] == [
        "dense: step 3/4", "dense: step 4/4",
        "pruned: step 3/4", "pruned: step 4/4", "pruned: step 6/8", "pruned: step 8/8",
        "shared: step 3/8", "shared: step 6/8", "shared: step 8/8",
    ]  # fmt: skip
    assert all(" loss " in line and " accuracy " in line and " lr " in line for line in lines)
    tags = {(tag, step) for tag, values in scalars(tmp_path / "tb").items() for step in values}
    assert {("train/dense/loss", 3), ("train/pruned/accuracy", 8),
            ("train/shared/learning_rate", 8), ("deep_compression/ratio", 3)} <= tags
    caplog.clear()
    with caplog.at_level("INFO", logger="absl"):
        deep_compress(_model(), _data(n=64), output_path=str(tmp_path / "b.tfdc"), **args)
    assert not [r for r in caplog.records if ": step " in r.getMessage()]


def test_a_file_no_smaller_than_the_dense_model_is_warned_of(tmp_path, caplog):
    # 16-bit codes and 16-bit indexes at full density: more bytes than float32 weights
    args = dict(prune_epochs=0, share_epochs=0, compile_args={"run_eagerly": True}, verbose=0)
    data = _data(n=64)
    with caplog.at_level("WARNING", logger="absl"):
        big = deep_compress(_model(), data, densities={}, bits=16, index_bits=16,
                            output_path=str(tmp_path / "big.tfdc"), **args)
    assert big.stages[-1].ratio <= 1.0
    assert any("not fewer than the dense float32 model's" in r.getMessage()
               and "big.tfdc" in r.getMessage() and "bits=16" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="absl"):
        small = deep_compress(_model(), data, densities={"fc1": 0.2},
                              output_path=str(tmp_path / "small.tfdc"), **args)
    assert small.stages[-1].ratio > 1.0
    assert not any("dense float32" in r.getMessage() for r in caplog.records)


def test_a_resumed_run_trains_on_the_data_order_of_an_uninterrupted_one(tmp_path, deterministic):
    import tensorflow as tf

    x, y = _data(n=64)

    def data():  # shuffled anew each iteration: the order depends on the iterations before
        return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=3).repeat().batch(16)

    def run(name, keep=None):
        args = dict(densities={"fc1": 0.3}, dense_epochs=1, prune_steps=2, prune_epochs=1,
                    share_epochs=1, steps_per_epoch=2, seed=7, val_data=(x, y),
                    output_path=str(tmp_path / name),
                    workdir=str(tmp_path / f"{name}.work"), compile_args={"run_eagerly": True},
                    verbose=0)
        result = deep_compress(_model(), data, **args)
        if keep is not None:  # killed after `keep` stages: the later records are lost
            records = tmp_path / f"{name}.work" / "stages.json"
            content = json.loads(records.read_text())
            content["stages"] = content["stages"][:keep]
            records.write_text(json.dumps(content))
            result = deep_compress(_model(), data, **args)
        return result, codec.decode(tmp_path / name).get_weights()

    straight, weights = run("straight.tfdc")
    for keep in (1, 2):  # after dense, after pruned
        resumed, resumed_weights = run(f"after{keep}.tfdc", keep)
        assert [s.metrics for s in resumed.stages] == [s.metrics for s in straight.stages]
        assert all(map(np.array_equal, resumed_weights, weights))
