"""The latency model: cost tables (interpolation, JSON), their cache per machine and
model signature, and a measured table of a tiny model read back from the cache."""

import dataclasses
import json
import re

import keras
import numpy as np
import pytest

from tfcompress import latency
from tfcompress.latency import measure as measure_lib
from tfcompress.latency.table import CostTable, LayerCost
from tfcompress.pruners.latency_budget import LatencyBudget

from .pruning_models import conv_bn_net

MACHINE = {"host": "h", "cpu": "c", "tensorflow": "2.21", "threads": 2, "runtime": "tf"}


def _table(signature="sig"):
    return CostTable(
        {"conv": LayerCost(("in", "out"), ((8, 16), (8, 16, 32)), [[1, 2, 4], [2, 4, 8]]),
         "head": LayerCost(("in",), ((8, 16),), [0.5, 0.5])},
        base_ms=1.5, multiple=8, batch_size=1, machine=MACHINE, signature=signature)


def test_cost_interpolates_and_prices_odd_counts_at_the_next_multiple():
    conv = _table().layers["conv"]
    assert conv.cost({"in": 16, "out": 24}) == pytest.approx(6.0)  # halfway 4 .. 8
    assert conv.cost({"in": 12, "out": 8}) == pytest.approx(1.5)
    assert conv.cost({"in": 9, "out": 8}, multiple=8) == conv.cost({"in": 16, "out": 8})
    assert conv.cost({"in": 1, "out": 1}) == 1.0  # below the grid: its floor
    assert _table().full_ms() == pytest.approx(1.5 + 8 + 0.5)


def test_cache_round_trip_and_misses(tmp_path):
    table = _table()
    path = latency.save_table(table, tmp_path, "net")
    assert path.startswith(str(tmp_path)) and path.endswith(".json")
    assert latency.load_table(MACHINE, "sig", tmp_path, "net") == table
    other_machine = {**MACHINE, "threads": 1}
    assert latency.load_table(other_machine, "sig", tmp_path, "net") is None
    assert latency.load_table({**MACHINE, "cpu": "other"}, "sig", tmp_path, "net") is None
    assert latency.load_table(MACHINE, "other-sig", tmp_path, "net") is None
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp left


