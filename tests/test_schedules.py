"""Schedules are pure policies: values, exact get_config round trips, bad input."""

import math
import re
import warnings

import numpy as np
import pytest

from tfcompress import schedules
from tfcompress.schedules import ACoSPTemperature, Iterative, OneShot, Polynomial

ALL = [
    OneShot(0.5, step=10),
    Iterative(0.6, begin_step=0, end_step=90, frequency=30, initial_ratio=0.2),
    Polynomial(0.0, 0.8, begin_step=100, end_step=1100, power=3, frequency=50),
    ACoSPTemperature(0.5, ending_epoch=8, starting_epoch=2, initial_temperature=2.0,
                     final_temperature=0.01),
]


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_get_config_round_trip(schedule):
    again = type(schedule).from_config(schedule.get_config())
    assert again == schedule and again.get_config() == schedule.get_config()
    assert schedules.deserialize(schedules.serialize(schedule)) == schedule


def test_one_shot():
    s = OneShot(0.5, step=10)
    assert s(9) == (False, 0.5) and s(10) == (True, 0.5) and s(11) == (False, 0.5)


def test_iterative_rises_in_equal_steps():
    s = Iterative(0.6, begin_step=0, end_step=90, frequency=30, initial_ratio=0.2)
    events = [(t, r) for t in range(0, 200) for should, r in [s(t)] if should]
    assert [t for t, _ in events] == [0, 30, 60, 90]
    assert [round(r, 6) for _, r in events] == [0.3, 0.4, 0.5, 0.6]
    assert s.last_step == 90 and s(500) == (False, pytest.approx(0.6))


def test_polynomial_matches_tfmot_formula():
    s = Polynomial(0.1, 0.8, begin_step=100, end_step=1100, power=3, frequency=50)
    for step in (0, 100, 150, 600, 1100, 2000):
        p = min(1.0, max(0.0, (step - 100) / 1000))
        expected = 0.8 + (0.1 - 0.8) * (1 - p) ** 3
        should, ratio = s(step)
        assert ratio == pytest.approx(expected)
        assert should == (100 <= step <= 1100 and (step - 100) % 50 == 0)


def test_acosp_temperature_log_linear():
    s = ACoSPTemperature(0.5, ending_epoch=4, starting_epoch=0, initial_temperature=1.0,
                         final_temperature=1e-4)
    assert s(0) == pytest.approx(1.0) and s(2) == pytest.approx(1e-2)
    assert s(4) == pytest.approx(1e-4) and s(9) == pytest.approx(1e-4)
    assert not s.is_hard(3.99) and s.is_hard(4)


