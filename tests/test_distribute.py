"""`compress` under tf.distribute: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy with two local worker processes on 127.0.0.1. Both runs
complete, and every replica (every worker) ends with the same masks."""

import json
import os
import socket

import pytest

from .test_scripts_helpers import data_flags, finish, make_fmnist, run, start


def _args(data, checkpoint, method="taylor"):
    return [
        "--model=lenet5", "--num_classes=10", *data_flags(data), f"--checkpoint={checkpoint}",
        f"--method={method}", "--ratio=0.5", "--epochs=3", "--steps_per_epoch=10",
        "--starting_epoch=1", "--ending_epoch=2", "--prune_every=0.5", "--batch_size=32",
        "--learning_rate=0.02", "--save_step=10", "--skip_step=10", "--eval_batches=2",
        "--progress=false",
    ]  # fmt: skip


def _result(path):
    with open(os.path.join(path, "result.json")) as f:
        return json.load(f)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def fmnist(tmp_path_factory):
    return make_fmnist(str(tmp_path_factory.mktemp("fmnist")), num_train=256, num_test=32)


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus(fmnist, tmp_path):
    path = str(tmp_path / "mirrored")
    code, out = run(
        "compress",
        [*_args(fmnist, path), "--strategy=mirrored", "--num_cpu_devices=2"],
        str(tmp_path / "mirrored.log"),
    )
    assert code == 0, out[-3000:]
    assert "strategy=mirrored replicas=2" in out
    result = _result(path)
    assert result["steps"] == 30
    assert len(result["mask_digests"]) == 2
    assert result["mask_digests"][0] == result["mask_digests"][1]
    assert result["params_after"] < result["params_before"]


@pytest.mark.slow
def test_multi_worker_on_loopback(fmnist, tmp_path):
    path = str(tmp_path / "multi_worker")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    workers = [
        start(
            "compress",
            [*_args(fmnist, path, method="l1_filter"), "--strategy=multi_worker"],
            str(tmp_path / f"worker{i}.log"),
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    outputs = [finish(w, timeout=300) for w in workers]
    for code, out in outputs:
        assert code == 0, out[-3000:]
        assert "strategy=multi_worker replicas=2" in out
    chief, other = _result(path), _result(os.path.join(path, ".worker_1"))
    assert chief["steps"] == other["steps"] == 30
    assert chief["mask_digests"] == other["mask_digests"]
    assert chief["params_after"] < chief["params_before"]
    assert os.path.exists(os.path.join(path, "final.keras"))  # the chief's outputs
    assert not os.path.exists(os.path.join(path, ".worker_1", "final.keras"))
