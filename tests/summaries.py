"""Reading back the TensorBoard event files a test's run wrote."""

import os

import tensorflow as tf


def scalars(folder):
    """{tag: {step: value}} of the scalars in the TensorBoard event files in `folder`."""
    out = {}
    for name in os.listdir(folder):
        for raw in tf.data.TFRecordDataset(os.path.join(folder, name)):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for value in event.summary.value:
                out.setdefault(value.tag, {})[event.step] = tf.make_ndarray(value.tensor).item()
    return out
