"""Learning-rate schedules: plain, picklable functions of the step.

"If you have time to tune only one hyperparameter, tune the learning rate" (notes 000) —
and then tune how it changes over time (notes 002 and 004).

A *schedule* is a callable ``schedule(t) -> float`` giving the **absolute** learning rate
of step ``t = 0, 1, 2, ...`` (``t = 0`` is the rate of the first optimizer step). Every
schedule here is a small frozen dataclass: it pickles, compares by value and has a readable
``repr``; it holds no state, so a resumed run only needs ``t``.

Compose them::

    join([LinearWarmup(eta_max=0.1, warmup_steps=100), CosineAnnealing(eta_max=0.1, T_max=900)],
         boundaries=[100])        # piece i runs on [b_{i-1}, b_i) and sees t − b_{i-1}
    0.5 * CosineAnnealing(eta_max=0.1, T_max=100)        # scaled
    with_warmup(StepDecay(eta_max=0.1, step_size=30), warmup_steps=10)

Attach any schedule to any ``torch.optim`` optimizer (descentlab's or torch's) with
:class:`ScheduleLR`, a real ``torch.optim.lr_scheduler.LRScheduler``::

    scheduler = ScheduleLR(optimizer, SCHEDULES["warm_restarts"](T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1))
    for batch in data:
        ...; optimizer.step(); scheduler.step()

:data:`SCHEDULES` maps lowercase names to the schedule classes (factories taking keyword
arguments). Shared keyword names: ``eta_max`` (initial / peak rate), ``eta_min`` (floor),
``T_max`` (length of the schedule, in steps), ``warmup_steps``, ``gamma`` (a factor per step
or per period). :class:`ReduceOnPlateau` is the one metric-driven (stateful) schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from .validation import check_bool, check_callable, check_choice, check_int, check_number

__all__ = [
    "Schedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "PolynomialDecay",
    "LinearWarmup",
    "CosineAnnealing",
    "CosineWarmRestarts",
    "Cyclic",
    "OneCycle",
    "WarmupCosine",
    "InverseSqrt",
    "Join",
    "Scaled",
    "join",
    "with_warmup",
    "ReduceOnPlateau",
    "ScheduleLR",
    "SCHEDULES",
]


# -- argument checks --------------------------------------------------------------------
def _rates(eta_min: float, eta_max: float) -> None:
    check_number("eta_max", eta_max, low=0.0)
    check_number("eta_min", eta_min, low=0.0)
    if eta_min > eta_max:
        raise ValueError(f"eta_min must be <= eta_max, got eta_min={eta_min!r} > eta_max={eta_max!r}")


def _step(t: Any) -> int:
    if isinstance(t, bool) or not isinstance(t, Integral) or t < 0:
        raise ValueError(f"a schedule is evaluated at steps t = 0, 1, 2, ..., got t={t!r}")
    return int(t)


def _cosine(eta_min: float, eta_max: float, fraction: float) -> float:
    """``η_min + ½(η_max − η_min)(1 + cos(π·fraction))`` — the shape of SGDR (notes 002, 004)."""
    return eta_min + (eta_max - eta_min) * (1 + math.cos(math.pi * fraction)) / 2


# -- base -------------------------------------------------------------------------------
class Schedule:
    """A learning rate as a function of the step: ``schedule(t) -> float`` (absolute lr).

    ``k * schedule`` scales it; :func:`join` and :func:`with_warmup` compose schedules.
    """

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def values(self, steps: int) -> list[float]:
        """``[schedule(0), ..., schedule(steps − 1)]`` (e.g. to plot it)."""
        return [self(t) for t in range(check_int("steps", steps, low=0))]

    def __mul__(self, factor: float) -> Scaled:
        return Scaled(schedule=self, factor=factor)

    __rmul__ = __mul__


_frozen = dataclass(frozen=True, kw_only=True, eq=True)


@_frozen
class Constant(Schedule):
    """``η_t = η_max``."""

    eta_max: float

    def __post_init__(self) -> None:
        check_number("eta_max", self.eta_max, low=0.0)

    def __call__(self, t: int) -> float:
        _step(t)
        return float(self.eta_max)


@_frozen
class StepDecay(Schedule):
    """Step decay (notes 004): ``η_t = η_max · γ^⌊t/τ⌋`` with ``τ = step_size`` (``StepLR``)."""

    eta_max: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_number("eta_max", self.eta_max, low=0.0)
        check_int("step_size", self.step_size, low=1)
        check_number("gamma", self.gamma, low=0.0, high=1.0, low_open=True)

    def __call__(self, t: int) -> float:
        return self.eta_max * self.gamma ** (_step(t) // self.step_size)


@_frozen
class ExponentialDecay(Schedule):
    """Exponential decay (notes 004): ``η_t = η_max · γ^t`` or ``η_t = η_max · e^{−λt}``.

    Give exactly one of ``gamma`` (factor per step, ``ExponentialLR``) and ``decay_rate`` (λ);
    ``e^{−λt} = γ^t`` with ``γ = e^{−λ}``.
    """

    eta_max: float
    gamma: float | None = None
    decay_rate: float | None = None

    def __post_init__(self) -> None:
        check_number("eta_max", self.eta_max, low=0.0)
        if (self.gamma is None) == (self.decay_rate is None):
            raise ValueError(
                f"give exactly one of gamma (η·γ^t) and decay_rate (η·e^(−λt)), "
                f"got gamma={self.gamma!r}, decay_rate={self.decay_rate!r}"
            )
        if self.gamma is not None:
            check_number("gamma", self.gamma, low=0.0, high=1.0, low_open=True)
        else:
            check_number("decay_rate", self.decay_rate, low=0.0)

    def __call__(self, t: int) -> float:
        t = _step(t)
        if self.gamma is not None:
            return self.eta_max * self.gamma**t
        return self.eta_max * math.exp(-self.decay_rate * t)


@_frozen
class PolynomialDecay(Schedule):
    """``η_t = η_min + (η_max − η_min) · (1 − min(t, T_max)/T_max)^power`` (``PolynomialLR``)."""

    eta_max: float
    T_max: int
    power: float = 1.0
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        _rates(self.eta_min, self.eta_max)
        check_int("T_max", self.T_max, low=1)
        check_number("power", self.power, low=0.0, low_open=True)

    def __call__(self, t: int) -> float:
        left = 1 - min(_step(t), self.T_max) / self.T_max
        return self.eta_min + (self.eta_max - self.eta_min) * left**self.power


@_frozen
class LinearWarmup(Schedule):
    """Linear warm-up: ``η_t = η_min + (η_max − η_min) · min(t, T_w)/T_w``, ``T_w = warmup_steps``.

    Rises from ``eta_min`` at ``t = 0`` to ``eta_max`` at ``t = T_w`` and stays there
    (``LinearLR`` with ``start_factor = η_min/η_max``). ``warmup_steps=0`` is constant ``η_max``.
    """

    eta_max: float
    warmup_steps: int
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        _rates(self.eta_min, self.eta_max)
        check_int("warmup_steps", self.warmup_steps, low=0)

    def __call__(self, t: int) -> float:
        t = _step(t)
        if t >= self.warmup_steps:
            return float(self.eta_max)
        return self.eta_min + (self.eta_max - self.eta_min) * t / self.warmup_steps


@_frozen
class CosineAnnealing(Schedule):
    """Cosine annealing (notes 004; Loshchilov & Hutter 2017)::

        η_t = η_min + ½(η_max − η_min)(1 + cos(π · t/T_max))    for t ≤ T_max,   η_min after.

    Equal to ``CosineAnnealingLR`` for ``t ≤ T_max`` (torch's continues the cosine back up).
    """

    eta_max: float
    T_max: int
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        _rates(self.eta_min, self.eta_max)
        check_int("T_max", self.T_max, low=1)

    def __call__(self, t: int) -> float:
        return _cosine(self.eta_min, self.eta_max, min(_step(t), self.T_max) / self.T_max)


@_frozen
class CosineWarmRestarts(Schedule):
    """Cosine annealing with warm restarts, SGDR (Loshchilov & Hutter 2017; notes 002)::

        η_t = η_min + ½(η_max,i − η_min)(1 + cos(π · T_cur/T_i))

    ``T_cur`` counts the steps since the last restart; the ``i``-th period (``i = 0, 1, ...``)
    lasts ``T_i = T_0 · T_mult^i`` steps and peaks at ``η_max,i = max(η_max · peak_decay^i, η_min)``.
    ``T_mult`` may be a float ≥ 1: periods then end at real positions and ``T_cur`` keeps
    the fractional part, as ``CosineAnnealingWarmRestarts`` does internally (torch itself
    accepts integer ``T_mult`` only). The notes' sample (``t_i=10, t_mult=2, min_lr=0.01,
    max_lr=0.1``) is ``CosineWarmRestarts(T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1)``.
    """

    T_0: int
    T_mult: float = 1
    eta_min: float = 0.0
    eta_max: float
    peak_decay: float = 1.0

    def __post_init__(self) -> None:
        check_int("T_0", self.T_0, low=1)
        check_number("T_mult", self.T_mult, low=1.0)
        _rates(self.eta_min, self.eta_max)
        check_number("peak_decay", self.peak_decay, low=0.0, high=1.0, low_open=True)

    def position(self, t: int) -> tuple[int, float, float]:
        """``(i, T_cur, T_i)``: index of the current period, steps into it, its length."""
        t = _step(t)
        if self.T_mult == 1:
            return t // self.T_0, t % self.T_0, self.T_0
        i, start, period = 0, 0, self.T_0
        while t - start >= period:
            start, period, i = start + period, period * self.T_mult, i + 1
        return i, t - start, period

    def __call__(self, t: int) -> float:
        i, t_cur, period = self.position(t)
        peak = self.eta_max * self.peak_decay**i if self.peak_decay != 1 else self.eta_max
        return _cosine(self.eta_min, max(peak, self.eta_min), t_cur / period)


_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@_frozen
class Cyclic(Schedule):
    """Cyclical learning rates (Smith 2017; notes 004, "triangular schedule") — ``CyclicLR``::

        L = up + down,  c = ⌊1 + t/L⌋ (cycle, from 1),  x = 1 + t/L − c ∈ [0, 1)
        s = x / r if x ≤ r else (x − 1)/(r − 1),        r = up/L
        η_t = η_min + (η_max − η_min) · s · f,   f = 1 ("triangular"), 1/2^(c−1) ("triangular2"),
                                                  γ^t ("exp_range")

    with ``up = step_size_up`` and ``down = step_size_down`` (default ``up``). For ``up =
    down = μ`` this is ``η_min + (η_max − η_min) · max(0, 1 − |t/μ − 2⌊t/(2μ)⌋ − 1|)``. The
    notes write ``⌊t/μ⌋`` instead of ``⌊t/(2μ)⌋`` inside — a typo: taken literally the rate
    stays at ``η_min`` after the first half-cycle.
    """

    eta_min: float
    eta_max: float
    step_size_up: int
    step_size_down: int | None = None
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        _rates(self.eta_min, self.eta_max)
        check_int("step_size_up", self.step_size_up, low=1)
        if self.step_size_down is not None:
            check_int("step_size_down", self.step_size_down, low=1)
        check_choice("mode", self.mode, _CYCLIC_MODES)
        check_number("gamma", self.gamma, low=0.0, high=1.0, low_open=True)

    def __call__(self, t: int) -> float:
        t = _step(t)
        up = float(self.step_size_up)
        total = up + float(self.step_size_up if self.step_size_down is None else self.step_size_down)
        ratio = up / total
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        if self.mode == "triangular":
            amplitude = 1.0
        elif self.mode == "triangular2":
            amplitude = 1 / (2.0 ** (cycle - 1))
        else:
            amplitude = self.gamma**t
        return self.eta_min + (self.eta_max - self.eta_min) * scale * amplitude


@_frozen
class OneCycle(Schedule):
    """The 1cycle policy (Smith & Topin 2019) — ``OneCycleLR`` without momentum cycling.

    Rises from ``η_0 = η_max/div_factor`` to ``η_max`` over the first ``pct_start·T_max``
    steps, then anneals to ``η_0/final_div_factor`` at step ``T_max − 1`` (``"cos"``:
    ``end + ½(start − end)(1 + cos(π·p))``, ``"linear"``: ``start + (end − start)·p``, with
    ``p`` the fraction of the phase done); ``three_phase`` goes back down to ``η_0`` first,
    symmetrically. After ``T_max − 1`` the final rate is held.
    """

    eta_max: float
    T_max: int
    pct_start: float = 0.3
    anneal_strategy: str = "cos"
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    three_phase: bool = False

    def __post_init__(self) -> None:
        check_number("eta_max", self.eta_max, low=0.0)
        check_int("T_max", self.T_max, low=2)
        check_number("pct_start", self.pct_start, low=0.0, high=1.0, low_open=True, high_open=True)
        check_choice("anneal_strategy", self.anneal_strategy, ("cos", "linear"))
        check_number("div_factor", self.div_factor, low=1.0)
        check_number("final_div_factor", self.final_div_factor, low=1.0)
        check_bool("three_phase", self.three_phase)

    def _phases(self) -> list[tuple[float, float, float]]:
        """``(end_step, start_lr, end_lr)`` of each phase, as torch computes them."""
        initial = self.eta_max / self.div_factor
        final = initial / self.final_div_factor
        warm_end = float(self.pct_start * self.T_max) - 1
        if self.three_phase:
            return [
                (warm_end, initial, self.eta_max),
                (float(2 * self.pct_start * self.T_max) - 2, self.eta_max, initial),
                (self.T_max - 1, initial, final),
            ]
        return [(warm_end, initial, self.eta_max), (self.T_max - 1, self.eta_max, final)]

    def __call__(self, t: int) -> float:
        t = min(_step(t), self.T_max - 1)
        phases = self._phases()
        start_step = 0.0
        for i, (end_step, start_lr, end_lr) in enumerate(phases):
            if t <= end_step or i == len(phases) - 1:
                p = (t - start_step) / (end_step - start_step)
                if self.anneal_strategy == "cos":
                    return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * p) + 1)
                return (end_lr - start_lr) * p + start_lr
            start_step = end_step
        raise AssertionError("unreachable")


@_frozen
class WarmupCosine(Schedule):
    """Linear warm-up then cosine decay (the Transformer / BERT recipe)::

        η_t = η_min + (η_max − η_min) · t/T_w                                   t < T_w
        η_t = η_min + ½(η_max − η_min)(1 + cos(π (t − T_w)/(T_max − T_w)))     T_w ≤ t ≤ T_max

    ``T_w = warmup_steps``; ``T_max`` is the total length, warm-up included; ``η_min`` after.
    It is ``join([LinearWarmup, CosineAnnealing], boundaries=[T_w])``.
    """

    eta_max: float
    T_max: int
    warmup_steps: int
    eta_min: float = 0.0
    _joined: Join = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _rates(self.eta_min, self.eta_max)
        check_int("warmup_steps", self.warmup_steps, low=0)
        check_int("T_max", self.T_max, low=self.warmup_steps + 1)
        joined = join(
            [
                LinearWarmup(eta_max=self.eta_max, warmup_steps=self.warmup_steps, eta_min=self.eta_min),
                CosineAnnealing(
                    eta_max=self.eta_max, T_max=self.T_max - self.warmup_steps, eta_min=self.eta_min
                ),
            ],
            boundaries=[self.warmup_steps],
        )
        object.__setattr__(self, "_joined", joined)

    def __call__(self, t: int) -> float:
        return self._joined(t)


@_frozen
class InverseSqrt(Schedule):
    """Inverse-square-root decay after a linear warm-up (Vaswani et al. 2017, "Noam")::

        η_t = η_max · t/T_w                    t < T_w
        η_t = η_max · √(max(T_w, 1)/max(t, 1))  t ≥ T_w

    ``T_w = warmup_steps``; continuous at ``t = T_w``, where it peaks at ``η_max``.
    """

    eta_max: float
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        check_number("eta_max", self.eta_max, low=0.0)
        check_int("warmup_steps", self.warmup_steps, low=0)

    def __call__(self, t: int) -> float:
        t = _step(t)
        if t < self.warmup_steps:
            return self.eta_max * t / self.warmup_steps
        return self.eta_max * math.sqrt(max(self.warmup_steps, 1) / max(t, 1))


# -- composition -------------------------------------------------------------------------
@_frozen
class Join(Schedule):
    """Schedules one after the other: piece ``i`` runs on ``[b_{i−1}, b_i)`` and sees
    ``t − b_{i−1}`` (``b_{−1} = 0``), like optax's ``join_schedules``. Unlike torch's
    ``SequentialLR`` it is a pure function of ``t``, so resuming cannot shift it."""

    schedules: tuple[Callable[[int], float], ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        for i, schedule in enumerate(self.schedules):
            check_callable(f"schedules[{i}]", schedule, "schedule(t) -> float")
        if len(self.schedules) != len(self.boundaries) + 1:
            raise ValueError(
                f"join needs one boundary fewer than schedules, got {len(self.schedules)} schedules "
                f"and {len(self.boundaries)} boundaries"
            )
        previous = 0
        for i, b in enumerate(self.boundaries):
            previous = check_int(f"boundaries[{i}]", b, low=previous)

    def __call__(self, t: int) -> float:
        t = _step(t)
        start = 0
        for schedule, end in zip(self.schedules, self.boundaries):
            if t < end:
                return float(schedule(t - start))
            start = end
        return float(self.schedules[-1](t - start))


def join(schedules: Sequence[Callable[[int], float]], boundaries: Sequence[int]) -> Join:
    """Concatenate ``schedules`` at the step ``boundaries`` (see :class:`Join`)."""
    for name, value in (("schedules", schedules), ("boundaries", boundaries)):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list or tuple, got {type(value).__name__} {value!r}")
    return Join(schedules=tuple(schedules), boundaries=tuple(boundaries))


@_frozen
class Scaled(Schedule):
    """``η_t = factor · schedule(t)`` (also written ``factor * schedule``)."""

    schedule: Callable[[int], float]
    factor: float

    def __post_init__(self) -> None:
        check_callable("schedule", self.schedule, "schedule(t) -> float")
        check_number("factor", self.factor, low=0.0)

    def __call__(self, t: int) -> float:
        return self.factor * float(self.schedule(t))


def with_warmup(schedule: Callable[[int], float], warmup_steps: int, eta_start: float = 0.0) -> Join:
    """A linear warm-up from ``eta_start`` to ``schedule(0)`` over ``warmup_steps`` steps,
    then ``schedule`` (shifted to start at ``t = warmup_steps``)."""
    check_callable("schedule", schedule, "schedule(t) -> float")
    check_int("warmup_steps", warmup_steps, low=0)
    check_number("eta_start", eta_start, low=0.0)
    warmup = LinearWarmup(eta_max=float(schedule(0)), warmup_steps=warmup_steps, eta_min=eta_start)
    return join([warmup, schedule], boundaries=[warmup_steps])


# -- metric-driven ---------------------------------------------------------------------
class ReduceOnPlateau:
    """Divide the rate when a metric stops improving (``ReduceLROnPlateau``; notes 000 "plateaus").

    Call :meth:`step` with the metric once per evaluation; it returns the new rate::

        improved = metric < best·(1 − threshold)   ("min", "rel");  metric < best − threshold ("abs")
        after more than ``patience`` evaluations without improvement (and outside ``cooldown``):
            η ← max(factor · η, η_min)     (unless that changes η by less than eps)

    ``schedule(t)`` returns the current rate, so :class:`ScheduleLR` can attach it to an
    optimizer: ``scheduler.step(metric)`` then feeds the metric. The state is in
    :meth:`state_dict` (plain numbers, safe for ``torch.load(weights_only=True)``).
    """

    metric_driven = True

    def __init__(
        self,
        eta_max: float,
        *,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        eta_min: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        _rates(eta_min, eta_max)
        check_choice("mode", mode, ("min", "max"))
        check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.eta_max = float(eta_max)
        self.mode = mode
        self.factor = check_number("factor", factor, low=0.0, high=1.0, high_open=True)
        self.patience = check_int("patience", patience, low=0)
        self.threshold = check_number("threshold", threshold, low=0.0)
        self.threshold_mode = threshold_mode
        self.cooldown = check_int("cooldown", cooldown, low=0)
        self.eta_min = float(eta_min)
        self.eps = check_number("eps", eps, low=0.0)
        self.lr = self.eta_max
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            bound = (
                self.best * (1 - self.threshold)
                if self.threshold_mode == "rel"
                else self.best - self.threshold
            )
            return value < bound
        bound = (
            self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        )
        return value > bound

    def step(self, metric: float) -> float:
        """Record one evaluation of the metric; return the rate to use from now on."""
        value = float(metric)
        if self._is_better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.lr * self.factor, self.eta_min)
            if self.lr - new_lr > self.eps:
                self.lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        return self.lr

    def __call__(self, t: int) -> float:
        _step(t)
        return self.lr

    _STATE = ("lr", "best", "num_bad_epochs", "cooldown_counter")

    def state_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in self._STATE}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        for key in self._STATE:
            setattr(self, key, state[key])

    def __repr__(self) -> str:
        return (
            f"ReduceOnPlateau(eta_max={self.eta_max!r}, mode={self.mode!r}, factor={self.factor!r}, "
            f"patience={self.patience!r}, threshold={self.threshold!r}, "
            f"threshold_mode={self.threshold_mode!r}, cooldown={self.cooldown!r}, "
            f"eta_min={self.eta_min!r}, eps={self.eps!r})"
        )


# -- attaching a schedule to a torch optimizer -------------------------------------------
class ScheduleLR(LRScheduler):
    """Drive any torch optimizer's learning rate with a schedule (a real ``LRScheduler``).

    Args:
        optimizer: any ``torch.optim.Optimizer`` (descentlab's or torch's).
        schedule: a schedule giving the **absolute** rate ``η_t``, or one schedule per
            param group. The optimizer's own ``lr`` is overwritten by ``schedule(0)``.
        last_epoch: as for every torch scheduler (``-1``: fresh start).

    The rate of the ``k``-th ``optimizer.step()`` (from 0) is ``schedule(k)``: call
    ``scheduler.step()`` after each ``optimizer.step()`` (``scheduler.step(metric)`` for a
    metric-driven schedule such as :class:`ReduceOnPlateau`). Checkpoints work the torch way
    — save ``optimizer.state_dict()`` and ``scheduler.state_dict()`` (plain numbers only),
    rebuild both with the same schedule, load — and the resumed run continues with exactly
    the rates of an uninterrupted one.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        groups = len(optimizer.param_groups)
        schedules = list(schedule) if isinstance(schedule, (list, tuple)) else [schedule] * groups
        if len(schedules) != groups:
            raise ValueError(
                f"schedule: expected one schedule or {groups} (one per param group), got {len(schedules)}"
            )
        for s in schedules:
            check_callable("schedule", s, "schedule(t) -> float")
        check_int("last_epoch", last_epoch, low=-1)
        self.schedules = schedules
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [float(s(self.last_epoch)) for s in self.schedules]

    _get_closed_form_lr = get_lr

    def step(self, metric: float | None = None) -> None:  # type: ignore[override]
        """Advance one step; ``metric`` is passed to metric-driven schedules first."""
        if metric is not None:
            driven = [s for s in self.schedules if getattr(s, "metric_driven", False)]
            if not driven:
                raise ValueError("step(metric): none of this scheduler's schedules is metric-driven")
            for s in dict.fromkeys(driven):  # a schedule shared by groups observes once
                s.step(metric)
        super().step()

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "schedules")}
        state["schedule_states"] = [
            s.state_dict() if hasattr(s, "state_dict") else None for s in self.schedules
        ]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        state = dict(state_dict)
        for s, saved in zip(self.schedules, state.pop("schedule_states", [])):
            if saved is not None:
                s.load_state_dict(saved)
        self.__dict__.update(state)

    def __repr__(self) -> str:
        inner = self.schedules[0] if len(set(map(id, self.schedules))) == 1 else self.schedules
        return f"ScheduleLR({type(self.optimizer).__name__}, {inner!r}, last_epoch={self.last_epoch})"


#: lowercase name → schedule factory (keyword arguments only).
SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "polynomial": PolynomialDecay,
    "linear_warmup": LinearWarmup,
    "cosine": CosineAnnealing,
    "warm_restarts": CosineWarmRestarts,
    "cyclic": Cyclic,
    "one_cycle": OneCycle,
    "warmup_cosine": WarmupCosine,
    "inverse_sqrt": InverseSqrt,
}