def test_damaged_cache_file_is_a_miss_measured_again_and_overwritten(
        tmp_path, monkeypatch, caplog):
    model = conv_bn_net(widths=(8, 8, 16))
    for timing, ms in (("layer_ms", 1.0), ("call_overhead_ms", 0.0), ("model_ms", 9.0)):
        monkeypatch.setattr(measure_lib, timing, lambda *args, ms=ms, **kwargs: ms)  # no timing
    kwargs = dict(fractions=(1.0,), repeats=1, rest="constant", cache_dir=tmp_path, verbose=0)
    table = latency.measure_cost_table(model, 1, **kwargs)
    [path] = tmp_path.rglob("*.json")
    good = path.read_text()
    newer = json.dumps({**json.loads(good), "field_of_a_later_version": 1})
    # before: a raw JSONDecodeError / AttributeError / ValueError, the file not named
    for text in (good[:len(good) // 2], "", "[]", '{"layers": "x"}', newer):
        path.write_text(text)
        caplog.clear()
        assert latency.load_table(table.machine, table.signature, tmp_path, model.name) is None
        assert f"Ignoring the cached cost table {path} (" in caplog.text
        assert "measure_cost_table measures the table again and overwrites the file" in (
            caplog.text)
        again = latency.measure_cost_table(model, 1, **kwargs)
        assert again == table
        assert CostTable.from_json(path.read_text()) == again  # overwritten


def test_unwritable_cache_folder_returns_the_table_with_a_warning(
        tmp_path, monkeypatch, caplog):
    for timing, ms in (("layer_ms", 1.0), ("call_overhead_ms", 0.0), ("model_ms", 9.0)):
        monkeypatch.setattr(measure_lib, timing, lambda *args, ms=ms, **kwargs: ms)  # no timing
    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" / "cache"  # under a file: cannot be made (nor read)
    # before: the whole measurement ran, then an OSError from the write lost it
    table = latency.measure_cost_table(conv_bn_net(widths=(8, 8, 16)), 1, fractions=(1.0,),
                                       repeats=1, rest="constant", cache_dir=folder, verbose=0)
    assert table.full_ms() == pytest.approx(9.0)
    assert (f"The cost table of model 'conv_bn_net' could not be cached under {folder} "
            "(NotADirectoryError: ") in caplog.text
    assert "It is returned uncached: the next call measures it again." in caplog.text


def test_runtime_is_part_of_the_cache_key(tmp_path):
    tf_table = _table()
    lite_machine = {**MACHINE, "runtime": "tflite"}
    lite_table = CostTable({"conv": tf_table.layers["conv"]}, base_ms=0.2, batch_size=1,
                           machine=lite_machine, signature="sig")
    tf_path = latency.save_table(tf_table, tmp_path, "net")
    lite_path = latency.save_table(lite_table, tmp_path, "net")
    assert tf_path != lite_path  # the same model and signature, another runtime: its own file
    assert latency.load_table(MACHINE, "sig", tmp_path, "net") == tf_table
    assert latency.load_table(lite_machine, "sig", tmp_path, "net") == lite_table
    assert latency.load_table({**MACHINE, "runtime": "onnx"}, "sig", tmp_path, "net") is None
    assert latency.machine_key("tflite")["runtime"] == "tflite"


def test_machine_key_counts_the_threads_tensorflow_runs_on(monkeypatch):
    """TensorFlow's order: a configured count, else a positive TF_NUM_INTRAOP_THREADS,
    else the cores."""
    import os

    from tfcompress.latency.machine import intra_op_threads

    monkeypatch.setattr("tensorflow.config.threading.get_intra_op_parallelism_threads",
                        lambda: 0)
    for value, expected in (("3", 3), ("0", os.cpu_count()), ("x", os.cpu_count())):
        monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", value)
        assert intra_op_threads() == expected, value
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert latency.machine_key()["threads"] == os.cpu_count()
    monkeypatch.setattr("tensorflow.config.threading.get_intra_op_parallelism_threads",
                        lambda: 5)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    assert latency.machine_key()["threads"] == 5


def test_tflite_table_is_measured_through_litert_and_cached_apart(tmp_path, monkeypatch):
    model = conv_bn_net(widths=(8, 8, 16))
    table = latency.measure_cost_table(model, 1, fractions=(1.0,), repeats=2,
                                       rest="constant", runtime="tflite", cache_dir=tmp_path)
    assert table.machine == latency.machine_key("tflite")
    assert set(table.layers) == {"conv0", "conv1", "conv2", "logits"}
    assert table.layers["conv2"].grid == ((8,), (16,))
    assert table.full_ms() > 0
    fn, x = latency.serving_call(model, (2, 12, 12, 1), "tflite")
    fn(x)  # runs in LiteRT at the batch it was converted for
    assert fn.interpreter.get_input_details()[0]["shape"].tolist() == [2, 12, 12, 1]

    def no_converting(*args, **kwargs):
        raise AssertionError("converted and timed again instead of reading the cache")

    monkeypatch.setattr(measure_lib, "serving_call", no_converting)
    again = latency.measure_cost_table(model, 1, fractions=(1.0,), repeats=2,
                                       rest="constant", runtime="tflite", cache_dir=tmp_path)
    assert again == table


def test_model_signature_tells_models_and_batches_apart():
    a, b = conv_bn_net(widths=(8, 8, 16)), conv_bn_net(widths=(8, 16, 16))
    sig = latency.model_signature(a, 1, (0.5, 1.0), 8)
    assert sig == latency.model_signature(conv_bn_net(widths=(8, 8, 16)), 1, (0.5, 1.0), 8)
    assert sig != latency.model_signature(b, 1, (0.5, 1.0), 8)
    assert sig != latency.model_signature(a, 32, (0.5, 1.0), 8)


def _norm_act_net(norm, activation):
    """conv_bn_net's convs and head with another normalization / activation between."""
    inputs = keras.Input((12, 12, 1), name="image")
    x = inputs
    for i, filters in enumerate((8, 8, 16)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = norm(name=f"norm{i}")(x)
        x = keras.layers.Activation(activation, name=f"act{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x), name="net")


def test_model_signature_covers_the_layers_a_table_does_not_model():
    # the same convs and head (the modelled layers): before, one signature for all four,
    # so an edited model was served the old model's cached table (its rest fitted to the
    # old model: 1.28 ms predicted for a model taking 4.36)
    bn, ln = keras.layers.BatchNormalization, keras.layers.LayerNormalization
    sigs = [latency.model_signature(_norm_act_net(norm, act), 1, (1.0,), 8)
            for norm, act in ((bn, "relu"), (ln, "relu"), (bn, "gelu"), (ln, "gelu"))]
    assert len(set(sigs)) == 4
    # names and initializers do not change the cost: a second build hits
    keras.utils.set_random_seed(1)
    assert latency.model_signature(_norm_act_net(bn, "relu"), 1, (1.0,), 8) == sigs[0]


def test_measured_table_is_cached_and_read_back(tmp_path, monkeypatch, capsys):
    model = conv_bn_net(widths=(8, 8, 16))
    table = latency.measure_cost_table(
        model, 2, fractions=(0.5, 1.0), repeats=2, fit_seconds=0, cache_dir=tmp_path,
        verbose=2)
    # progress: one line at the end, the four timed layers and the whole model's fit
    assert re.search(r"^5/5 - \d+s - .*/layer$", capsys.readouterr().out, re.M)
    assert table.machine == latency.machine_key() and table.batch_size == 2
    assert set(table.layers) == {"conv0", "conv1", "conv2", "logits"}
    assert table.layers["conv2"].axes == ("in", "out")
    assert table.layers["conv2"].grid == ((8,), (8, 16))  # multiples of 8 and the width
    assert table.layers["conv0"].axes == ("out",)  # its input, the image, is pinned
    assert table.layer_scale >= 0 and table.full_ms() > 0  # the default rest, fitted

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(measure_lib, "layer_ms", no_measuring)
    again = latency.measure_cost_table(
        model, 2, fractions=(0.5, 1.0), repeats=2, fit_seconds=0, cache_dir=tmp_path)
    assert again == table
    assert capsys.readouterr().out == ""  # a cached table is read silently


def test_cached_table_serves_only_requests_measured_no_more_carefully(tmp_path, monkeypatch):
    model = conv_bn_net(widths=(8, 8, 16))
    timed = []
    real_layer_ms = measure_lib.layer_ms

    def counting(site, batch_size, counts, repeats, *args, **kwargs):
        timed.append(repeats)
        return real_layer_ms(site, batch_size, counts, repeats, *args, **kwargs)

    monkeypatch.setattr(measure_lib, "layer_ms", counting)

    def measure(**kwargs):
        timed.clear()
        table = latency.measure_cost_table(model, 1, fractions=(1.0,), cache_dir=tmp_path,
                                           verbose=0, **kwargs)
        return table, list(timed)

    quick, calls = measure(repeats=2, fit_seconds=0)
    assert calls == [2] * 4 and (quick.repeats, quick.fit_seconds) == (2, 0.0)
    assert latency.load_table(quick.machine, quick.signature, tmp_path, model.name) == quick
    assert measure(repeats=1, fit_seconds=0) == (quick, [])  # asked for less: the cache
    careful, calls = measure(repeats=3, fit_seconds=0)  # asked for more: measured again
    assert calls == [3] * 4 and careful.repeats == 3
    assert measure(repeats=2, fit_seconds=0) == (careful, [])  # and cached in its place
    longer, calls = measure(repeats=3, fit_seconds=0.5)  # a longer fit: measured again
    assert calls == [3] * 4 and longer.fit_seconds == 0.5
    constant, calls = measure(repeats=3, rest="constant", fit_seconds=0.5)
    assert calls == [3] * 4 and constant.fit_seconds is None  # no fit: no seconds to keep
    assert measure(repeats=3, rest="constant", fit_seconds=9.0) == (constant, [])
    old = dataclasses.replace(constant, repeats=None)  # cached before repeats were kept
    latency.save_table(old, tmp_path, model.name)
    assert measure(repeats=1, rest="constant")[1] == [1] * 4


def test_folded_table_times_the_models_folded_and_is_cached_apart(tmp_path, monkeypatch):
    model = conv_bn_net(widths=(8, 8, 16))
    timed = []
    real_paired_ms = measure_lib.paired_ms

    def recording(models, *args, **kwargs):
        timed.extend(models)
        return real_paired_ms(models, *args, **kwargs)

    monkeypatch.setattr(measure_lib, "paired_ms", recording)
    folded = latency.measure_cost_table(model, 1, fractions=(1.0,), repeats=2, fit_seconds=0,
                                        fold_batchnorm=True, cache_dir=tmp_path)
    # the full model and the three uniformly pruned ones, every BatchNorm folded away
    assert len(timed) == 4
    assert all(not any(isinstance(layer, keras.layers.BatchNormalization)
                       for layer in m.layers) for m in timed)
    assert latency.model_signature(model, 1, (1.0,), 8, fold_batchnorm=True) == folded.signature
    timed.clear()
    plain = latency.measure_cost_table(model, 1, fractions=(1.0,), repeats=2, fit_seconds=0,
                                       cache_dir=tmp_path)
    assert plain.signature != folded.signature  # a table of its own, not the folded one
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in timed[0].layers) == 3
    assert plain.signature == latency.model_signature(model, 1, (1.0,), 8)  # as before the option


def test_bad_tables_are_refused_by_name():
    with pytest.raises(ValueError, match=r"axes must be a subset .* Received: axes=\('k',\)"):
        LayerCost(("k",), ((8,),), [1.0])
    with pytest.raises(ValueError, match=r"ascending .* Received: grid=\(\(16, 8\),\)"):
        LayerCost(("in",), ((16, 8),), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(2,\) .* Received: ms=\[1.0\]"):
        LayerCost(("in",), ((8, 16),), [1.0])
    with pytest.raises(ValueError, match="Received: multiple=0"):
        CostTable({}, multiple=0)
    with pytest.raises(ValueError, match="Received: base_ms=-1"):
        CostTable({}, base_ms=-1)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        latency.measure_cost_table(conv_bn_net(), 0)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1. Received: repeats=0"):
        latency.measure_cost_table(conv_bn_net(), 1, repeats=0)
    with pytest.raises(ValueError, match="multiple must be an integer >= 1. Received: "
                                         "multiple=4.0"):
        latency.measure_cost_table(conv_bn_net(), 1, multiple=4.0)
    with pytest.raises(ValueError, match="Received: repeats=0"):
        CostTable({}, repeats=0)
    with pytest.raises(ValueError, match="Received: fit_seconds=-1"):
        CostTable({}, fit_seconds=-1)
    with pytest.raises(ValueError, match=r"Received: fractions=\(0, 1\)"):
        latency.measure_cost_table(conv_bn_net(), 1, fractions=(0, 1))
    with pytest.raises(ValueError, match="Received: rest='linear'"):
        latency.measure_cost_table(conv_bn_net(), 1, rest="linear")
    with pytest.raises(ValueError, match=r"runtime must be one of \('tf', 'tflite'\). "
                       "Received: runtime='onnx'"):
        latency.measure_cost_table(conv_bn_net(), 1, runtime="onnx")
    with pytest.raises(ValueError, match="fit_seconds must be a number >= 0. Received: "
                                         "fit_seconds=-1"):
        latency.measure_cost_table(conv_bn_net(), 1, fit_seconds=-1)
    with pytest.raises(ValueError, match="fold_batchnorm must be True or False. Received: "
                                         "fold_batchnorm='yes'"):
        latency.measure_cost_table(conv_bn_net(), 1, fold_batchnorm="yes")
    with pytest.raises(ValueError, match="Received: statistic='mean'"):
        latency.measure_cost_table(conv_bn_net(), 1, statistic="mean")
    with pytest.raises(ValueError, match="verbose must be 0, 1 or 2. Received: verbose=3"):
        latency.measure_cost_table(conv_bn_net(), 1, verbose=3)
    with pytest.raises(ValueError, match="cached. Received: machine=None"):
        latency.save_table(CostTable({}), "/nonexistent")


def test_small_arguments_are_refused_by_name():
    # before: raw TF errors (batch 0, 2.5, -1), [inf] for repeats=0, a float grid count
    # cut to an int, a table at batch 0, a TypeError for fractions=0.5, a machine key of
    # any runtime
    model = conv_bn_net(widths=(8, 8, 16))
    budget = LatencyBudget(plan=None, kept={}, target_ms=1.0, predicted_ms=1.0,
                           original_ms=2.0)
    for bad in (0, 2.5, -1):
        message = f"batch_size must be an integer >= 1. Received: batch_size={bad!r}"
        for call, args in ((latency.model_ms, (model, bad)),
                           (measure_lib.paired_ms, ([model], bad)),
                           (budget.with_measured, (model, bad))):
            with pytest.raises(ValueError, match=re.escape(message)):
                call(*args)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1. Received: repeats=0"):
        measure_lib.paired_ms([model], 1, repeats=0)
    for bad in (0.5, ("a",), (float("nan"),)):
        with pytest.raises(ValueError, match=re.escape(
                "fractions must be a list or tuple of numbers in (0, 1]. "
                f"Received: fractions={bad!r}")):
            latency.measure_cost_table(model, 1, fractions=bad)
    with pytest.raises(ValueError, match=re.escape(
            "Each grid axis must be ascending integer channel counts >= 1. "
            "Received: grid=((8.7, 16),)")):
        LayerCost(("out",), ((8.7, 16),), [1.0, 2.0])
    with pytest.raises(ValueError, match=re.escape(
            "batch_size must be an integer >= 1 or None. Received: batch_size=0")):
        CostTable({}, batch_size=0)
    with pytest.raises(TypeError, match=re.escape(
            "layers must be a dict of layer name -> LayerCost fields. Received: layers='x'")):
        CostTable.from_dict({"layers": "x"})
    with pytest.raises(ValueError, match=re.escape(
            "runtime must be one of ('tf', 'tflite'). Received: runtime='foo'")):
        latency.machine_key("foo")


def test_padding_bound_makes_no_count_slower_than_a_wider_one():
    ms = measure_lib.padding_bound([[1.0, 5.0, 3.0], [2.0, 1.5, 4.0]])
    # along "in" (rows): row 0 = min(row 0, row 1) = [1, 1.5, 3]; then along "out":
    # row 0 stays, row 1 [2, 1.5, 4] -> [1.5, 1.5, 4] (2 ms for 1 output > 1.5 for 2)
    assert ms.tolist() == [[1.0, 1.5, 3.0], [1.5, 1.5, 4.0]]


def test_scaled_rest_follows_the_kept_activation_elements():
    import keras
    from keras import layers

    from tfcompress.graph import DependencyGraph

    inputs = keras.Input((4, 4, 3))
    x = layers.Conv2D(16, 1, name="conv_a")(inputs)
    x = layers.Conv2D(16, 1, name="conv_b")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    graph = DependencyGraph(keras.Model(inputs, layers.Dense(3, name="dense")(x)))
    a, b = (g.index for g in graph.prunable_groups)
    # the layers cost nothing (one grid point along each axis pruning changes): only the
    # rest is left
    table = CostTable({"conv_a": LayerCost(("out",), ((16,),), [0.0]),
                       "conv_b": LayerCost(("in", "out"), ((16,), (16,)), [[0.0]]),
                       "dense": LayerCost(("in",), ((16,),), [0.0])},
                      base_ms=1.0, scaled_ms=2.0, multiple=1)
    predictor = latency.Predictor(graph, table, {a: range(16), b: range(16)})
    # activation elements: image 48 + conv_a 16 * 16 + conv_b 16 * 16 + gap 16 + dense 3
    # = 579 at full; keeping A = 4, B = 8: 48 + 16 * 4 + 16 * 8 + 8 + 3 = 251
    assert predictor.activation_fraction({a: 4, b: 8}) == pytest.approx(251 / 579)
    assert predictor.total_ms({a: 4, b: 8}) == pytest.approx(1.0 + 2.0 * 251 / 579)
    assert predictor.total_ms({a: 16, b: 16}) == pytest.approx(table.full_ms()) == 3.0


def test_table_of_fewer_axes_than_pruning_changes_is_refused():
    from tfcompress.graph import DependencyGraph

    model = conv_bn_net(widths=(8, 8, 16))
    # measured with conv0's channels pinned (exclude): conv0 spans no axis, conv1 "out"
    excluded = DependencyGraph(model, exclude=["conv0"])
    sites = latency.layer_sites(excluded)
    assert [s.axes for s in sites[:2]] == [(), ("out",)]  # conv0, conv1
    table = CostTable({  # one grid point, the full width, along each axis
        s.name: LayerCost(s.axes, [[{"in": s.in_shape, "out": s.out_shape}[a][-1]]
                                   for a in s.axes], np.ones((1,) * len(s.axes)))
        for s in sites}, multiple=8)
    orders = {g.index: range(g.size) for g in excluded.prunable_groups}
    latency.Predictor(excluded, table, orders)  # the graph it was measured for: accepted
    graph = DependencyGraph(model)  # wrapped without the exclude: conv0's outputs change
    orders = {g.index: range(g.size) for g in graph.prunable_groups}
    # before, conv0 and conv1 were priced at full width whatever they kept
    with pytest.raises(ValueError, match=re.escape(
            "The cost table's entry for layer 'conv0' spans axes []; pruning changes its "
            "output channels too in model 'conv_bn_net' (axes ['out']): a table "
            "measured with another exclude list?")):
        latency.Predictor(graph, table, orders)


def test_nested_models_reusing_a_layer_name_are_refused_before_timing(tmp_path, monkeypatch):
    def block(channels, size, name):
        inputs = keras.Input((size, size, channels))
        x = keras.layers.Conv2D(channels, 3, padding="same", name="conv")(inputs)
        return keras.Model(inputs, keras.layers.ReLU(name="relu")(x), name=name)

    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(8, 1, name="stem")(inputs)
    x = block(8, 16, "block1")(x)
    x = keras.layers.MaxPooling2D(4)(x)
    x = block(8, 4, "block2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(x), name="nested")

    def no_timing(*args, **kwargs):
        raise AssertionError("timed before refusing")

    monkeypatch.setattr(measure_lib, "layer_ms", no_timing)
    monkeypatch.setattr(measure_lib, "call_overhead_ms", no_timing)
    # before, one entry "conv" (the 4x4 block's) priced both convs, or the fit failed
    # after the layers were timed ("a table of another model?")
    with pytest.raises(ValueError, match=re.escape(
            "in model 'nested' layers share a name (nested models reusing layer names?): "
            "'conv' (2 layers; modelled: 16x16x8 -> 16x16x8, 4x4x8 -> 4x4x8). Give each "
            "layer its own name")):
        latency.measure_cost_table(model, 1, cache_dir=tmp_path, verbose=0)


def test_layer_scale_prices_layers_inside_the_model_and_round_trips():
    table = CostTable(_table().layers, base_ms=1.5, scaled_ms=0.5, layer_scale=0.25)
    assert table.layer_ms("conv", {"in": 16, "out": 32}) == pytest.approx(0.25 * 8)
    assert table.layer_ms("conv", {}) == pytest.approx(2.0)  # no counts: the full width
    assert table.full_ms() == pytest.approx(1.5 + 0.5 + 0.25 * (8 + 0.5))
    assert CostTable.from_json(table.to_json()) == table
    with pytest.raises(ValueError, match="Received: layer_scale=-1"):
        CostTable({}, layer_scale=-1)


def test_nonnegative_fit_recovers_the_rest_and_drops_negative_parts():
    from tfcompress.latency.calibrate import nonnegative_fit

    # columns: 1, layers' ms, activation fraction; ms = 1 + 0.4 layers + 3 activations
    X = [[1, 22.0, 1.0], [1, 15.0, 0.75], [1, 12.0, 0.5], [1, 9.0, 0.25]]
    y = [1 + 0.4 * L + 3 * a for _, L, a in X]
    np.testing.assert_allclose(nonnegative_fit(X, y), [1.0, 0.4, 3.0], atol=1e-9)
    # times that grow as the activations shrink: that column is dropped (coefficient 0),
    # the rest is fitted on the others
    y = [2 + 0.5 * L - 1 * a for _, L, a in X]
    c = nonnegative_fit(X, y)
    assert c[2] == 0 and (c >= 0).all()
