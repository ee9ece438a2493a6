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
    """TensorFlow's intra-op thread count (its default, 0, read as the CPU count)."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1


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
