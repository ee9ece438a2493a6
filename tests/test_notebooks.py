"""The notebooks run top to bottom in a Jupyter kernel of this interpreter (nbclient, the
runner of nbconvert / papermill), and are committed without outputs.

A failing cell fails the test: the notebooks assert their key figures (compact model
smaller, parity within tolerance, accuracy above a floor, bytes per stage), so a drift
in the library shows here. One test per notebook, so pytest-xdist spreads them.
"""

import glob
import json
import os
import resource
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
NOTEBOOKS = sorted(glob.glob(os.path.join(NOTEBOOK_DIR, "*.ipynb")))
KERNEL = "python3"  # ipykernel's own kernel: runs sys.executable, the venv's python
CELL_TIMEOUT = 600  # seconds; a notebook takes well under a minute here
# Notebooks that remove the temporary files they make (checked by running them with a
# TMPDIR of their own)
CLEANS_UP = ("06_latency_budget.ipynb",)


def _names():
    return [os.path.basename(p) for p in NOTEBOOKS]


def test_notebooks_are_there():
    assert _names() == [
        "01_quick_start.ipynb",
        "02_own_fit.ipynb",
        "03_recipes.ipynb",
        "04_deep_compression.ipynb",
        "05_transformers.ipynb",
        "06_latency_budget.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_names())
def test_notebook_is_committed_without_outputs(path):
    with open(path) as f:
        book = json.load(f)
    for i, cell in enumerate(book["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{os.path.basename(path)} cell {i} has outputs"
        assert cell.get("execution_count") is None, (
            f"{os.path.basename(path)} cell {i} has an execution count"
        )
    assert book["metadata"]["kernelspec"]["name"] == KERNEL


def test_kernel_is_this_interpreter():
    """The kernel `python3` resolves to ipykernel's spec in this venv, whose `python`
    jupyter_client replaces with sys.executable: the notebooks import the tfcompress
    installed here (checked by running a cell)."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    assert spec.argv[0] in ("python", "python3", sys.executable), spec.argv
    assert spec.argv[1:3] == ["-m", "ipykernel_launcher"], spec.argv
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; sys.executable")])
    NotebookClient(book, kernel_name=KERNEL, timeout=60).execute()
    assert book.cells[0].outputs[0]["data"]["text/plain"] == repr(sys.executable)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_names())
def test_notebook_runs(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": NOTEBOOK_DIR}},  # the kernel's working directory
    )
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's temporary files go here
    began, cpu = time.monotonic(), _children_cpu()
    client.execute()  # raises CellExecutionError naming the cell and its traceback
    if os.path.basename(path) in CLEANS_UP:
        assert os.listdir(tmp_path) == [], f"{os.path.basename(path)} left temporary files"
    # the kernel (and the processes it ran) are reaped by now: their CPU time counts
    print(f"{os.path.basename(path)}: {time.monotonic() - began:.1f} s, "
          f"CPU {_children_cpu() - cpu:.1f} s")


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
