"""Pruning schedules: pure policies, no state, no TensorFlow.

A pruning schedule maps a training step (the optimizer's `iterations`, so it survives
checkpoints) to `(should_prune, ratio)`; the callbacks in `tfcompress.callbacks` ask it
before every batch. `ACoSPTemperature` maps an epoch (a float) to a soft top-k temperature.

    schedule = Polynomial(initial_ratio=0.0, final_ratio=0.8, begin_step=0, end_step=2000)
    schedule(1000)                       # -> (True, 0.7)
    deserialize(serialize(schedule)) == schedule

Every schedule's `get_config()` holds exactly its constructor arguments, so
`type(s).from_config(s.get_config()) == s`.
"""

import math
import warnings

from tfcompress.numbers import check_ratio, is_int, is_number, plain


class ScheduleWarning(UserWarning):
    """A schedule built from valid arguments that does not prune as they suggest (a
    `Polynomial` whose `frequency` leaves it one event, at `begin_step`). A Python
    warning, so a schedule meant that way can silence exactly this one with
    `warnings.filterwarnings("ignore", category=tfcompress.schedules.ScheduleWarning)`."""


def _check_step(value, name, minimum=0):
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")


def _check_order(begin_name, begin, end_name, end, strict=False):
    if end < begin or (strict and end == begin):
        relation = "after" if strict else "at or after"
        raise ValueError(
            f"The schedule ends before it begins: {end_name} must be {relation} "
            f"{begin_name}. Received: {begin_name}={begin}, {end_name}={end}"
        )


def _check_rising(initial_ratio, final_ratio):
    if final_ratio < initial_ratio:
        raise ValueError(
            "The ratio of a pruning schedule only rises (a pruned channel or weight stays "
            "pruned): final_ratio must be >= initial_ratio. Received: "
            f"initial_ratio={initial_ratio}, final_ratio={final_ratio}"
        )


class Schedule:
    """Base class: `schedule(step) -> (should_prune, ratio)`, pure and serialisable."""

    def __call__(self, step):
        raise NotImplementedError

    @property
    def last_step(self):
        """The last step at which the schedule prunes."""
        raise NotImplementedError

    @property
    def event_steps(self):
        """The steps at which the schedule prunes, in order (a `range`)."""
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class OneShot(Schedule):
    """Prune once, to `ratio`, at `step`."""

    def __init__(self, ratio, step=0):
        check_ratio("ratio", ratio)
        _check_step(step, "step")
        self.ratio = plain(ratio)
        self.step = plain(step)

    def __call__(self, step):
        return step == self.step, float(self.ratio)

    @property
    def last_step(self):
        return self.step

    @property
    def event_steps(self):
        return range(self.step, self.step + 1)

    def get_config(self):
        return {"ratio": self.ratio, "step": self.step}


