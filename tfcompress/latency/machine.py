"""The machine key a latency measurement belongs to: host, CPU model, TensorFlow version
and thread count (a table measured elsewhere, or with other threads, does not apply)."""

import os
import platform
import socket

from tfcompress.latency.runtimes import check_runtime


def cpu_model():
    """The CPU model name (Linux: /proc/cpuinfo), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def intra_op_threads():
    """TensorFlow's intra-op thread count, read as TensorFlow reads it: the value set with
    `tf.config.threading.set_intra_op_parallelism_threads`, else a positive
    TF_NUM_INTRAOP_THREADS from the environment, else the CPU count."""
    import tensorflow as tf

    configured = tf.config.threading.get_intra_op_parallelism_threads()
    if configured:
        return configured
    try:
        from_env = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0"))
    except ValueError:
        from_env = 0  # TensorFlow ignores a value it cannot parse
    return from_env if from_env > 0 else os.cpu_count() or 1


def machine_key(runtime="tf"):
    """`{"host", "cpu", "tensorflow", "threads", "runtime"}` of this process."""
    import tensorflow as tf

    check_runtime(runtime)
    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "tensorflow": tf.__version__,
        "threads": int(intra_op_threads()),
        "runtime": runtime,
    }
