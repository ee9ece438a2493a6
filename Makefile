# tfcompress developer commands. `make test` works on a fresh Debian machine (run as root).
VENV ?= .venv
PY := $(VENV)/bin/python
FMNIST_DIR := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?= -n 2 --durations=15
# The exact versions the suite ran green with (setup.py keeps ranges for users).
CONSTRAINTS := constraints.txt

.PHONY: setup data test check lint demo bench lock install-check clean

setup: $(VENV)/.installed

# The packages are installed by uv (pinned below): the same versions (constraints.txt) as
# pip's, in ~20 s instead of pip's ~2 min on a fresh machine. If uv cannot install them,
# pip does. --compile-bytecode writes the .pyc files at install, as pip does: uv does not by
# default, and where PYTHONDONTWRITEBYTECODE is set (this machine) every process would
# compile TensorFlow's sources again on import (`import tfcompress` 11.1 s of CPU instead
# of 4.4-6.1 s; the suite starts ~100 Python processes).
UV := uv==0.13.9
$(VENV)/.installed: setup.py $(CONSTRAINTS)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c $(CONSTRAINTS) --upgrade pip $(UV)
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -c $(CONSTRAINTS) -e ".[test]" || \
	  $(PY) -m pip install -q -c $(CONSTRAINTS) -e ".[test]"
	touch $@

# Regenerates constraints.txt: the newest versions within setup.py's ranges, installed in a
# throw-away venv and frozen. Run `make test` before committing the new file.
LOCK_VENV := .venv-lock
lock:
	rm -rf $(LOCK_VENV)
	python3 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q ".[test]"
	{ sed -n '/^#/p' $(CONSTRAINTS); $(LOCK_VENV)/bin/python -m pip freeze --all --exclude tfcompress; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

# A user's install: `pip install .` (no extra; the versions of constraints.txt) in a
# throw-away venv, then `import tfcompress`, LeNet-5 and the quick start (wrap, prune,
# strip, SavedModel, TFLite) with the installed package, and the import times
# (.ci/install_check.py). CI runs it after `make test` (.ci/run), outside its budget.
CHECK_VENV := .venv-install-check
install-check:
	rm -rf $(CHECK_VENV)
	python3 -m venv $(CHECK_VENV)
	$(CHECK_VENV)/bin/python -m pip install -q -c $(CONSTRAINTS) --upgrade pip
	$(CHECK_VENV)/bin/python -m pip install -q -c $(CONSTRAINTS) .
	TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=tensorflow $(CHECK_VENV)/bin/python .ci/install_check.py
	rm -rf $(CHECK_VENV)

# Real offline data: Debian's Fashion-MNIST (60k/10k idx.gz files).
data:
	@test -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist)

test: setup data
	TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=tensorflow $(PY) -m pytest $(PYTEST_ARGS) tests

# The fast contracts: every test not marked `slow` (training runs, the keras.applications
# sweep, script pipelines), under 3 minutes on 2 cores.
check: setup data
	TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=tensorflow $(PY) -m pytest $(PYTEST_ARGS) -m "not slow" tests

lint: setup
	$(PY) -m ruff check tfcompress tfrecords_tools tests benchmarks notebooks

# The scripts demo on a smaller budget (a 1/8-width VGG-16-BN, 300 steps per epoch), then
# the quick methods table (issue #3's "short version", 12k/2k images); the demo ends by
# printing the Deep Compression recipe's commands (configs/*_fmnist_deep_compression.cfg): 7 min 41 s together
# on 2 cores at load average 2.4-5.2; longer under more load (README, "make demo").
# Its runs go to $(DEMO_OUT) (a re-run resumes them; remove the directory to start over).
# TF_CPP_MIN_LOG_LEVEL=3 keeps TensorFlow's start-up noise (the cuInit line) out of what
# demo and bench print; the tests keep level 2, so TensorFlow's errors show in a failure.
DEMO_OUT ?= out/make_demo
demo: setup data
	TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=tensorflow $(PY) -m tfcompress.scripts.demo \
	  --width_multiplier=0.125 --steps_per_epoch=300 --output_dir=$(DEMO_OUT)
	TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=tensorflow $(PY) benchmarks/fmnist_methods.py --quick

# Fashion-MNIST methods table (quick: 12k/2k images, 4.5 min at load ~4 on 2 cores) and the
# wrapped-model step overhead.
bench: setup data
	TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=tensorflow $(PY) benchmarks/fmnist_methods.py --quick
	TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=tensorflow $(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(CHECK_VENV) .pytest_cache build *.egg-info
