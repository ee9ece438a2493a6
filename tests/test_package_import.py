"""`import tfcompress as tfc` exposes the subpackages users reach for, imported on first use."""

import importlib

import pytest

import tfcompress as tfc

LAZY = ("data", "importance", "losses", "metrics", "models")


@pytest.mark.parametrize("name", LAZY)
def test_lazy_subpackage_is_the_module(name):
    assert getattr(tfc, name) is importlib.import_module(f"tfcompress.{name}")
    assert name in tfc.__all__
    assert name in dir(tfc)


def test_models_build_through_the_package():
    model = tfc.models.build("lenet5", num_classes=10, input_shape=(28, 28, 1))
    assert model.output_shape == (None, 10)


def test_unknown_attribute_names_it():
    with pytest.raises(AttributeError, match="module 'tfcompress' has no attribute 'modles'"):
        tfc.modles  # noqa: B018


def test_star_import_names_resolve():
    assert all(hasattr(tfc, name) for name in tfc.__all__)
    assert "METHODS" in dir(tfc)
