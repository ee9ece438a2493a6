"""Exporters: named SavedModel signature, .keras, TFLite run in LiteRT, atomic writes."""

import importlib
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tfcompress as tfc
from tests.topologies import randomize_bn


def _compact():
    inp = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same")(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = randomize_bn(keras.Model(inp, layers.Dense(4)(x)))
    masked = tfc.wrap(model)
    tfc.prune(masked, ratio=0.5)
    return tfc.strip(masked)


@pytest.fixture(scope="module")
def compact():
    return _compact()


def _x(n=4):
    return np.random.default_rng(0).uniform(size=(n, 12, 12, 3)).astype("float32")


def test_saved_model_named_signature(compact, tmp_path):
    path = tfc.export.saved_model(compact, str(tmp_path / "sm"), signature_name="classify")
    out = tfc.export.serve(path, {"image": _x()}, signature_name="classify")
    np.testing.assert_allclose(out[0], compact(_x()), rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match="has no signature 'detect'. Signatures: .*'classify'"):
        tfc.export.serve(path, _x(), signature_name="detect")


@pytest.mark.parametrize("bad", ["", None, 1])
def test_an_empty_or_missing_signature_name_is_refused_by_name(compact, tmp_path, bad):
    message = re.escape(
        f"signature_name must be a non-empty string. Received: signature_name={bad!r}")
    with pytest.raises(ValueError, match=message):
        tfc.export.saved_model(compact, str(tmp_path / "sm"), signature_name=bad)
    assert not os.listdir(tmp_path)  # nothing written
    with pytest.raises(ValueError, match=message):  # before the folder is read
        tfc.export.serve(str(tmp_path / "none"), _x(), signature_name=bad)


def test_saved_model_with_a_lookup_table(tmp_path):
    """A model whose call reads a lookup table (StringLookup), not only variables, is
    exported through Keras' ExportArchive, which tracks the table: it serves the same."""
    words = keras.Input((3,), dtype="string", name="words")
    ids = layers.StringLookup(vocabulary=["a", "b", "c"])(words)
    x = layers.Flatten()(layers.Embedding(5, 4)(ids))
    model = keras.Model(words, layers.Dense(2)(x))
    batch = np.array([["a", "b", "z"], ["c", "c", "a"]])
    out = tfc.export.serve(tfc.export.saved_model(model, str(tmp_path / "sm")), batch)
    np.testing.assert_allclose(out[0], model(batch), rtol=1e-6)


def test_saved_model_with_captured_constants_is_traced_once(tmp_path, monkeypatch):
    """A model whose call reads constants besides its variables (a Normalization layer's
    mean and variance, as in EfficientNet) is written from the one trace: Keras'
    ExportArchive (three traces, ~1.5x the CPU) is kept for lookup tables. It serves
    the same, and the constants are in the SavedModel."""
    inputs = keras.Input((12, 12, 3), name="image")
    norm = layers.Normalization(mean=[0.5, 1.0, -2.0], variance=[4.0, 0.25, 1.0])
    model = keras.Model(inputs, layers.Conv2D(2, 1)(norm(inputs)))

    def no_archive(*args, **kwargs):
        raise AssertionError("exported through ExportArchive")

    monkeypatch.setattr(keras.export, "ExportArchive", no_archive)
    x = _x(2)
    out = tfc.export.serve(tfc.export.saved_model(model, str(tmp_path / "sm")), x)
    np.testing.assert_allclose(out[0], model(x), rtol=1e-5, atol=1e-6)
    unnormalized = model.layers[-1](x)  # the conv alone: what the output would be without them
    assert not np.allclose(out[0], unnormalized, atol=1e-3)


def _swish_model():
    """A model running an op with a custom gradient (tf.nn.silu's, as EfficientNet does)."""
    inputs = keras.Input((12, 12, 3), name="image")
    x = layers.Conv2D(4, 3, padding="same", activation="swish")(inputs)
    return keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(x)))


