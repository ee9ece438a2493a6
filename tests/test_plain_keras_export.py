"""Compact models are plain Keras: the stripped model of every `tfcompress.models` entry
loads with `keras.saving.load_model(path, safe_mode=True)` in a process that never imported
tfcompress, gives the same outputs, and its SavedModel serves under the model's own output
names."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcompress as tfc
from tests.parity import max_rel_error, outputs, sample_input
from tests.test_models import SMALL  # the small, fast variant of every registered model
from tests.topologies import randomize_bn
from tfcompress import models
from tfcompress.export.saved_model import output_names

# SavedModel export traces the whole graph (15-25 s for ResNet-50 or AdapNet++ on 2 cores):
# the SavedModel tests take a multi-output model and two single-output ones.
SAVED_MODELS = ("pspnet", "yolov2", "lenet_300_100")

# Loads every exported model in a fresh interpreter that must never import tfcompress.
_LOADER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import keras
    import tensorflow as tf

    root = sys.argv[1]
    report = {}
    for name in json.load(open(os.path.join(root, "names.json"))):
        x = np.load(os.path.join(root, name + "_x.npy"))
        try:
            model = keras.saving.load_model(os.path.join(root, name + ".keras"), safe_mode=True)
            y = model(x, training=False)
            y = y if isinstance(y, (list, tuple)) else [y]
            np.savez(os.path.join(root, name + "_keras.npz"), *[np.asarray(t) for t in y])
            report[name] = {"output_names": list(model.output_names), "error": None}
            if not os.path.exists(os.path.join(root, name + "_sm")):
                continue
            served = tf.saved_model.load(os.path.join(root, name + "_sm"))
            fn = served.signatures["serving_default"]
            (key,) = fn.structured_input_signature[1]
            out = fn(**{key: tf.constant(x)})
            np.savez(os.path.join(root, name + "_sm.npz"), **{k: v.numpy() for k, v in out.items()})
        except Exception as e:  # reported per model
            report[name] = {"error": f"{type(e).__name__}: {e}"}
    report["tfcompress_imported"] = any(m.split(".")[0] == "tfcompress" for m in sys.modules)
    json.dump(report, open(os.path.join(root, "report.json"), "w"))
    """
)


def _compact(name):
    num_classes, shape, width, options = SMALL[name]
    model = randomize_bn(models.build(name, num_classes, shape, width=width, **options))
    masked = tfc.wrap(model, method="l1_filter")
    tfc.prune(masked, ratio=0.5)
    return model, tfc.strip(masked)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every registered model stripped and exported; one clean process loads them all."""
    root = str(tmp_path_factory.mktemp("plain"))
    compact = {}
    for name in sorted(SMALL):
        model, stripped = _compact(name)
        x = sample_input(model)
        np.save(os.path.join(root, name + "_x.npy"), x)
        tfc.export.keras_file(stripped, os.path.join(root, name + ".keras"))
        if name in SAVED_MODELS:
            tfc.export.saved_model(stripped, os.path.join(root, name + "_sm"))
        compact[name] = (model, stripped, outputs(stripped, x))
    with open(os.path.join(root, "names.json"), "w") as f:
        json.dump(sorted(SMALL), f)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", _LOADER, root],
        env=env,
        cwd=root,  # not the repository: tfcompress is not importable by accident
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(root, "report.json")) as f:
        report = json.load(f)
    return root, compact, report


def test_every_registered_model_is_covered():
    assert set(SMALL) == set(models.REGISTRY)


@pytest.mark.slow
def test_loader_process_never_imported_tfcompress(exported):
    _, _, report = exported
    assert report["tfcompress_imported"] is False


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_stripped_model_loads_as_plain_keras_with_same_outputs(exported, name):
    root, compact, report = exported
    assert report[name]["error"] is None, report[name]["error"]
    model, stripped, expected = compact[name]
    assert stripped.count_params() < model.count_params()
    with np.load(os.path.join(root, name + "_keras.npz")) as loaded:
        got = [loaded[f"arr_{i}"] for i in range(len(loaded.files))]
    assert max_rel_error(expected, got) <= 1e-5
    assert report[name]["output_names"] == list(stripped.output_names)


@pytest.mark.slow
@pytest.mark.parametrize("name", SAVED_MODELS)
def test_saved_model_serves_under_the_model_output_names(exported, name):
    root, compact, report = exported
    assert report[name]["error"] is None, report[name]["error"]
    _, stripped, expected = compact[name]
    with np.load(os.path.join(root, name + "_sm.npz")) as served:
        assert sorted(served.files) == sorted(stripped.output_names)
        got = [served[n] for n in stripped.output_names]
    assert max_rel_error(expected, got) <= 1e-5
    x = np.load(os.path.join(root, name + "_x.npy"))
    in_order = tfc.export.serve(os.path.join(root, name + "_sm"), x)
    assert max_rel_error(expected, in_order) <= 1e-5


def test_saved_model_outputs_are_keyed_by_the_model_output_names(tmp_path):
    inp = keras.Input((4, 4, 3), name="image")
    x = keras.layers.Conv2D(4, 1, name="trunk")(inp)
    main = keras.layers.Conv2D(2, 1, name="main_logits")(x)
    aux = keras.layers.Conv2D(3, 1, name="aux_logits")(x)
    model = keras.Model(inp, [main, aux])
    path = tfc.export.saved_model(model, str(tmp_path / "sm"))
    fn = tf.saved_model.load(path).signatures["serving_default"]
    assert sorted(fn.structured_outputs) == ["aux_logits", "main_logits"]
    x = sample_input(model)
    served = tfc.export.serve(path, x)  # in the model's output order
    assert [y.shape[-1] for y in served] == [2, 3]
    assert max_rel_error(outputs(model, x), served) <= 1e-6


def test_repeated_output_names_are_numbered():
    inp = keras.Input((4,))
    a, b = keras.ops.split(keras.layers.Dense(4, name="dense")(inp), 2, axis=-1)
    model = keras.Model(inp, [a, b, inp * 2.0])
    names = output_names(model)
    assert names[:2] == [model.output_names[0], model.output_names[0] + "_1"]
    assert len(set(names)) == 3


def test_tflite_check_pairs_outputs_by_name(tmp_path):
    """The file's outputs are keyed by name ("aux_logits" sorts first): the check compares
    each with the Keras output of the same name, in the model's order."""
    inp = keras.Input((4, 4, 3), name="image")
    x = keras.layers.Conv2D(4, 1, name="trunk")(inp)
    main = keras.layers.Conv2D(2, 1, name="main_logits")(x)
    aux = keras.layers.Conv2D(2, 1, name="aux_logits")(x)
    model = keras.Model(inp, [main, aux])
    check = tfc.export.tflite(model, str(tmp_path / "m.tflite"), check_data=sample_input(model))
    assert check.max_abs_error <= 1e-5
    lite = tfc.export.run_tflite(check.path, sample_input(model))  # sorted by name
    assert max_rel_error(outputs(model, sample_input(model))[::-1], lite) <= 1e-5
