"""`make demo` ends by naming the Deep Compression recipe: each command it prints names a
flagfile that exists and the demo's own converted records."""

import os
import shlex

from tfcompress.scripts import demo_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_names_the_deep_compression_recipe_on_its_data():
    lines = demo_lib.next_steps("out/make_demo/data")
    commands = [shlex.split(line) for line in lines if line.startswith("python")]
    assert len(commands) == len(demo_lib.NEXT_RECIPES) == 2
    for args, (_, flagfile) in zip(commands, demo_lib.NEXT_RECIPES):
        assert args[:3] == ["python", "-m", "tfcompress.scripts.compress"]
        assert f"--flagfile={flagfile}" in args
        assert os.path.isfile(os.path.join(ROOT, flagfile)), flagfile
        with open(os.path.join(ROOT, flagfile)) as f:
            assert "--recipe=deep_compression" in f.read().split()
        assert "--train_data=out/make_demo/data/train-*.tfrecord" in args
        assert "--test_data=out/make_demo/data/test-*.tfrecord" in args
