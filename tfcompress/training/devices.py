"""Devices and distribution: GPU selection, logical CPUs, precision, tf.distribute strategy.

`setup(DeviceConfig)` must run before TensorFlow initialises its devices (before the first
op), which is why every script calls it first. It returns a `Context`: the strategy and
whether this process is the chief (the one that writes logs and exports).
"""

import dataclasses
import json
import os

import keras
import tensorflow as tf
from absl import logging


@dataclasses.dataclass(frozen=True)
class Context:
    """The strategy of a run and this process's place in it."""

    strategy: tf.distribute.Strategy
    task_type: str | None = None
    task_id: int = 0

    @property
    def is_chief(self):
        return self.task_type in (None, "chief") or (
            self.task_type == "worker" and self.task_id == 0 and not _has_chief()
        )

    @property
    def num_replicas(self):
        return self.strategy.num_replicas_in_sync


def _has_chief():
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return bool(cluster.get("chief"))


def select_gpu(gpu_id):
    """Makes only GPU(s) `gpu_id` ("0", "1,2") visible; logs (does not fail) without GPUs."""
    if gpu_id is None:
        return
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_id)
    if not tf.config.list_physical_devices("GPU"):
        logging.warning(
            "gpu_id=%s: no GPU is visible on this machine (CUDA_VISIBLE_DEVICES=%s); "
            "running on the CPU.",
            gpu_id,
            gpu_id,
        )
    else:
        logging.info("gpu_id=%s: using %s", gpu_id, tf.config.list_physical_devices("GPU"))


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices (for MirroredStrategy on CPU)."""
    if num_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as e:
        raise RuntimeError(
            f"num_cpu_devices={num_devices}: TensorFlow already initialised its devices; "
            "call tfcompress.training.devices.setup before any TensorFlow op."
        ) from e


def make_strategy(name):
    """`tf.distribute` strategy `name`: default, mirrored or multi_worker."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        logging.info("strategy=mirrored without GPUs: replicas on %s", cpus)
        return tf.distribute.MirroredStrategy(
            cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy=multi_worker reads the cluster from the TF_CONFIG environment "
                'variable, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", '
                '"host2:2222"]}, "task": {"type": "worker", "index": 0}}\'. Received: '
                "no TF_CONFIG"
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    raise ValueError(
        f"strategy must be one of ['default', 'mirrored', 'multi_worker']. Received: "
        f"strategy={name!r}"
    )


def setup(config):
    """Applies a `DeviceConfig` (before TensorFlow starts) and returns the `Context`."""
    select_gpu(config.gpu_id)
    split_cpu(config.num_cpu_devices)
    keras.mixed_precision.set_global_policy(config.precision)
    strategy = make_strategy(config.strategy)
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None) if config.strategy == "multi_worker" else None
    task_id = getattr(resolver, "task_id", 0) if config.strategy == "multi_worker" else 0
    context = Context(strategy, task_type, int(task_id or 0))
    logging.info(
        "strategy=%s replicas=%d precision=%s jit_compile=%s%s",
        config.strategy,
        context.num_replicas,
        config.precision,
        config.jit_compile,
        f" task={task_type}:{task_id}" if task_type else "",
    )
    return context
