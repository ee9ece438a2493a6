"""Each script's `--help` documents every flag it takes (with a help text), run as
`python -m` or as an installed console command; docs/scripts.md lists every flag of every
script; a positional argument (an unquoted glob the shell expanded) is an error naming it."""

import ast
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest
from absl import flags

from tfcompress.scripts import common_flags, eval_flags, prune_flags
from tfrecords_tools import entry

from .test_scripts_helpers import REPO, env, finish, start

DEFINES = {
    "train": [common_flags.define_train_flags],
    "compress": [
        common_flags.define_train_flags,
        prune_flags.define_prune_flags,
        prune_flags.define_deep_compression_flags,
    ],
    "evaluate": [eval_flags.define_evaluate_flags],
    "export": [eval_flags.define_export_flags],
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


def test_flag_defaults_are_the_config_defaults():
    """One place for a default: the train flags and DeepCompressionConfig take
    TrainConfig's (a flag default written again could drift from the library's)."""
    import dataclasses

    from tfcompress.training.config import TrainConfig
    from tfcompress.training.deep_compress_lib import DeepCompressionConfig

    def defaults(cls):
        return {f.name: f.default for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING}  # fmt: skip

    train = defaults(TrainConfig)
    fv = script_flags("train")
    shared = [n for n in train if n in fv and n != "devices"]
    assert len(shared) >= 15, shared
    def flag_default(name):  # a list flag's default is a list, the config's a tuple
        value = fv[name].default
        return tuple(value) if isinstance(value, list) else value

    assert {n: flag_default(n) for n in shared} == {n: train[n] for n in shared}
    deep = defaults(DeepCompressionConfig)
    both = [n for n in deep if n in train and n != "test_data"]  # required in deep compression
    assert len(both) >= 12, both
    assert {n: deep[n] for n in both} == {n: train[n] for n in both}


@pytest.mark.slow
def test_help_of_a_script_run_as_a_module_documents_every_flag(tmp_path):
    # `python -m` runs the same `entry.run(main)` for every script (the module is then
    # `__main__`); test_help_of_every_console_command_lists_its_flags checks every script's
    # flags through its console command. Here: compress (train's flags and its own) and demo
    # (flags defined in its own module), two TensorFlow imports instead of five.
    procs = {
        script: start(script, ["--help"], str(tmp_path / f"{script}.log"))
        for script in ("compress", "demo")
    }
    for script, proc in procs.items():
        code, out = finish(proc, timeout=120)
        assert "Try --helpfull" in out, out[-2000:]  # absl's --help exits with code 1
        names = DEMO_FLAGS if script == "demo" else list(script_flags(script))
        for name in names:
            assert f"--{name}:" in out or f"--[no]{name}:" in out, f"{script} --help: {name}"
        if script != "demo":
            assert f"python -m tfcompress.scripts.{script}" in out  # the usage lines


@pytest.mark.slow
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


# --- installed console commands (`tfcompress-export`, `tfrecords-verify`, ...) ---------------

COMMANDS = {
    ep.name: ep.value.split(":")[0]
    for ep in metadata.entry_points(group="console_scripts")
    if ep.value.startswith(("tfcompress.", "tfrecords_tools."))
}


def _defined(tree):
    """Names of the flags a module's (or function's) `flags.DEFINE_*` calls define."""
    return [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr.startswith("DEFINE_")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


def _source(module):
    with open(os.path.join(REPO, *module.split(".")) + ".py") as f:
        return ast.parse(f.read())


def converter_flags(module):
    """The flags a tfrecords_tools module defines, its own and `common.define_*`'s."""
    common = {f.name: _defined(f) for f in _source("tfrecords_tools.common").body
              if isinstance(f, ast.FunctionDef)}  # fmt: skip
    tree = _source(module)
    names = _defined(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "common"
        ):
            names += common.get(node.func.attr, [])
    return names


def command_flags(module):
    script = module.rsplit(".", 1)[1]
    if module.startswith("tfrecords_tools."):
        return converter_flags(module)
    return DEMO_FLAGS if script == "demo" else list(script_flags(script))


def console_command(name, module):
    """The installed console script, or what it runs: `module.run()` with argv[0] = name."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(path):
        return [path]
    return [sys.executable, "-c", f"import sys; sys.argv[0] = {name!r}; "
            f"from {module} import run; sys.exit(run())"]  # fmt: skip


@pytest.mark.slow
def test_help_of_every_console_command_lists_its_flags():
    converters = ["cityscapes", "fashion-mnist", "image-folder", "segmentation-pairs", "voc",
                  "tfds", "mosaic", "inspect", "verify"]  # fmt: skip
    expected = {f"tfcompress-{n}" for n in ("train", "evaluate", "compress", "export", "demo")}
    assert expected | {f"tfrecords-{n}" for n in converters} <= set(COMMANDS)
    procs = {
        name: subprocess.Popen(
            [*console_command(name, module), "--help"],
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, module in COMMANDS.items()
    }
    for name, proc in procs.items():
        out = proc.communicate(timeout=180)[0]
        assert proc.returncode == 1, out[-2000:]  # absl's --help exits with code 1
        assert "Try --helpfull" in out, out[-2000:]
        module = COMMANDS[name]
        assert f"python -m {module}" in out, f"{name} --help: no usage text"  # the docstring
        missing = [n for n in command_flags(module)
                   if f"--{n}:" not in out and f"--[no]{n}:" not in out]  # fmt: skip
        assert not missing, f"{name} --help does not list {missing}:\n{out[-2000:]}"
        if module.startswith("tfrecords_tools."):  # answers without starting TensorFlow
            assert not re.search(r"^[IWE]0000 ", out, re.M), out[:2000]


# --- positional arguments ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("module", ["tfrecords_tools.verify", "tfcompress.scripts.export"])
def test_positional_arguments_are_an_error_naming_them(module, tmp_path):
    shards = [f"d/train-0000{i}-of-00004.tfrecord" for i in range(4)]
    flag = "--file_pattern" if module.endswith("verify") else "--calibration_data"
    proc = subprocess.run(
        [sys.executable, "-m", module, "--checkpoint=x", "--output_dir=y", flag, *shards]
        if module.endswith("export")
        else [sys.executable, "-m", module, flag, *shards],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""  # nothing ran
    assert (
        f"error: unexpected arguments: {' '.join(shards[1:])}. {flag} takes one value "
        f"('{shards[0]}'): if the shell expanded a glob into these, quote it: {flag} "
        "'d/train-*'." in proc.stderr
    ), proc.stderr[-2000:]


def test_unexpected_arguments_message():
    message = entry.unexpected_arguments(["runs/x"], ["--model=lenet5", "runs/x"])
    assert message == (
        "unexpected arguments: runs/x. Every input is a flag (--name=value); quote a glob "
        "such as 'data/x/train-*' so that the shell does not expand it into several "
        "arguments."
    )
    many = [f"s-{i:05d}.tfrecord" for i in range(1, 9)]
    message = entry.unexpected_arguments(many, ["--file_pattern", "s-00000.tfrecord", *many])
    assert message.startswith(
        "unexpected arguments: s-00001.tfrecord s-00002.tfrecord s-00003.tfrecord "
        "s-00004.tfrecord s-00005.tfrecord ... (8 in all). --file_pattern takes one value"
    )
    assert message.endswith("quote it: --file_pattern 's-*'.")
