"""The clean-venv install check (`make install-check`): run by the python of a throw-away
venv that has `pip install .` and no extra. Imports the installed tfcompress (not the
checkout), builds LeNet-5, runs the quick start (wrap -> prune -> strip -> SavedModel and
TFLite) and prints the import times. Exits non-zero on any failure."""

import importlib.util
import os
import sys
import tempfile
import time

began = time.perf_counter()
import keras  # noqa: E402,F401
import tensorflow  # noqa: E402,F401

framework = time.perf_counter()
import tfcompress as tfc  # noqa: E402

imported = time.perf_counter()

# the installed package, not the source tree next to this script
site = os.path.realpath(sys.prefix)
assert os.path.realpath(tfc.__file__).startswith(site), (tfc.__file__, site)
# no extra came with `pip install .`
extras = ("tensorflow_model_optimization", "tf_keras", "tensorflow_datasets", "keras_hub",
          "nbclient", "pytest")
present = [name for name in extras if importlib.util.find_spec(name) is not None]
assert present == [], f"installed without extras, yet these import: {present}"

model = tfc.models.build("lenet5", num_classes=10, input_shape=(28, 28, 1))
masked = tfc.wrap(model, method="l1_filter")
tfc.prune(masked, ratio=0.5)
compact = tfc.strip(masked)
assert compact.count_params() < model.count_params()
with tempfile.TemporaryDirectory() as out:
    tfc.export.saved_model(compact, os.path.join(out, "saved_model"))
    check = tfc.export.tflite(compact, os.path.join(out, "lenet5.tflite"))
    assert check.max_abs_error < 1e-4, check
quick_start = time.perf_counter()

print(f"tfcompress {tfc.__version__} from {os.path.dirname(tfc.__file__)}")
print(f"parameters {model.count_params():,} -> {compact.count_params():,}; "
      f"TFLite {check.size_bytes:,} bytes")
print(f"import tensorflow + keras {1000 * (framework - began):.0f} ms, "
      f"import tfcompress on top {1000 * (imported - framework):.0f} ms; "
      f"quick start {quick_start - imported:.1f} s")
