"""A `compress` run killed mid-schedule and restarted with the same command ends exactly
like an uninterrupted run: same step count, same final masks (Taylor scores, masks,
optimizer state and step live in the checkpoint; the input pipeline is replayed to the
step it resumes from)."""

import glob
import json
import os
import re
import time

import pytest

from .test_scripts_helpers import data_flags, finish, make_fmnist, run, start

TOTAL = 240  # 6 epochs of 40 steps; Taylor pruning every 20 steps from step 40 to 200


def _args(data, checkpoint):
    return [
        "--model=lenet5", "--num_classes=10", *data_flags(data), f"--checkpoint={checkpoint}",
        "--method=taylor", "--ratio=0.5", "--scope=global", "--epochs=6",
        "--steps_per_epoch=40", "--starting_epoch=1", "--ending_epoch=5", "--prune_every=0.5",
        "--batch_size=16", "--learning_rate=0.02", "--save_step=20", "--skip_step=20",
        "--eval_batches=2", "--progress=false",
    ]  # fmt: skip


def _checkpoint_steps(path):
    return sorted(
        int(re.search(r"ckpt-(\d+)\.index$", p).group(1))
        for p in glob.glob(os.path.join(path, "ckpt-*.index"))
    )


def _read(path, name):
    with open(os.path.join(path, name)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=512, num_test=32)


@pytest.mark.slow
def test_killed_compress_resumes_to_the_same_masks(fmnist, tmp_path):
    reference, cut = str(tmp_path / "reference"), str(tmp_path / "cut")
    uninterrupted = start("compress", _args(fmnist, reference), str(tmp_path / "ref.log"))
    interrupted = start("compress", _args(fmnist, cut), str(tmp_path / "cut1.log"))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and interrupted.poll() is None:
        steps = _checkpoint_steps(cut)
        if steps and 60 <= steps[-1] < TOTAL:
            break
        time.sleep(0.02)
    assert interrupted.poll() is None, "the run ended before it could be killed mid-schedule"
    interrupted.kill()  # SIGKILL: no chance to write anything more
    finish(interrupted)
    killed_at = _checkpoint_steps(cut)[-1]
    assert 60 <= killed_at < TOTAL
    assert not os.path.exists(os.path.join(cut, "result.json"))

    code, out = run("compress", _args(fmnist, cut), str(tmp_path / "cut2.log"))
    assert code == 0, out[-3000:]
    # the latest checkpoint the kill left complete (the `checkpoint` index names it)
    resumed_at = int(re.search(r"Resuming from .*ckpt-(\d+)", out).group(1))
    assert 0 < resumed_at <= killed_at
    assert f"Training steps {resumed_at}..{TOTAL}" in out
    code, ref_out = finish(uninterrupted)
    assert code == 0, ref_out[-3000:]

    resumed, expected = _read(cut, "result.json"), _read(reference, "result.json")
    assert resumed["steps"] == expected["steps"] == TOTAL
    assert resumed["mask_digests"] == expected["mask_digests"]
    assert _read(cut, "plan.json") == _read(reference, "plan.json")
    assert resumed["params_after"] == expected["params_after"] < expected["params_before"]
