"""Exports killed (SIGKILL) at each step of the replace, over an older export: the path holds
the old artefact or the new one, whole; the next export leaves nothing else beside it and
nothing in $TMPDIR.

One subprocess (TMPDIR pointed at a test folder) imports TensorFlow once and forks a child
per kill, each child replacing `tfcompress.atomic._fault_point` with a SIGKILL at its point;
the children that check and re-export are forked too (the parent runs no TensorFlow op).
"""

import json
import os
import shutil
import subprocess
import sys
import traceback

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTEFACT = {"saved_model": "saved_model", "keras": "model.keras", "tflite": "model.tflite"}
# (exporter, fault point, its occurrence, exchange supported, what the path holds after it)
CASES = [
    ("saved_model", "replace:before", 1, True, "old"),
    ("saved_model", "replace:exchanged", 1, True, "new"),
    ("saved_model", "replace:done", 1, True, "new"),
    ("saved_model", "replace:aside", 1, False, "old"),  # the fallback: after `recover`
    ("saved_model", "replace:exchanged", 1, False, "new"),
    ("keras", "replace:before", 1, True, "old"),
    ("keras", "replace:done", 1, True, "new"),
    ("tflite", "replace:done", 1, True, "old"),  # mid-conversion: its SavedModel written
    ("tflite", "converter", 1, True, "old"),  # inside TFLiteConverter.convert
    ("tflite", "replace:before", 2, True, "old"),
    ("tflite", "replace:done", 2, True, "new"),
]
X = [[0.1 * i - 0.3 * j for i in range(6)] for j in range(2)]


def _model(seed):
    import keras

    keras.utils.set_random_seed(seed)
    x = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(4, activation="relu")(x)
    return keras.Model(x, keras.layers.Dense(3, name="logits")(hidden))


def _export(kind, model, path):
    import tfcompress as tfc

    {"saved_model": tfc.export.saved_model, "keras": tfc.export.keras_file}.get(
        kind, tfc.export.tflite
    )(model, path)


def _outputs(kind, path):
    import keras
    import numpy as np

    import tfcompress as tfc

    x = np.asarray(X, np.float32)
    if kind == "saved_model":
        return tfc.export.serve(path, x)[0].tolist()
    if kind == "keras":
        return np.asarray(keras.saving.load_model(path)(x)).tolist()
    return tfc.export.run_tflite(path, x)[0].tolist()


def _holds(kind, path, refs):
    """ "old", "new", "missing", "other" or the error of loading `path`."""
    import numpy as np

    if not os.path.lexists(path):
        return "missing"
    try:
        out = _outputs(kind, path)
    except Exception as e:  # noqa: BLE001 (reported to the test)
        return f"error: {type(e).__name__}: {e}"[:300]
    for name in ("old", "new"):
        if np.allclose(out, refs[kind][name], atol=1e-5):
            return name
    return "other"


def _in_child(fn):
    """Runs `fn` in a forked child; its exit status, -signal if killed."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _kill_at(point, occurrence):
    import signal

    from tfcompress import atomic

    if point == "converter":  # after the MLIR conversion, before its optimization passes
        from tensorflow.lite.python import lite

        def kill(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        lite.TFLiteConverterBase._optimize_tflite_model = kill
        return

    seen = [0]

    def fault(name):
        if name == point:
            seen[0] += 1
            if seen[0] == occurrence:
                os.kill(os.getpid(), signal.SIGKILL)

    atomic._fault_point = fault


def _drive(work):
    """The subprocess: old and new references, a kill per case, checks, the next export."""
    import tfcompress  # noqa: F401 (TensorFlow imported once, before the forks)

    def path(i):
        return os.path.join(work, "cases", str(i), ARTEFACT[CASES[i][0]])

    def save(name, data):
        with open(os.path.join(work, name), "w") as f:
            json.dump(data, f)

    def references():
        refs = {}
        for kind, name in ARTEFACT.items():
            refs[kind] = {}
            for age, seed in (("old", 1), ("new", 2)):
                _export(kind, _model(seed), os.path.join(work, age, name))
                refs[kind][age] = _outputs(kind, os.path.join(work, age, name))
        save("refs.json", refs)

    def kill(i):
        kind, point, occurrence, exchange, _ = CASES[i]
        from tfcompress import atomic

        if not exchange:
            atomic._renameat2 = None
        model = _model(2)
        _kill_at(point, occurrence)
        _export(kind, model, path(i))

    def check(name):
        from tfcompress import atomic

        with open(os.path.join(work, "refs.json")) as f:
            refs = json.load(f)
        held = []
        for i, case in enumerate(CASES):
            if name == "after_kill" and not case[3]:
                atomic.recover(path(i))  # the fallback's repair (each export runs it first)
            held.append(_holds(case[0], path(i), refs))
        save(f"{name}.json", held)

    def next_exports():
        model = _model(2)
        for i, case in enumerate(CASES):
            _export(case[0], model, path(i))

    report = {"references": _in_child(references), "kills": []}
    for i, case in enumerate(CASES):
        src = os.path.join(work, "old", ARTEFACT[case[0]])
        dst = path(i)
        os.makedirs(os.path.dirname(dst))
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
        report["kills"].append(_in_child(lambda i=i: kill(i)))
    report["check_after_kill"] = _in_child(lambda: check("after_kill"))
    report["next_exports"] = _in_child(next_exports)
    report["check_after_next"] = _in_child(lambda: check("after_next"))
    report["beside"] = [sorted(os.listdir(os.path.dirname(path(i)))) for i in range(len(CASES))]
    report["tmpdir"] = sorted(os.listdir(os.environ["TMPDIR"]))
    save("report.json", report)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    work = tmp_path_factory.mktemp("kill_exports")
    (work / "T").mkdir()
    script = f"import sys; sys.path.insert(0, {ROOT!r}); from tests.test_kill_exports import _drive; _drive({str(work)!r})"  # noqa: E501
    env = {**os.environ, "TMPDIR": str(work / "T"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0 and (work / "report.json").exists(), done.stderr[-3000:]
    out = {}
    for name in ("report", "after_kill", "after_next"):
        with open(work / f"{name}.json") as f:
            out[name] = json.load(f)
    out["stderr"] = done.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(ARTEFACT))
def test_a_killed_export_leaves_the_old_or_the_new_whole_and_nothing_else(report, kind):
    r = report["report"]
    assert r["references"] == 0 and r["next_exports"] == 0, report["stderr"]
    assert r["check_after_kill"] == 0 and r["check_after_next"] == 0, report["stderr"]
    for i, case in enumerate(CASES):
        if case[0] != kind:
            continue
        where = f"{kind} killed at {case[1]} #{case[2]} (exchange={case[3]})"
        assert r["kills"][i] == -9, f"{where}: the point was not reached ({report['stderr']})"
        assert report["after_kill"][i] == case[4], where
        assert report["after_next"][i] == "new", where
        assert r["beside"][i] == [ARTEFACT[kind]], where  # no .tmp-* / .old-* left
    assert r["tmpdir"] == []  # nothing of TensorFlow's, Keras's or the converter's