class Iterative(Schedule):
    """Prune every `frequency` steps from `begin_step` to `end_step`, the ratio rising in
    equal increments from `initial_ratio` to `final_ratio` (reached at the last event).

    This is the prune -> retrain -> prune loop of Han et al. and Li et al. inside one fit.
    """

    def __init__(self, final_ratio, begin_step, end_step, frequency, initial_ratio=0.0):
        check_ratio("final_ratio", final_ratio)
        check_ratio("initial_ratio", initial_ratio)
        _check_step(begin_step, "begin_step")
        _check_step(end_step, "end_step")
        _check_step(frequency, "frequency", minimum=1)
        _check_order("begin_step", begin_step, "end_step", end_step)
        _check_rising(initial_ratio, final_ratio)
        self.final_ratio = plain(final_ratio)
        self.begin_step = plain(begin_step)
        self.end_step = plain(end_step)
        self.frequency = plain(frequency)
        self.initial_ratio = plain(initial_ratio)

    @property
    def num_events(self):
        return (self.end_step - self.begin_step) // self.frequency + 1

    @property
    def last_step(self):
        return self.begin_step + (self.num_events - 1) * self.frequency

    @property
    def event_steps(self):
        return range(self.begin_step, self.last_step + 1, self.frequency)

    def __call__(self, step):
        offset = step - self.begin_step
        if offset < 0 or step > self.end_step or offset % self.frequency:
            return False, self._ratio_after(offset)
        return True, self._ratio_after(offset)

    def _ratio_after(self, offset):
        done = min(max(offset // self.frequency + 1, 0), self.num_events)
        span = self.final_ratio - self.initial_ratio
        return float(self.initial_ratio + span * done / self.num_events)

    def get_config(self):
        return {
            "final_ratio": self.final_ratio,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
            "initial_ratio": self.initial_ratio,
        }


class Polynomial(Schedule):
    """Zhu & Gupta's gradual schedule, as TFMOT's `PolynomialDecay`:

        ratio(step) = final + (initial - final) * (1 - p) ** power,
        p = clip((step - begin_step) / (end_step - begin_step), 0, 1),

    pruning at `begin_step + i * frequency` for steps in [begin_step, end_step].

    A `frequency` above `end_step - begin_step` leaves one event, at `begin_step`, to
    `initial_ratio` (TFMOT's `PolynomialDecay` too): `final_ratio` is never reached, and
    with `initial_ratio=0` nothing is pruned. Such a schedule warns at construction
    (`ScheduleWarning`, e.g. the default `frequency=100` with `end_step - begin_step = 50`).
    """

    def __init__(self, initial_ratio, final_ratio, begin_step, end_step, power=3, frequency=100):
        check_ratio("initial_ratio", initial_ratio)
        check_ratio("final_ratio", final_ratio)
        _check_step(begin_step, "begin_step")
        _check_step(end_step, "end_step")
        _check_step(frequency, "frequency", minimum=1)
        _check_order("begin_step", begin_step, "end_step", end_step, strict=True)
        _check_rising(initial_ratio, final_ratio)
        if not is_number(power) or power <= 0:
            raise ValueError(f"power must be a positive number. Received: power={power!r}")
        self.initial_ratio = plain(initial_ratio)
        self.final_ratio = plain(final_ratio)
        self.begin_step = plain(begin_step)
        self.end_step = plain(end_step)
        self.power = plain(power)
        self.frequency = plain(frequency)
        if self.frequency > self.end_step - self.begin_step:
            warnings.warn(self._single_event_message(), ScheduleWarning, stacklevel=2)

    def _single_event_message(self):
        span = self.end_step - self.begin_step
        nothing = " (so it prunes nothing)" if self.initial_ratio == 0 else ""
        return (
            f"{self!r} has one pruning event, at begin_step={self.begin_step}, to "
            f"initial_ratio={self.initial_ratio}{nothing}: frequency={self.frequency} is "
            f"more than end_step - begin_step = {span}, so no event falls after begin_step "
            f"and final_ratio={self.final_ratio} is never reached. TFMOT's PolynomialDecay "
            f"behaves the same. Give a frequency of at most {span} (one that divides {span} "
            "makes end_step an event, reaching final_ratio), or use OneShot(ratio, step) "
            "for a single event. If one event is meant, silence this with "
            "warnings.filterwarnings('ignore', "
            "category=tfcompress.schedules.ScheduleWarning)."
        )

    @property
    def last_step(self):
        return self.begin_step + (self.end_step - self.begin_step) // self.frequency * (
            self.frequency
        )

    @property
    def event_steps(self):
        return range(self.begin_step, self.last_step + 1, self.frequency)

    def __call__(self, step):
        p = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        ratio = self.final_ratio + (self.initial_ratio - self.final_ratio) * (1 - p) ** self.power
        should = self.begin_step <= step <= self.end_step and (
            (step - self.begin_step) % self.frequency == 0
        )
        return should, float(ratio)

    def get_config(self):
        return {
            "initial_ratio": self.initial_ratio,
            "final_ratio": self.final_ratio,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


class ACoSPTemperature:
    """ACoSP's soft top-k schedule: the temperature decays exponentially (linearly in
    log space) from `initial_temperature` at `starting_epoch` to `final_temperature` at
    `ending_epoch`; from `ending_epoch` on the masks are hard, keeping
    `(1 - final_ratio)` of each group's channels (ACoSP's `final_sparsity`: the fraction
    of every conv's output channels removed; compression ratio N is `1 - 1 / N`).

    `schedule(epoch) -> temperature`; `schedule.is_hard(epoch) -> bool`. Epochs are
    floats (`step / steps_per_epoch`).

    update: "continuous" (default): the temperature follows the fractional epoch, so it
        changes within an epoch and reaches `final_temperature` at `ending_epoch`.
        "epoch_end": as ACoSP's training loops (`pruner.update_mask_layers(model, epoch)`
        after each epoch): constant within an epoch, epoch e training at the value of
        epoch e - 1 (epoch 0 at `initial_temperature`).
    """

    UPDATES = ("continuous", "epoch_end")

    def __init__(
        self,
        final_ratio,
        ending_epoch,
        *,
        starting_epoch=0,
        initial_temperature=1.0,
        final_temperature=1e-3,
        update="continuous",
    ):
        check_ratio("final_ratio", final_ratio)
        _check_step(starting_epoch, "starting_epoch")
        _check_step(ending_epoch, "ending_epoch")
        if ending_epoch <= starting_epoch:
            raise ValueError(
                "Soft top-k epochs are out of order: ending_epoch must be after "
                f"starting_epoch. Received: starting_epoch={starting_epoch}, "
                f"ending_epoch={ending_epoch}"
            )
        for name, t in (
            ("initial_temperature", initial_temperature),
            ("final_temperature", final_temperature),
        ):
            if not is_number(t) or t <= 0:
                raise ValueError(f"{name} must be a positive number. Received: {name}={t!r}")
        if final_temperature > initial_temperature:
            raise ValueError(
                "The temperature must anneal downwards: final_temperature must be <= "
                f"initial_temperature. Received: initial_temperature={initial_temperature}, "
                f"final_temperature={final_temperature}"
            )
        if update not in self.UPDATES:
            raise ValueError(f"update must be one of {self.UPDATES}. Received: update={update!r}")
        self.final_ratio = plain(final_ratio)
        self.ending_epoch = plain(ending_epoch)
        self.starting_epoch = plain(starting_epoch)
        self.initial_temperature = plain(initial_temperature)
        self.final_temperature = plain(final_temperature)
        self.update = update

    def __call__(self, epoch):
        if self.update == "epoch_end":
            epoch = math.floor(epoch) - 1  # set after epoch e - 1 from its index
        span = self.ending_epoch - self.starting_epoch
        p = min(1.0, max(0.0, (epoch - self.starting_epoch) / span))
        log_t = math.log(self.initial_temperature) - p * (
            math.log(self.initial_temperature) - math.log(self.final_temperature)
        )
        return float(math.exp(log_t))

    def is_hard(self, epoch):
        return epoch >= self.ending_epoch

    def get_config(self):
        return {
            "final_ratio": self.final_ratio,
            "ending_epoch": self.ending_epoch,
            "starting_epoch": self.starting_epoch,
            "initial_temperature": self.initial_temperature,
            "final_temperature": self.final_temperature,
            "update": self.update,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "final_sparsity" in config:  # the name before issue 14 (stored results, runs)
            config["final_ratio"] = config.pop("final_sparsity")
        return cls(**config)

    __eq__ = Schedule.__eq__
    __hash__ = Schedule.__hash__
    __repr__ = Schedule.__repr__


SCHEDULES = {
    "OneShot": OneShot,
    "Iterative": Iterative,
    "Polynomial": Polynomial,
    "ACoSPTemperature": ACoSPTemperature,
}


def serialize(schedule):
    """`{"class_name": ..., "config": ...}` of a schedule (JSON-ready)."""
    name = type(schedule).__name__
    if SCHEDULES.get(name) is not type(schedule):
        raise ValueError(
            f"Not a registered schedule. Received: schedule={schedule!r}. "
            f"Known: {sorted(SCHEDULES)}"
        )
    return {"class_name": name, "config": schedule.get_config()}


def deserialize(data):
    """Inverse of `serialize`."""
    name = data.get("class_name") if isinstance(data, dict) else None
    if name not in SCHEDULES:
        raise ValueError(
            f"Unknown schedule class_name. Received: {data!r}. Known: {sorted(SCHEDULES)}"
        )
    if not isinstance(data.get("config"), dict):
        raise ValueError(
            f"A serialized {name} holds its arguments as a dict under 'config' (see "
            f"`serialize`). Received: {data!r}"
        )
    return SCHEDULES[name].from_config(data["config"])
