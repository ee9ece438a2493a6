"""A finished run started again with the same command says it is finished and changes
nothing: every file of its directory stays as it was (result.json byte for byte), and it
returns (the script prints) the result of the run, same mask digests."""

import json

import pytest

from tfcompress import training

from .test_scripts_errors import snapshot
from .test_scripts_helpers import make_fmnist, parse, run

pytestmark = pytest.mark.slow  # training runs

FINISHED = "holds this run, finished (result.json): nothing to do."


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=128, num_test=32)


def _common(fmnist, checkpoint):
    return [
        "--model=lenet5", "--num_classes=10",
        f"--train_data={fmnist}/train-*.tfrecord", f"--test_data={fmnist}/test-*.tfrecord",
        "--batch_size=16", "--max_iteration=8", "--skip_step=4", "--save_step=4",
        "--progress=false", f"--checkpoint={checkpoint}",
    ]  # fmt: skip


def test_finished_compress_run_changes_nothing(fmnist, tmp_path):
    path = tmp_path / "run"
    args = [*_common(fmnist, path), "--method=l1_filter", "--percent=0.5",
            "--starting_epoch=0.25", "--steps_per_epoch=8"]  # fmt: skip
    first = training.compress(parse("compress", args))
    before = snapshot(path)
    code, out = run("compress", args, str(tmp_path / "again.log"))
    assert code == 0, out[-3000:]
    assert FINISHED in out, out[-3000:]
    assert "Training steps" not in out
    printed = json.loads(out.strip().splitlines()[-1])
    assert printed["mask_digests"] == first["mask_digests"]
    assert printed == json.loads(json.dumps(first, default=str))
    assert snapshot(path) == before  # result.json included: same bytes, same mtime


def test_finished_train_run_changes_nothing(fmnist, tmp_path):
    path = tmp_path / "run"
    config = parse("train", _common(fmnist, path))
    first = training.train(config)
    before = snapshot(path)
    assert training.train(config) == first
    assert snapshot(path) == before
