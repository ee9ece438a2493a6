"""A model's dependency graph does not depend on what the process did before it.

Issue 13: the graph read its groups' index maps out of arrays it had not filled yet
(`np.empty`), so they held whatever earlier graphs had left in freed memory, and
InceptionResNetV2 failed to prune after some other tests. Here models are built, wrapped,
pruned and stripped one after another in this process, in two orders; each graph must
equal the graph of the same model built alone in a fresh process, and the graph of each
wrapped model must be the model's graph plus its mask layers.
"""

import concurrent.futures
import gc
import json
import os
import subprocess
import sys

import keras
import pytest
from keras import layers

import tfcompress as tfc
from tests import topologies
from tfcompress.graph import find_rule, registered_rule
from tfcompress.graph.rules import Channelwise
from tfcompress.layers import ChannelMask

A = keras.applications
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _application(builder, size, **options):
    def build():
        return builder(weights=None, input_shape=(size, size, 3), classes=4, **options)

    return build


MODELS = {
    "InceptionResNetV2": _application(A.InceptionResNetV2, 75),
    "MobileNetV2": _application(A.MobileNetV2, 32, alpha=0.35),
    "MobileNetV3Small": _application(A.MobileNetV3Small, 32, alpha=0.75),
    **{
        name: topologies.TOPOLOGIES[name]
        for name in ("inception_concat", "yolo_passthrough", "nested_models", "shared_layer")
    },
}
# InceptionResNetV2 comes after other graphs in both orders (right after a copy of itself,
# its own freed arrays could hand it the right values by chance).
ORDERS = (
    (
        "MobileNetV2",
        "inception_concat",
        "yolo_passthrough",
        "InceptionResNetV2",
        "MobileNetV3Small",
        "nested_models",
        "shared_layer",
    ),
    (
        "shared_layer",
        "MobileNetV3Small",
        "nested_models",
        "InceptionResNetV2",
        "yolo_passthrough",
        "inception_concat",
        "MobileNetV2",
    ),
)
# Stripping InceptionResNetV2 takes longer than all the rest (test_applications does it).
NO_STRIP = ("InceptionResNetV2",)


def signature(graph):
    """The graph as plain data: per group its size, state, tensors (named by the layer
    that produces them) and members with their index maps. Mask layers are left out."""
    t = graph.traced
    names = {k: f"input:{i}" for i, k in enumerate(t.input_keys)}
    masks = set()
    for op in t.ops:
        names.update({k: f"{op.layer.name}:{i}" for i, k in enumerate(op.out_keys)})
        if isinstance(op.layer, ChannelMask):
            masks.update(op.out_keys)
    groups = [
        {
            "size": g.size,
            "prunable": g.prunable,
            "pinned_by": g.pinned_by,
            "tensors": [names[k] for k in g.tensors if k not in masks],
            "members": sorted(
                [
                    m.layer.name,
                    m.role,
                    m.index_map.positions.tolist(),
                    m.index_map.channels.tolist(),
                ]
                for m in g.members
                if not isinstance(m.layer, ChannelMask)
            ),
        }
        for g in graph.groups
    ]
    return json.loads(json.dumps(groups))


def fresh_signature(name):
    """`signature` of model `name` built alone in a new Python process."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from tests.test_graph_order_independence import MODELS, signature\n"
        "import tfcompress as tfc\n"
        f"print(json.dumps(signature(tfc.DependencyGraph(MODELS[{name!r}]()))))\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{name} in a fresh process failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _first_difference(got, want):
    if len(got) != len(want):
        return f"{len(got)} groups instead of {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            keys = [k for k in w if g[k] != w[k]]
            got_values = {k: g[k] for k in keys if k != "members"}
            return f"group {i} differs in {keys}; got {got_values}"
    return ""


def _round_trip(name):
    """Builds, wraps, prunes and strips `name`; returns (model graph, wrapped graph)."""
    keras.backend.clear_session()  # layer names as in a fresh process
    gc.collect()
    model = topologies.randomize_bn(MODELS[name]())
    graph = tfc.DependencyGraph(model)
    masked = tfc.wrap(model, graph=graph)
    masked_signature = signature(tfc.DependencyGraph(masked))
    tfc.prune(masked, ratio=0.3)
    if name not in NO_STRIP:
        assert tfc.strip(masked).count_params() < model.count_params(), name
    return signature(graph), masked_signature


@pytest.mark.slow
def test_graphs_do_not_depend_on_earlier_models():
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        fresh = {name: pool.submit(fresh_signature, name) for name in MODELS}
        seen = [(i, name, *_round_trip(name)) for i, order in enumerate(ORDERS) for name in order]
        fresh = {name: future.result() for name, future in fresh.items()}
    wrong = []
    for i, name, got, masked in seen:
        for what, sig in (("graph", got), ("wrapped model's graph", masked)):
            if sig != fresh[name]:
                wrong.append(f"{name} {what} (order {i}): {_first_difference(sig, fresh[name])}")
    assert not wrong, "\n".join(wrong)


class Doubler(layers.Layer):
    def call(self, x):
        return 2.0 * x


def test_registered_rule_restores_the_rule_table():
    relu = find_rule(layers.ReLU())
    with registered_rule(layers.ReLU, Channelwise()) as rule:
        assert find_rule(layers.ReLU()) is rule
    assert find_rule(layers.ReLU()) is relu
    with pytest.raises(RuntimeError, match="inside"):
        with registered_rule(Doubler, Channelwise()):
            raise RuntimeError("inside")
    assert find_rule(Doubler()) is None
