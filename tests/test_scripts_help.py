"""Each script's `--help` documents every flag it takes (with a help text), and
docs/scripts.md lists every flag of every script."""

import os

import pytest
from absl import flags

from tfcompress.scripts import common_flags

from .test_scripts_helpers import REPO, finish, start

DEFINES = {
    "train": [common_flags.define_train_flags],
    "compress": [common_flags.define_train_flags, common_flags.define_prune_flags],
    "evaluate": [common_flags.define_evaluate_flags],
    "export": [common_flags.define_export_flags],
}
DEMO_FLAGS = [
    "method", "output_dir", "data_dir", "fmnist_dir", "sweep_ratios", "width_multiplier",
    "steps_per_epoch", "smoke",
]
SEED_NAMES = [
    "gpu_id", "model", "num_classes", "initialize", "intialize", "checkpoint", "train_data",
    "batch_size", "skip_step", "height", "width", "max_iteration", "learning_rate",
    "save_step", "power",
]  # fmt: skip


def script_flags(script):
    fv = flags.FlagValues()
    for define in DEFINES[script]:
        define(fv)
    return fv


def test_every_flag_has_help_and_the_seed_names_exist():
    for script in DEFINES:
        fv = script_flags(script)
        for name in fv:
            assert len(fv[name].help) > 10, f"{script} --{name} has no help text"
    train_flags = set(script_flags("train"))
    assert set(SEED_NAMES) <= train_flags
    assert {"method", "ratio", "percent", "final_sparsity", "s", "starting_epoch",
            "ending_epoch", "strategy", "precision", "jit_compile"} <= set(
        script_flags("compress")
    )  # fmt: skip


def test_help_of_every_script_documents_every_flag(tmp_path):
    procs = {
        script: start(script, ["--help"], str(tmp_path / f"{script}.log"))
        for script in [*DEFINES, "demo"]
    }
    for script, proc in procs.items():
        code, out = finish(proc, timeout=120)
        assert "Try --helpfull" in out, out[-2000:]  # absl's --help exits with code 1
        names = DEMO_FLAGS if script == "demo" else list(script_flags(script))
        for name in names:
            assert f"--{name}:" in out or f"--[no]{name}:" in out, f"{script} --help: {name}"
        if script != "demo":
            assert f"python -m tfcompress.scripts.{script}" in out  # the usage lines


@pytest.mark.parametrize("script", [*DEFINES, "demo"])
def test_docs_list_every_flag(script):
    with open(os.path.join(REPO, "docs", "scripts.md")) as f:
        docs = f.read()
    assert f"## `{script}`" in docs
    section = docs.split(f"## `{script}`", 1)[1].split("\n## ", 1)[0]
    names = DEMO_FLAGS if script == "demo" else list(script_flags(script))
    if script == "compress":  # its section lists the method's flags; train's apply too
        names = [n for n in names if n not in script_flags("train")]
    missing = [n for n in names if f"`--{n}`" not in section]
    assert not missing, f"docs/scripts.md, section {script}: missing {missing}"
