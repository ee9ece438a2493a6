"""The install contract: core requirements are what `import tfcompress` and the quick start
need (ranges, no pins), the baselines' TFMOT / tf-keras and the TFDS converter are extras,
`[test]` brings what the suite and `make demo` / `make bench` run, and constraints.txt pins
every one of them inside its range. Read from the metadata pip builds from setup.py now (not
the installed, possibly stale, dist), offline."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE_ONLY = {"tensorflow-model-optimization", "tf-keras", "tensorflow-datasets"}
# imported only by the baselines / the TFDS converter: never by `import tfcompress`
BASELINE_MODULES = ("tensorflow_model_optimization", "tf_keras", "tensorflow_datasets")


@pytest.fixture(scope="module")
def requirements(tmp_path_factory):
    """{extra or "": [Requirement]} from `pip install --dry-run --report` on the checkout."""
    report = tmp_path_factory.mktemp("pip") / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--no-deps", "--no-index",
         "--no-build-isolation", "--ignore-installed", "--report", str(report), ROOT],
        check=True, capture_output=True, text=True,
    )
    (item,) = json.loads(report.read_text())["install"]
    by_extra = {}
    for line in item["metadata"]["requires_dist"]:
        req = Requirement(line)
        extra = ""
        if req.marker is not None:
            extra = next(e for e in item["metadata"]["provides_extra"]
                         if req.marker.evaluate({"extra": e}))
        by_extra.setdefault(extra, []).append(req)
    return by_extra


def _names(reqs):
    return {canonicalize_name(r.name) for r in reqs}


def _constraints():
    pins = {}
    with open(os.path.join(ROOT, "constraints.txt")) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                name, version = line.split("==")
                pins[canonicalize_name(name)] = version
    return pins


def test_core_is_lean_and_unpinned(requirements):
    core = requirements[""]
    assert _names(core) & BASELINE_ONLY == set()
    assert {"tensorflow", "keras", "ai-edge-litert", "numpy"} <= _names(core)
    pinned = [str(r) for r in core if any(s.operator in ("==", "===") for s in r.specifier)]
    assert pinned == [], f"core requirements must be ranges, not pins: {pinned}"


def test_extras(requirements):
    assert _names(requirements["tfmot"]) == {"tensorflow-model-optimization", "tf-keras"}
    assert _names(requirements["tfds"]) == {"tensorflow-datasets"}
    assert _names(requirements["hub"]) == {"keras-hub"}
    notebooks = {"nbclient", "ipykernel", "nbformat", "tensorboard"}
    assert notebooks <= _names(requirements["notebooks"])
    # `make test` installs `.[test]`: the tools, what the suite and the baselines import,
    # and what executes notebooks/ (tests/test_notebooks.py)
    assert {"pytest", "pytest-xdist", "ruff"} | BASELINE_ONLY | notebooks <= _names(
        requirements["test"]
    )


def test_constraints_pin_core_and_test_inside_their_ranges(requirements):
    pins = _constraints()
    for req in requirements[""] + requirements["test"]:
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt has no pin for {req.name} (setup.py: {req})"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside setup.py's {req}"
        )


@pytest.mark.slow  # a fresh interpreter imports TensorFlow (~5-9 s on 2 loaded cores)
def test_import_and_quick_start_need_no_extra():
    code = textwrap.dedent(f"""
        import sys
        import tfcompress as tfc
        lazy = [m for m in ("tfcompress.models", "tfcompress.data") if m in sys.modules]
        model = tfc.models.build("lenet5", num_classes=10, input_shape=(28, 28, 1))
        masked = tfc.wrap(model, method="l1_filter")
        tfc.prune(masked, ratio=0.5)
        compact = tfc.strip(masked)
        assert compact.count_params() < model.count_params()
        print(lazy, [m for m in {BASELINE_MODULES!r} if m in sys.modules])
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # neither the model zoo nor the data pipeline loads with `import tfcompress`, and no
    # extra's module loads at all
    assert proc.stdout.strip().splitlines()[-1] == "[] []"


def test_baseline_names_its_extra_when_missing():
    code = ("import runpy, sys; sys.modules['tensorflow_model_optimization'] = None; "
            "runpy.run_path('benchmarks/tfmot_baseline.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode != 0
    assert ("ImportError: benchmarks/tfmot_baseline.py needs tensorflow-model-optimization "
            "and tf-keras: pip install 'tfcompress[tfmot]'") in proc.stderr
