"""docs/methods.md's table of call signatures is the code's: each row's signature is
`inspect.signature` of the object it names (it had fallen behind: `wrap` without
`copy_layers`, `prune` and `StructuredPruning` without the latency budget's arguments)."""

import inspect
import os
import re

import pytest

import tfcompress as tfc
from tfcompress import callbacks, schedules

DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "methods.md")
OBJECTS = {
    "tfc.wrap": tfc.wrap,
    "tfc.prune": tfc.prune,
    "tfc.strip": tfc.strip,
    "tfc.pruners.prune_weights": tfc.pruners.prune_weights,
    "StructuredPruning": callbacks.StructuredPruning,
    "MagnitudePruning": callbacks.MagnitudePruning,
    "SoftTopK": callbacks.SoftTopK,
    "ACoSPTemperature": schedules.ACoSPTemperature,
    "tfc.pruners.ratio_for_compression": tfc.pruners.ratio_for_compression,
}
ROW = re.compile(r"^\| `([\w.]+)` \| `(\w+)(\([^`]*\))`", re.M)


def _rows():
    with open(DOC) as f:
        return {name: (short, sig) for name, short, sig in ROW.findall(f.read())}


def test_every_documented_call_is_checked():
    assert set(_rows()) == set(OBJECTS)


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_documented_signature_is_the_codes(name):
    short, documented = _rows()[name]
    obj = OBJECTS[name]
    assert short == obj.__name__
    actual = str(inspect.signature(obj)).replace("'", '"')
    assert documented == actual, f"docs/methods.md: {name}{documented} != {actual}"
