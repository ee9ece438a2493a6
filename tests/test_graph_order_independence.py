"""A model's dependency graph does not depend on what the process did before it.

Issue 13: the graph read its groups' index maps out of arrays it had not filled yet
(`np.empty`), so they held whatever earlier graphs had left in freed memory, and
InceptionResNetV2 failed to prune after some other tests. Here models are built, wrapped,
pruned and stripped one after another in this process, in two orders; each graph must
equal the graph of the same model built alone in a fresh process (a child forked from a
process that has only imported tfcompress, one per model), and the graph of each wrapped
model must be the model's graph plus its mask layers.
"""

import json
import os
import subprocess
import sys
import textwrap

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
# InceptionResNetV2 (the model issue 13 broke) comes after other graphs (right after a copy
# of itself, its own freed arrays could hand it the right values by chance); it is the
# costliest to build and wrap (~16 s of CPU), so only the first order has it.
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


# `python -c _FRESH out.json name...`: imports tfcompress once, then builds each model alone
# in a child forked from that state (nothing built before it: as fresh as a new process,
# without paying TensorFlow's import, ~4 s of CPU, once per model) and writes
# {name: signature} to out.json.
_FRESH = textwrap.dedent(
    f"""
    import json, os, sys, traceback
    sys.path.insert(0, {ROOT!r})
    import tfcompress as tfc
    from tests.test_graph_order_independence import MODELS, signature

    found = {{}}
    for name in sys.argv[2:]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one model, then exit without returning to the loop
            code = 1
            try:
                os.close(read)
                with os.fdopen(write, "w") as f:
                    json.dump(signature(tfc.DependencyGraph(MODELS[name]())), f)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as f:
            text = f.read()
        _, status = os.waitpid(pid, 0)
        if status != 0:
            sys.exit(f"{{name}} failed in a fresh process (wait status {{status}})")
        found[name] = json.loads(text)
    with open(sys.argv[1], "w") as f:
        json.dump(found, f)
    """
)


def start_fresh_signatures(out_dir):
    """Starts computing the `signature` of every model built alone in a fresh process;
    returns `result() -> {name: signature}`, which waits for it."""
    out, log = os.path.join(out_dir, "fresh.json"), os.path.join(out_dir, "fresh.log")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", _FRESH, out, *MODELS], cwd=ROOT, env=env,
                                stdout=stderr, stderr=stderr)  # fmt: skip

    def result():
        returncode = proc.wait(timeout=900)
        with open(log) as f:
            assert returncode == 0, f"fresh signatures failed:\n{f.read()[-3000:]}"
        with open(out) as f:
            return json.load(f)

    return result


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
    keras.backend.clear_session()  # layer names as in a fresh process; collects garbage
    model = topologies.randomize_bn(MODELS[name]())
    graph = tfc.DependencyGraph(model)
    masked = tfc.wrap(model, graph=graph)
    masked_signature = signature(tfc.DependencyGraph(masked))
    tfc.prune(masked, ratio=0.3)
    if name not in NO_STRIP:
        assert tfc.strip(masked).count_params() < model.count_params(), name
    return signature(graph), masked_signature


@pytest.mark.slow
def test_graphs_do_not_depend_on_earlier_models(tmp_path):
    fresh = start_fresh_signatures(str(tmp_path))  # runs beside the round trips below
    seen = [(i, name, *_round_trip(name)) for i, order in enumerate(ORDERS) for name in order]
    fresh = fresh()
    assert set(fresh) == set(MODELS)
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
