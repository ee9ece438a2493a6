"""Shared pytest setup: quiet TensorFlow, Keras 3 on the TF backend, fixed seeds."""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Grappler (TensorFlow's graph optimizer) runs on the first call of every tf.function: a
# test's few steps pay it and never get it back (a small config run: 43.5 -> 31.2 s of CPU
# without it; test_configs' small runs + test_applications, -n 2: 208 -> 167 s). It only
# rewrites graphs into equivalent ones, so tests run without it; the tests that train for
# hundreds of steps turn it back on (`graph_optimizations`), as users run.
# TFC_TEST_GRAPPLER=1 keeps it on everywhere.
_GRAPPLER = os.environ.get("TFC_TEST_GRAPPLER", "0") == "1"
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not _GRAPPLER})

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"

# Tests (node id prefixes) that share a module fixture costing tens of seconds: under
# `pytest -n`, each group runs on one worker, so the fixture is built once, not once per
# worker. (xdist's own `xdist_group` mark does not group under pytest 9.)
ONE_WORKER = (
    "tests/test_plain_keras_export.py::",  # every model stripped, exported, loaded: ~45 s
    "tests/test_mirrored.py::",  # MirroredStrategy in a subprocess: ~20 s
    "tests/test_scripts_errors.py::",  # data and a training run
    "tests/test_hostile_errors.py::test_a_damaged_checkpoint_is_named_and_left_alone",
    "tests/test_hostile_errors.py::test_a_readable_checkpoint_of_another_model",
)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's `load` scheduling, except that the tests of an `ONE_WORKER` module go to one
    worker together."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            if nodeid.startswith(ONE_WORKER):
                return nodeid.split("::", 1)[0]  # the module: one work unit
            return nodeid  # one test: one work unit, as `load` hands them out

    return OneWorkerGroups(config, log)


# A full gc.collect() costs 0.2-0.6 s once TensorFlow is loaded: after every test it was a
# fifth of the suite's time (487 s of 2,237 s summed over the 752 tests). Keras's state is
# reset after every test, the garbage collected every `GC_EVERY` tests. What survives a
# collection is frozen (left out of later ones): a worker keeps ~1 million objects alive
# after a few hundred tests (the data pipeline's kept traced functions, TensorFlow's own
# caches), which every full collection walked again, at ~2 s each (Python's own, and the
# tests' own `gc.collect()` / `clear_session()`: the graph order test took 50-58 s in the
# suite for 16 s alone). Over 300 tests of a worker in one process: 39.2 s of full
# collections -> 15.8 s (unfreezing at each). Every `UNFREEZE_EVERY`-th collection takes
# in the frozen objects too (~2 s), for what died among them (a module fixture's models).
GC_EVERY = 50
UNFREEZE_EVERY = 5
_tests_done = [0]
# Python's own collections: the objects of the imports (~340k: TensorFlow, Keras, the test
# modules) are frozen out of them once collected, and a collection starts after 50,000
# allocations instead of 700. Building and tracing models keeps many objects alive, so
# full collections came every ~2 tests at ~0.4 s each: 11 % of a process's time
# (test_applications, test_export, test_codec and test_layers in one process: 24.5 s of
# 222 s in collections; with these settings 13.4 s; A/B twice each, CPU: four applications
# 74.0 / 71.4 -> 71.1 / 67.4 s, the AdapNet++ learning test 89.1 / 84.6 -> 83.3 / 81.2 s).
# Memory stays bounded by the collections above.
GC_THRESHOLD = (50_000, 20, 10)


def pytest_collection_finish(session):
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    yield
    keras.backend.clear_session(free_memory=False)
    _tests_done[0] += 1
    if _tests_done[0] % GC_EVERY == 0:
        if _tests_done[0] % (GC_EVERY * UNFREEZE_EVERY) == 0:
            gc.unfreeze()
        gc.collect()
        gc.freeze()


@pytest.fixture
def deterministic():
    """Op-deterministic TensorFlow for a test that trains: with the seeds above and a fixed
    data order, every run on one machine computes the same numbers."""
    import tensorflow as tf
    from tensorflow.python.framework import config  # disabling is not in tf's public API

    tf.config.experimental.enable_op_determinism()
    yield
    config.disable_op_determinism()  # later tests in this worker run as usual


@pytest.fixture
def graph_optimizations():
    """Grappler on for a test that trains long enough to earn its cost back."""
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
    yield
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": not _GRAPPLER})


@pytest.fixture
def mixed_float16():
    """Keras's global dtype policy mixed_float16 for one test (float32 after it)."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def fmnist_dir():
    if not os.path.exists(os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz")):
        pytest.fail(f"Fashion-MNIST is missing from {FMNIST_DIR}: run `make data`.")
    return FMNIST_DIR