def test_saved_model_keeps_custom_gradients(tmp_path):
    """Differentiating the loaded signature gives Keras's gradient: the SavedModel keeps
    the custom gradients of the ops it runs (only TFLite's intermediate one leaves them
    out, `test_tflite_of_an_op_with_a_custom_gradient`)."""
    model = _swish_model()
    x = tf.constant(_x(2))
    loaded = tf.saved_model.load(tfc.export.saved_model(model, str(tmp_path / "sm")))
    fn = loaded.signatures["serving_default"]
    grads = []
    for call in (lambda t: model(t), lambda t: next(iter(fn(image=t).values()))):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(call(x) ** 2)
        grads.append(tape.gradient(y, x).numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_tflite_of_an_op_with_a_custom_gradient(tmp_path):
    """TFLite's intermediate SavedModel is written without gradients (never read by the
    converter; tracing them was 1-2 s of an EfficientNetB0's conversion): the file runs
    as the model does."""
    model = _swish_model()
    check = tfc.export.tflite(model, str(tmp_path / "m.tflite"), check_data=_x())
    assert check.max_rel_error <= 1e-5


@pytest.mark.parametrize("quantization,tolerance", [(None, 1e-4), ("dynamic", 0.1)])
def test_tflite_runs_in_litert(compact, tmp_path, quantization, tolerance):
    check = tfc.export.tflite(
        compact, str(tmp_path / "m.tflite"), quantization=quantization, check_data=_x()
    )
    assert os.path.getsize(check.path) == check.size_bytes
    assert check.output_shapes == [[4, 4]]
    scale = float(np.max(np.abs(compact(_x()))))
    assert check.max_abs_error <= tolerance * max(scale, 1.0)


def test_tflite_full_int8(compact, tmp_path):
    check = tfc.export.tflite(
        compact, str(tmp_path / "int8.tflite"), quantization="int8",
        representative_data=[_x(8)],
    )
    ref = np.asarray(compact(_x(8)))
    assert check.max_abs_error <= 0.1 * float(np.max(np.abs(ref))) + 0.05
    float_check = tfc.export.tflite(compact, str(tmp_path / "f.tflite"))
    assert check.size_bytes < float_check.size_bytes



def test_run_tflite_saturates_int8_inputs_outside_the_calibrated_range(tmp_path):
    # an input 3x beyond the representative data's [-1, 1] quantized to 385 and wrapped
    # to -127 in the int8 cast: the output's sign flipped
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    model = keras.Model(inp, layers.Dense(2)(inp))
    path = str(tmp_path / "d.tflite")
    rep = [np.random.default_rng(0).uniform(-1, 1, (32, 4)).astype("float32")]
    tfc.export.tflite(model, path, quantization="int8", representative_data=rep)
    x = np.array([[3.0, 0.0, 0.0, 0.0]], np.float32)
    top = float(np.max(rep[0]))  # about the largest input value the int8 input holds
    saturated = np.asarray(model(np.array([[top, 0.0, 0.0, 0.0]], np.float32)))
    out = tfc.export.run_tflite(path, x)[0]
    assert np.all(np.sign(out) == np.sign(saturated)), (out, saturated)
    np.testing.assert_allclose(out, saturated, atol=0.05)


@pytest.mark.parametrize("quantization", [None, "int8"])
def test_tflite_batch_is_dynamic(tmp_path, quantization):
    # an Input that fixes batch 1 and a Flatten (a reshape that would bake that batch in)
    inp = keras.Input((6, 6, 3), batch_size=1, name="image")
    x = layers.Conv2D(4, 3, activation="relu")(inp)
    model = keras.Model(inp, layers.Dense(3)(layers.Flatten()(x)))
    calibration = {"representative_data": [_x(4)[:, :6, :6]]} if quantization else {}
    check = tfc.export.tflite(model, str(tmp_path / "m.tflite"), quantization=quantization,
                              **calibration)
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=check.path)
    detail = interp.get_input_details()[0]
    assert list(detail["shape_signature"]) == [-1, 6, 6, 3]
    batch = _x(4)[:, :6, :6]
    lite = tfc.export.run_tflite(check.path, batch)[0]  # resized to batch 4, one invoke
    assert lite.shape == (4, 3)
    tolerance = 1e-5 if quantization is None else 0.1 * float(np.max(np.abs(model(batch))))
    np.testing.assert_allclose(lite, model(batch), atol=tolerance)
    if quantization is None:  # a user's own resize gives the same numbers
        interp.resize_tensor_input(detail["index"], batch.shape, strict=True)
        interp.allocate_tensors()
        interp.set_tensor(detail["index"], batch)
        interp.invoke()
        out = interp.get_tensor(interp.get_output_details()[0]["index"])
        np.testing.assert_allclose(out, model(batch), atol=1e-5)