@pytest.mark.parametrize("make, message", [
    (lambda: OneShot(1.0), "ratio=1.0"),
    (lambda: OneShot(-0.1), "ratio=-0.1"),
    (lambda: Polynomial(0.0, 1.2, 0, 10), "final_ratio=1.2"),
    (lambda: Iterative(0.5, begin_step=100, end_step=50, frequency=10), "ends before it begins"),
    (lambda: Polynomial(0.0, 0.5, begin_step=10, end_step=10), "ends before it begins"),
    (lambda: Iterative(0.5, 0, 10, frequency=0), "frequency=0"),
    (lambda: ACoSPTemperature(0.5, ending_epoch=2, starting_epoch=5), "out of order"),
    (lambda: ACoSPTemperature(1.5, ending_epoch=5), "final_ratio=1.5"),
    (lambda: ACoSPTemperature(0.5, 5, final_temperature=2.0), "anneal downwards"),
    (lambda: Iterative(0.5, 0, 10, 2, initial_ratio=0.7), "only rises .* Received: "
                                                          "initial_ratio=0.7, final_ratio=0.5"),
    (lambda: Polynomial(0.6, 0.5, 0, 10), "only rises"),
    (lambda: OneShot(np.float32(1.5)), r"Received: ratio=np.float32\(1.5\)"),
    (lambda: Iterative(0.5, 0, 10, frequency=np.int64(0)), "frequency=np.int64"),
    (lambda: Iterative(0.5, 0, 10.0, frequency=1), "end_step=10.0"),
])
@pytest.mark.slow
def test_bad_schedules(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_numpy_scalars_are_taken_and_kept_as_python_numbers():
    schedule = Iterative(np.float32(0.5), np.int64(2), np.int64(11), np.int32(3))
    config = schedule.get_config()
    assert config == {"final_ratio": 0.5, "begin_step": 2, "end_step": 11, "frequency": 3,
                      "initial_ratio": 0.0}
    assert all(type(v) in (int, float) for v in config.values())  # JSON-able
    assert schedule(5) == (True, 0.25)  # the second of four events
    assert Polynomial(np.float64(0.0), np.float32(0.8), 0, 10, power=np.int64(3),
                      frequency=np.int64(5)).power == 3


def test_deserialize_unknown():
    with pytest.raises(ValueError, match="Unknown schedule"):
        schedules.deserialize({"class_name": "Cosine", "config": {}})


def test_deserialize_without_a_config_names_it():
    data = {"class_name": "OneShot"}  # was a KeyError: 'config'
    with pytest.raises(ValueError, match=re.escape(
            "A serialized OneShot holds its arguments as a dict under 'config' (see "
            "`serialize`). Received: {'class_name': 'OneShot'}")):  # fmt: skip
        schedules.deserialize(data)


def test_public_ratio_helpers_check_the_ratio():
    """keep_count(8, 1.5) kept 1 channel, keep_count(8, -0.5) all 8; magnitude_mask(w, 80)
    (a percent) masked every weight: ratios are checked where they are taken."""
    from tfcompress.importance import magnitude_mask
    from tfcompress.pruners.ranking import keep_count

    for bad in (1.5, -0.5, 1, True, "0.5"):
        with pytest.raises(ValueError, match=re.escape(
                f"ratio must be a number in [0, 1). Received: ratio={bad!r}")):  # fmt: skip
            keep_count(8, bad)
    with pytest.raises(ValueError, match=re.escape(
            "sparsity must be a number in [0, 1). Received: sparsity=80")):  # fmt: skip
        magnitude_mask(np.ones(10), 80)
    with pytest.raises(ValueError, match=re.escape("n must be an integer >= 1. Received: n=0")):
        keep_count(0, 0.5)
    assert keep_count(8, np.float32(0.5)) == 4
    assert magnitude_mask(np.arange(10.0), 0.3).tolist() == [0, 0, 0] + [1] * 7


def test_acosp_temperature_takes_final_ratio():
    s = ACoSPTemperature(final_ratio=0.75, ending_epoch=4)
    assert s.final_ratio == 0.75 and s.get_config()["final_ratio"] == 0.75
    assert "final_sparsity" not in s.get_config()
    with pytest.raises(TypeError, match="final_sparsity"):
        ACoSPTemperature(final_sparsity=0.75, ending_epoch=4)


def test_acosp_temperature_reads_configs_saved_with_final_sparsity():
    old = {"class_name": "ACoSPTemperature",
           "config": {"final_sparsity": 0.5, "ending_epoch": 6, "starting_epoch": 0,
                      "initial_temperature": 1.0, "final_temperature": 1e-3}}
    assert schedules.deserialize(old) == ACoSPTemperature(final_ratio=0.5, ending_epoch=6)


def _acosp_calc_temperature(step, min_step, max_step, t0, t1):
    """ACoSP's `SoftTopK.calc_temperature` (acosp/masks/soft_top_k.py)."""
    if step <= min_step:
        return t0
    p = min((step - min_step) / (max_step - min_step), 1)
    return math.exp(math.log(t0) - p * (math.log(t0) - math.log(t1)))


def test_acosp_temperature_epoch_end_update_follows_the_reference_loop():
    s = ACoSPTemperature(0.5, 10, starting_epoch=2, update="epoch_end")
    current = 1.0  # SoftTopK.current_temperature starts at initial_temperature
    for epoch in range(10):  # ACoSP: train the epoch, then update_mask_layers(model, epoch)
        for fraction in (0.0, 0.3, 0.99):
            assert s(epoch + fraction) == pytest.approx(current, rel=1e-12)
        current = _acosp_calc_temperature(epoch, 2, 10, 1.0, 1e-3)
    assert s.is_hard(10) and not s.is_hard(9.99)
    assert ACoSPTemperature(0.5, 10, starting_epoch=2)(9.5) < s(9.5)  # continuous: lower


def test_acosp_temperature_update_is_checked_and_serialised():
    s = ACoSPTemperature(0.5, 4, update="epoch_end")
    assert schedules.deserialize(schedules.serialize(s)) == s
    assert s != ACoSPTemperature(0.5, 4)
    with pytest.raises(ValueError, match="Received: update='step'"):
        ACoSPTemperature(0.5, 4, update="step")


@pytest.mark.parametrize("schedule", ALL[:3], ids=lambda s: type(s).__name__)
def test_event_steps_are_the_steps_that_prune(schedule):
    events = [t for t in range(0, 1500) if schedule(t)[0]]
    assert list(schedule.event_steps) == events
    assert schedule.event_steps[-1] == schedule.last_step


def test_polynomial_with_frequency_over_its_span_warns_of_its_one_event():
    with pytest.warns(schedules.ScheduleWarning) as caught:
        s = Polynomial(0.0, 0.8, begin_step=0, end_step=50)  # the default frequency=100
    assert list(s.event_steps) == [0] and s(0) == (True, 0.0)
    (message,) = [str(w.message) for w in caught]
    assert message == (
        "Polynomial(initial_ratio=0.0, final_ratio=0.8, begin_step=0, end_step=50, "
        "power=3, frequency=100) has one pruning event, at begin_step=0, to "
        "initial_ratio=0.0 (so it prunes nothing): frequency=100 is more than end_step - "
        "begin_step = 50, so no event falls after begin_step and final_ratio=0.8 is never "
        "reached. TFMOT's PolynomialDecay behaves the same. Give a frequency of at most 50 "
        "(one that divides 50 makes end_step an event, reaching final_ratio), or use "
        "OneShot(ratio, step) for a single event. If one event is meant, silence this "
        "with warnings.filterwarnings('ignore', "
        "category=tfcompress.schedules.ScheduleWarning).")
    with pytest.warns(schedules.ScheduleWarning, match="to initial_ratio=0.2: frequency") as c:
        Polynomial(0.2, 0.8, begin_step=10, end_step=20, frequency=11)
    assert "prunes nothing" not in str(c[0].message)


def test_polynomial_with_frequency_up_to_its_span_is_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error", schedules.ScheduleWarning)
        assert list(Polynomial(0.0, 0.8, 0, 50, frequency=50).event_steps) == [0, 50]
        assert Polynomial(0.0, 0.8, 0, 100).last_step == 100  # the default frequency
