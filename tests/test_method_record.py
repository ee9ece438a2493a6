"""One record per method (`tfcompress.methods`): registered once, `tfc.METHODS` derived
from the registry, and the wrapping record a wrapped model carries through save/load."""

import keras
import pytest

import tfcompress as tfc
from tfcompress import callbacks as cb
from tfcompress import methods
from tfcompress.layers import ChannelMask, TaylorMask

from .pruning_models import conv_bn_net


def test_methods_tuple_is_derived_from_registry():
    assert tfc.METHODS == methods.names()
    assert {"magnitude", "l1_filter", "taylor", "slimming", "soft_topk"} <= set(tfc.METHODS)
    record = methods.Method("l1_twin", ChannelMask, "l1_filter", cb.StructuredPruning)
    with methods.registered_method(record):
        assert "l1_twin" in tfc.METHODS
        masked = tfc.wrap(conv_bn_net(), "l1_twin")
        assert methods.wrapping_of(masked).method == "l1_twin"
        tfc.prune(masked, ratio=0.5)
    assert "l1_twin" not in tfc.METHODS


def test_each_method_record_binds_mask_criterion_and_callback():
    taylor = methods.get("taylor")
    assert (taylor.mask_class, taylor.criterion, taylor.callback) == (
        TaylorMask, "taylor", cb.StructuredPruning
    )
    assert methods.get("magnitude").mask_class is None
    assert methods.get("soft_topk").callback is cb.SoftTopK
    assert methods.get("slimming").clone_hook is not None


def test_taylor_global_ranking_normalises_by_l2_and_l1_filter_by_mean():
    assert methods.default_normalize("taylor", "global") == "l2"
    assert methods.default_normalize("l1_filter", "global") == "mean"
    assert methods.default_normalize("taylor", "local") == "none"


def test_registering_a_method_twice_is_an_error():
    with pytest.raises(ValueError, match="'taylor' is already registered"):
        tfc.register_method(methods.Method("taylor", TaylorMask, "taylor", cb.StructuredPruning))


def test_method_record_rejects_bad_fields():
    with pytest.raises(TypeError, match="mask_class=<class 'int'>"):
        methods.Method("x", int, "l1_filter", cb.StructuredPruning)
    with pytest.raises(ValueError, match="scope='layer'"):
        methods.Method("x", ChannelMask, "l1_filter", cb.StructuredPruning, scope="layer")
    with pytest.raises(ValueError, match="normalize='std'"):
        methods.Method("x", ChannelMask, "l1_filter", cb.StructuredPruning, normalize="std")
    with pytest.raises(ValueError, match="min_channels=0"):
        methods.Method("x", ChannelMask, "l1_filter", cb.StructuredPruning, min_channels=0)
    with pytest.raises(TypeError, match="callback=None"):
        methods.Method("x", ChannelMask, "l1_filter", None)
    with pytest.raises(ValueError, match="criterion='fisher' is not a registered criterion"):
        tfc.register_method(methods.Method("x", ChannelMask, "fisher", cb.StructuredPruning))


def test_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match="method='fisher'.*'taylor'"):
        tfc.wrap(conv_bn_net(), "fisher")


def test_wrap_arguments_after_method_are_keyword_only():
    with pytest.raises(TypeError):
        tfc.wrap(conv_bn_net(), "l1_filter", ["conv0"])


@pytest.mark.parametrize(
    "method, options", [("slimming", {"penalty": 1e-3}), ("magnitude", {}), ("taylor", {})]
)
def test_wrapped_method_survives_save_and_load(method, options, tmp_path):
    masked = tfc.wrap(conv_bn_net(), method, exclude=["conv2"], **options)
    expected = methods.Wrapping(method, ("conv2",), options)
    assert methods.wrapping_of(masked) == expected
    path = str(tmp_path / "masked.keras")
    masked.save(path)
    loaded = keras.saving.load_model(path)
    assert methods.wrapping_of(loaded) == expected
    other = "l1_filter" if method != "l1_filter" else "taylor"
    with pytest.raises(ValueError, match=f"wrapped with method='{method}'"):
        tfc.prune(loaded, ratio=0.5, method=other)
    assert tfc.strip(loaded).get_layer("conv2").filters == 16


def test_compress_methods_table_is_read_from_the_record():
    from tfcompress.training import methods as plumbing

    assert tuple(plumbing.METHODS) == tfc.METHODS
    assert plumbing.METHODS["taylor"].scope == "global"
    assert plumbing.METHODS["taylor"].criterion == "l1_filter"  # scores need training
    assert [m for m in plumbing.METHODS if plumbing.METHODS[m].penalty] == ["slimming"]
    assert plumbing.METHODS["soft_topk"].compression_target == "channels"
    record = methods.Method("l1_twin", ChannelMask, "l1_filter", cb.StructuredPruning)
    with methods.registered_method(record):
        assert plumbing.METHODS["l1_twin"].criterion == "l1_filter"
    assert "l1_twin" not in plumbing.METHODS