def test_tflite_bad_arguments(compact, tmp_path):
    with pytest.raises(ValueError, match="Full int8 quantization needs representative_data"):
        tfc.export.tflite(compact, str(tmp_path / "a.tflite"), quantization="int8")
    with pytest.raises(ValueError, match="Unknown quantization. Received: quantization='int4'"):
        tfc.export.tflite(compact, str(tmp_path / "b.tflite"), quantization="int4")
    for quantization in (None, "dynamic"):  # before: the calibration data was ignored
        with pytest.raises(ValueError) as info:
            tfc.export.tflite(compact, str(tmp_path / "c.tflite"), quantization=quantization,
                              representative_data=[_x(8)])
        assert str(info.value) == (
            "representative_data calibrates the activation ranges of quantization='int8' "
            f"only; quantization={quantization!r} does not use it: leave it out (give "
            "check_data for the batch the file is run on). Received: "
            f"quantization={quantization!r}, representative_data=list of 1 (ndarray of "
            "shape (8, 12, 12, 3))"
        )
    assert not os.listdir(tmp_path)


def test_a_file_litert_cannot_run_is_one_error_and_not_written(compact, tmp_path, monkeypatch):
    tflite_lib = importlib.import_module("tfcompress.export.tflite")  # (not the function)

    def refused(*args, **kwargs):
        raise RuntimeError("failed to create XNNPACK runtime\nNode number 11 (...) failed")

    monkeypatch.setattr(tflite_lib, "run_tflite", refused)
    rep = [_x()]
    with pytest.raises(ValueError, match=r"The int8 TFLite model of '.*' converted but does not "
                       r"run in LiteRT \(failed to create XNNPACK runtime\); .*d.tflite was not "
                       r"written. Full-integer quantization needs moderate, finite activation"):
        tfc.export.tflite(compact, str(tmp_path / "d.tflite"), quantization="int8",
                          representative_data=rep)
    assert not os.listdir(tmp_path)


def test_a_layer_tflite_cannot_convert_is_a_short_error_naming_the_op(tmp_path):
    """A MaxPooling3D (no TFLite builtin): the converter's 3-4 KB MLIR dump came through
    as is; now one short line names the model, the TF op and its scope (the layer's name),
    and the dump is the chained cause."""
    inp = keras.Input((4, 4, 4, 2))
    model = keras.Model(inp, layers.Flatten()(layers.MaxPooling3D(2, name="pool3d")(inp)),
                        name="cube")
    path = str(tmp_path / "cube.tflite")
    with pytest.raises(ValueError) as info:
        tfc.export.tflite(model, path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 500
    assert message.startswith(
        "Cannot convert the float32 TFLite model of 'cube': TFLite's builtin ops cannot run "
        "tf.MaxPool3D (at "
    )
    assert "pool3d" in message.split("(at ")[1].split(")")[0]
    assert message.endswith(
        ", made by a layer TFLite has no kernel for (e.g. a dilated Conv2DTranspose or "
        f"Conv3D, MaxPooling3D); {path} was not written (the converter's full report is "
        "the error this one was raised from)."
    )
    assert type(info.value.__cause__).__name__ == "ConverterError"
    assert "MaxPool3D" in str(info.value.__cause__)
    assert not os.listdir(tmp_path)


def test_another_converter_error_is_its_first_error_line(compact, tmp_path, monkeypatch):
    from tensorflow.lite.python.convert_phase import ConverterError

    report = ("Could not translate MLIR to FlatBuffer.<unknown>:0: error: loc(fused[\"X\"]): "
              "'tfl.x' op operand #0 must be a tensor\n<unknown>:0: note: see current "
              "operation: " + "%0 = ...\n" * 300)

    class Fails:
        def convert(self):
            raise ConverterError(report)

    tflite_lib = importlib.import_module("tfcompress.export.tflite")  # (not the function)
    monkeypatch.setattr(tflite_lib, "_converter", lambda *args: Fails())
    path = str(tmp_path / "e.tflite")
    with pytest.raises(ValueError) as info:
        tfc.export.tflite(compact, path, quantization="dynamic")
    assert str(info.value) == (
        f"Cannot convert the dynamic TFLite model of '{compact.name}': "
        "loc(fused[\"X\"]): 'tfl.x' op operand #0 must be a tensor; "
        f"{path} was not written (the converter's full report is the error this one was "
        "raised from)."
    )
    assert info.value.__cause__.args == (report,)


def test_keras_file_roundtrip_and_suffix(compact, tmp_path):
    path = tfc.export.keras_file(compact, str(tmp_path / "c.keras"))
    np.testing.assert_allclose(keras.models.load_model(path)(_x()), compact(_x()), rtol=1e-6)
    with pytest.raises(ValueError, match="must end in '.keras'. Received: path="):
        tfc.export.keras_file(compact, str(tmp_path / "c.h5"))


@pytest.mark.parametrize("name", ["sm", "tempfiles"])
def test_tflite_takes_any_file_name(compact, tmp_path, name):
    # the converter's SavedModel was written at "<hidden folder>/sm", beside the result
    # "<hidden folder>/<name>": a file named sm collided with it (IsADirectoryError)
    check = tfc.export.tflite(compact, str(tmp_path / name), check_data=_x())
    assert os.path.isfile(tmp_path / name) and check.size_bytes > 0
    assert os.listdir(tmp_path) == [name]


def test_failed_export_leaves_nothing_behind(compact, tmp_path, monkeypatch):
    target = tmp_path / "sm"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        tfc.export.saved_model(compact, str(target))
    assert os.listdir(tmp_path) == []


def test_failed_export_keeps_previous_file(compact, tmp_path, monkeypatch):
    path = tmp_path / "c.keras"
    tfc.export.keras_file(compact, str(path))
    before = path.read_bytes()
    monkeypatch.setattr(keras.Model, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        tfc.export.keras_file(compact, str(path))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.keras"]


def _files(folder):
    return {os.path.relpath(os.path.join(root, n), folder)
            for root, dirs, files in os.walk(folder) for n in dirs + files}


def test_saved_model_replaces_an_earlier_one_or_an_empty_folder(compact, tmp_path):
    (tmp_path / "empty").mkdir()
    for name in ("empty", "sm", "sm"):  # the second "sm": over the first export
        path = tfc.export.saved_model(compact, str(tmp_path / name))
        np.testing.assert_allclose(tfc.export.serve(path, _x())[0], compact(_x()), rtol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["empty", "sm"]


def test_saved_model_refuses_a_folder_of_other_files_and_leaves_them(compact, tmp_path):
    """`saved_model(compact, "out")` onto an `out/` of earlier exports and notes deleted
    them: only the SavedModel was left."""
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "m.tflite").write_bytes(b"earlier export")
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match=rf"{out} is a folder that holds other files "
                       r"\(m.tflite, notes.txt, runs/\) and is not a SavedModel"):
        tfc.export.saved_model(compact, str(out))
    assert _files(out) == {"m.tflite", "notes.txt", "runs"} and os.listdir(tmp_path) == ["out"]
    assert (out / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize("given", ["", "."])
def test_saved_model_refuses_the_working_directory(compact, tmp_path, monkeypatch, given):
    """`saved_model(compact, ".")` (or "") put the SavedModel in the working directory's
    place: the project's files were deleted."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print('my code')")
    monkeypatch.chdir(project)
    with pytest.raises(PermissionError, match=rf"'{given}' is the working directory "
                       rf"\({project}\): it is never replaced"):
        tfc.export.saved_model(compact, given)
    assert _files(tmp_path) == {"project", os.path.join("project", "train.py")}
    assert os.getcwd() == str(project)


def test_export_path_errors_name_the_path_given(compact, tmp_path):
    """A symlink to a folder was refused as "is a file"; a file standing for a parent
    folder gave a bare `[Errno 17] File exists: '.../notes'`."""
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "exports")
    with pytest.raises(FileExistsError, match=rf"{tmp_path}/exports is a symbolic link "
                       rf"\(to {tmp_path}/real\)"):
        tfc.export.saved_model(compact, str(tmp_path / "exports"))
    (tmp_path / "notes").write_text("x")
    for export, name in [(tfc.export.saved_model, "sm"), (tfc.export.tflite, "m.tflite")]:
        path = tmp_path / "notes" / name
        with pytest.raises(NotADirectoryError, match=rf"{path} cannot be written: "
                           rf"{tmp_path}/notes is a file, not a folder"):
            export(compact, str(path))
    assert _files(tmp_path) == {"real", "exports", "notes"}


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc here")
def test_an_unwritable_export_path_is_named_not_its_hidden_temporary(compact):
    """It named '/proc/.sm.tmp-23244-1d2rlogc'."""
    for export, path in [(tfc.export.saved_model, "/proc/sm"),
                         (tfc.export.tflite, "/proc/m.tflite")]:
        with pytest.raises(OSError, match=rf"^\[Errno \d+\] {path} cannot be written: ") as info:
            export(compact, path)
        assert ".tmp-" not in str(info.value) and info.value.__cause__ is not None


def test_unnamed_inputs_sequential_models_and_generator_calibration(tmp_path):
    """The signature's input is the Input layer's name, the same after fold_batchnorm (it
    was the tensor's process-wide "keras_tensor_17", and "input_layer_1" folded); a
    Sequential exports (it has no output_names); int8 calibration takes a generator
    (the check batch read it again, empty: StopIteration)."""
    inp = keras.Input((8, 8, 3))  # no name
    model = keras.Model(inp, layers.BatchNormalization()(layers.Conv2D(4, 3)(inp)))
    names = []
    for fold in (False, True):
        path = tfc.export.saved_model(model, str(tmp_path / f"sm{fold}"), fold_batchnorm=fold)
        signature = tf.saved_model.load(path).signatures["serving_default"]
        names.append(list(signature.structured_input_signature[1]))
    assert names == [[model.layers[0].name]] * 2
    seq = keras.Sequential([keras.Input((4,)), layers.Dense(3, name="out")])
    x = np.random.default_rng(0).uniform(size=(2, 4)).astype("float32")
    served = tfc.export.serve(tfc.export.saved_model(seq, str(tmp_path / "seq")), x)[0]
    np.testing.assert_allclose(served, seq(x), atol=1e-6)
    tfc.export.tflite(seq, str(tmp_path / "seq.tflite"))
    batches = (np.random.default_rng(i).uniform(size=(4, 4)).astype("float32") for i in range(3))
    check = tfc.export.tflite(seq, str(tmp_path / "q.tflite"), quantization="int8",
                              representative_data=batches)
    assert check.output_shapes == [[4, 3]]


def test_an_input_of_unknown_size_asks_for_check_data(tmp_path):
    inputs = keras.Input((None, None, 3), name="image")
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inputs)))
    with pytest.raises(ValueError, match=r"input of '.*' has unknown sizes \(None, None, None, "
                                         r"3\): give check_data"):  # was a 1x1 zeros batch
        tfc.export.tflite(model, str(tmp_path / "a.tflite"))  # LiteRT could not prepare
    assert not os.listdir(tmp_path)
    x = np.random.default_rng(0).uniform(size=(2, 9, 9, 3)).astype("float32")
    check = tfc.export.tflite(model, str(tmp_path / "a.tflite"), check_data=x)
    assert check.max_abs_error < 1e-5 and check.max_rel_error < 1e-5


@pytest.mark.parametrize("quantization", ["none", "dynamic", "int8"])
def test_export_command_calibration_data_is_the_check_batch_unless_int8(quantization, tmp_path):
    """`export --calibration_data` calibrates int8 and gives the TFLite check batch for
    every quantization; the library refuses representative_data without int8, so the
    command passes it as representative_data for int8 only."""
    from tfcompress import training

    from .test_scripts_helpers import make_fmnist, parse

    data = make_fmnist(str(tmp_path / "data"), num_train=8, num_test=8, num_shards=1)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3, activation="relu")(inputs))
    model = keras.Model(inputs, layers.Dense(3)(x))
    model.save(str(tmp_path / "m.keras"))
    summary = training.export(parse("export", [
        f"--checkpoint={tmp_path / 'm.keras'}", f"--output_dir={tmp_path / 'out'}",
        "--formats=tflite", f"--quantization={quantization}",
        f"--calibration_data={data}/test-*.tfrecord"]))  # fmt: skip
    assert summary["tflite"]["quantization"] == quantization
    assert os.path.getsize(summary["tflite"]["path"]) == summary["tflite"]["size_bytes"]


def test_run_tflite_gives_the_models_output_order_when_given_the_model(tmp_path):
    # the file keys its outputs by name and keeps no order: without the model they come
    # sorted by name ("box" before "logits"), with it in the model's order
    inp = keras.Input((6,))
    hidden = layers.Dense(8, activation="relu")(inp)
    model = keras.Model(inp, [layers.Dense(4, name="logits")(hidden),
                              layers.Dense(2, name="box")(hidden)])  # fmt: skip
    path = str(tmp_path / "two.tflite")
    check = tfc.export.tflite(model, path)
    assert check.output_shapes == [[1, 4], [1, 2]] and check.max_rel_error <= 1e-6
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    assert [y.shape for y in tfc.export.run_tflite(path, x)] == [(5, 2), (5, 4)]
    ours = tfc.export.run_tflite(path, x, model)
    for lite, keras_out in zip(ours, model(x), strict=True):
        np.testing.assert_allclose(lite, keras_out, rtol=1e-5, atol=1e-5)
    other = keras.Model(inp, layers.Dense(4, name="scores")(hidden))
    with pytest.raises(ValueError, match=r"The TFLite file's outputs are \['box', 'logits'\], "
                       r"not the model's \['scores'\]: give run_tflite the model the file "
                       "was converted from"):  # fmt: skip
        tfc.export.run_tflite(path, x, other)


def test_serve_checks_each_input_against_the_signature(compact, tmp_path):
    """One image without its batch axis aborted the process (a TensorFlow check failure
    in the conv kernel, exit 134); [x] served one row of the batch; a width of 8 for 12
    ran; an unknown input name was a bare KeyError."""
    path = tfc.export.saved_model(compact, str(tmp_path / "sm"))
    x = _x(2)
    for bad in (x[0], x[:, :8]):
        with pytest.raises(ValueError, match=re.escape(
                "Input 'image' of the signature takes shape (None, 12, 12, 3) (None: any "
                f"size; the first axis is the batch). Received: shape {bad.shape}")):  # fmt: skip
            tfc.export.serve(path, bad)
    expected = tfc.export.serve(path, x)[0]
    assert expected.shape == (2, 4)
    np.testing.assert_array_equal(tfc.export.serve(path, [x])[0], expected)
    np.testing.assert_array_equal(tfc.export.serve(path, {"image": x})[0], expected)
    with pytest.raises(ValueError, match=re.escape(
            "The signature has no input 'img'. Its inputs: ['image']. Received: inputs with "
            "keys ['img']")):  # fmt: skip
        tfc.export.serve(path, {"img": x})
    with pytest.raises(ValueError, match=re.escape(
            "The signature takes inputs ['image']: pass one array for a single input, or a "
            "dict keyed by input name. Received: inputs=list of 2")):  # fmt: skip
        tfc.export.serve(path, [x, x])


def test_input_names_that_are_not_python_names_export_and_serve_by_their_keras_names(tmp_path):
    """An Input named "in" (a Python keyword) failed in TensorFlow ("'in' is not a valid
    parameter name"); "img-a" exported as "img_a", and serve refused "img-a"."""
    a, b = keras.Input((4,), name="img-a"), keras.Input((4,), name="in")
    model = keras.Model([a, b], layers.Dense(2)(layers.Concatenate()([a, b])))
    x = np.random.default_rng(0).uniform(size=(3, 4)).astype("float32")
    path = tfc.export.saved_model(model, str(tmp_path / "sm"))
    keys = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]
    assert sorted(keys) == ["img_a", "in_"]
    served = tfc.export.serve(path, {"img-a": x, "in": 2 * x})[0]
    np.testing.assert_allclose(served, model([x, 2 * x]), atol=1e-6)
    np.testing.assert_array_equal(served, tfc.export.serve(path, {"img_a": x, "in_": 2 * x})[0])
    c, d = keras.Input((4,), name="a-b"), keras.Input((4,), name="a_b")
    clash = keras.Model([c, d], layers.Add()([c, d]))
    with pytest.raises(ValueError, match=re.escape(
            f"Inputs 'a-b' and 'a_b' of model '{clash.name}' both take the signature key "
            "'a_b' (keys are Python names: other characters become '_'): rename one of the "
            "keras.Input layers.")):  # fmt: skip
        tfc.export.saved_model(clash, str(tmp_path / "clash"))
    assert sorted(os.listdir(tmp_path)) == ["sm"]


def test_tflite_reads_representative_data_as_input_batches(compact, tmp_path):
    """One array is cut into batches (it was iterated image by image: "input->dims->size
    != 4"), a dataset of (x, y) gives its x, and no batch at all is named (it was a bare
    StopIteration)."""
    x = _x(8)
    one = tfc.export.tflite(compact, str(tmp_path / "a.tflite"), quantization="int8",
                            representative_data=x)  # fmt: skip
    pairs = tf.data.Dataset.from_tensor_slices((x, np.zeros(8))).batch(4)
    two = tfc.export.tflite(compact, str(tmp_path / "b.tflite"), quantization="int8",
                            representative_data=pairs)  # fmt: skip
    assert one.output_shapes == [[8, 4]]  # run on the first batch: all 8 (batches of 32)
    assert two.output_shapes == [[4, 4]]
    with pytest.raises(ValueError, match=re.escape(
            "tflite's representative_data holds no batch: give a few input batches to "
            "calibrate on.")):  # fmt: skip
        tfc.export.tflite(compact, str(tmp_path / "c.tflite"), quantization="int8",
                          representative_data=[])  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(
            "tflite's representative_data must be an iterable of input batches")):
        tfc.export.tflite(compact, str(tmp_path / "d.tflite"), quantization="int8",
                          representative_data=[x[0]])  # one image: no batch axis
    assert sorted(os.listdir(tmp_path)) == ["a.tflite", "b.tflite"]


def test_run_tflite_checks_the_input_shape(compact, tmp_path):
    path = str(tmp_path / "m.tflite")
    tfc.export.tflite(compact, path)
    x = _x(2)
    for bad in (x[:, :8], [x], x[0]):
        with pytest.raises(ValueError, match=re.escape(
                "The file's input takes batches of shape (None, 12, 12, 3) (None: any size). "
                f"Received: x of shape {np.asarray(bad).shape}")):  # fmt: skip
            tfc.export.run_tflite(path, bad)
    assert tfc.export.run_tflite(path, x)[0].shape == (2, 4)


def test_exporters_refuse_a_subclassed_model_by_name(tmp_path):
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 4), "float32"))
    for export, who in ((tfc.export.saved_model, "saved_model"), (tfc.export.tflite, "tflite"),
                        (lambda m, _: tfc.export.fold_batchnorm(m), "fold_batchnorm")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(
                f"{who} needs a functional or Sequential model; 'net' (Net) is a subclassed "
                "model")):  # fmt: skip
            export(net, str(tmp_path / "out"))
    assert not os.listdir(tmp_path)
