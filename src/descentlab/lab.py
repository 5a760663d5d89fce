"""Races: several optimizers, one landscape, the same start and the same noise.

``race(landscape, ["sgd(lr=0.05)", "adam(lr=0.1)"], steps=200)`` runs each optimizer from the same
start for ``steps`` steps and returns a :class:`RaceResult` holding, per optimizer, the trajectory, the
loss and gradient norm at every step, when it converged (and to which known minimum) and whether and
when it diverged.

Optimizers are given as spec strings (``"SGD(lr=0.05, momentum=0.9)"``, names case-insensitive, see
:func:`optimizer_registry`), as a function ``params -> optimizer``, or as a fresh optimizer object built
on one parameter tensor (for instance ``from_chain([torch.zeros(2)], chain(...), lr=0.1)``), whose
parameter is moved to the start and which is then stepped in place. A ``(label, optimizer)`` pair or
a dict gives the name shown in tables.

Every optimizer is driven by ``optimizer.step(closure)``, where the closure zeroes the gradients,
evaluates the loss of this step's sample and back-propagates, so closure-based solvers (L-BFGS, line
searches) race too. The sample — gradient noise or a mini-batch — is drawn once per step, so a solver
that calls the closure several times sees one consistent function per step.

A run has *diverged* when its position or loss stops being finite, when it leaves the landscape far
behind, or when its ``step`` raises a ``FloatingPointError`` (the family of
:class:`~descentlab.validation.NonFiniteError`). Every other exception propagates with its traceback:
a bug in an optimizer must not read as a divergence.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import optim as dl_optim
from .landscapes import Landscape, get_landscape, with_gradient_noise
from .specs import build_from_spec, format_spec, parse_spec, resolve_name
from .validation import check_callable, check_choice, check_int, check_number, check_positive

__all__ = [
    "race", "race_stream", "Frame", "Run", "RaceResult", "optimizer_registry", "describe_optimizer",
    "make_contender",
]

OptimizerLike = str | torch.optim.Optimizer | Callable[[list[Tensor]], torch.optim.Optimizer]
Factory = Callable[[Tensor], tuple[torch.optim.Optimizer, Tensor]]


def _optimizer_classes(module: Any) -> dict[str, type]:
    classes = {}
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name, None)
        is_optimizer = inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
        if is_optimizer and obj is not torch.optim.Optimizer and not inspect.isabstract(obj):
            classes[name] = obj
    return classes


def optimizer_registry(include_torch: bool = True) -> dict[str, type]:
    """Spec names → optimizer classes: descentlab's first-order optimizers, its second-order solvers
    (when :mod:`descentlab.second_order` is installed) and ``torch.<name>`` for torch.optim's.

    ``ChainOptimizer`` itself is left out: it needs a transform, which a spec cannot express; pass an
    optimizer object (``from_chain(...)``) instead.
    """
    registry = {
        name.lower(): cls for name, cls in _optimizer_classes(dl_optim).items() if name != "ChainOptimizer"
    }
    try:
        from . import second_order
    except ImportError:
        second_order = None
    if second_order is not None:
        for name, cls in _optimizer_classes(second_order).items():
            registry.setdefault(name.lower(), cls)
    if include_torch:
        for name, cls in _optimizer_classes(torch.optim).items():
            registry[f"torch.{name.lower()}"] = cls
    return registry


def describe_optimizer(cls: type) -> str:
    """The update rule in one line: the docstring's first line with an ``←``, else its first line."""
    lines = [line.strip() for line in (inspect.getdoc(cls) or "").splitlines() if line.strip()]
    if not lines:
        return cls.__name__
    rule = next((line for line in lines if "←" in line), lines[0])
    return rule.replace("``", "").rstrip(":,").rstrip()


def _spec_factory(spec: str, registry: Mapping[str, type]) -> tuple[str, Factory]:
    name, kwargs = parse_spec(spec, "optimizer")
    key = resolve_name(name, registry, "optimizer", spec)
    prefix = "torch." if key.startswith("torch.") else ""
    label = format_spec(prefix + registry[key].__name__, kwargs)
    cls = registry[key]
    # fail now, with the message quoting the spec as typed, not mid-race
    build_from_spec(spec, registry, "optimizer", [torch.zeros(2, dtype=torch.float64, requires_grad=True)])

    def factory(start: Tensor) -> tuple[torch.optim.Optimizer, Tensor]:
        param = start.clone().requires_grad_(True)
        return cls([param], **kwargs), param

    return label, factory


def _instance_factory(optimizer: torch.optim.Optimizer) -> Factory:
    """Race an optimizer object itself: its one parameter is moved to the start.

    The object is used, not copied (torch optimizers do not copy their non-standard attributes), so it
    must be fresh: one that has already stepped is refused.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(params) != 1:
        raise ValueError(
            f"optimizer: an optimizer object must hold exactly one parameter tensor, got {len(params)}"
        )
    if any(optimizer.state.values()):
        raise ValueError(f"optimizer: this {type(optimizer).__name__} object has already taken steps; pass a "
                         f"fresh one, or a builder such as lambda params: {type(optimizer).__name__}(params)")
    (param,) = params

    def factory(start: Tensor) -> tuple[torch.optim.Optimizer, Tensor]:
        if param.shape != start.shape:
            raise ValueError(
                f"optimizer: its parameter has shape {tuple(param.shape)}, "
                f"the landscape needs {tuple(start.shape)}"
            )
        with torch.no_grad():
            param.copy_(start.to(param.dtype))
        param.requires_grad_(True)
        return optimizer, param

    return factory


def _callable_factory(build: Callable[[list[Tensor]], torch.optim.Optimizer]) -> Factory:
    def factory(start: Tensor) -> tuple[torch.optim.Optimizer, Tensor]:
        param = start.clone().requires_grad_(True)
        return build([param]), param

    return factory


def make_contender(entry: Any, registry: Mapping[str, type] | None = None) -> tuple[str, Factory]:
    """``(label, factory)`` for a spec string, an optimizer object, a builder, or a ``(label, any)`` pair."""
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
        _, factory = make_contender(entry[1], registry)
        return entry[0], factory
    if isinstance(entry, str):
        return _spec_factory(entry, optimizer_registry() if registry is None else registry)
    if isinstance(entry, torch.optim.Optimizer):
        return type(entry).__name__, _instance_factory(entry)
    if callable(entry):
        return getattr(entry, "__name__", "optimizer"), _callable_factory(entry)
    raise ValueError(
        f"optimizers: expected a spec string, an optimizer object or a function params -> optimizer, "
        f"got {entry!r}"
    )


@dataclass
class Run:
    """One optimizer's race: arrays indexed by step (0 is the start), stopped early if it diverged
    or failed.

    ``evaluations[k]`` counts the loss-and-gradient evaluations (closure calls) of the first ``k``
    steps and ``seconds[k]`` their wall time, so runs can be compared by what they cost as well as
    by steps (an L-BFGS step may evaluate the function 20 times).

    ``converged_at`` is the first step from which the run stays within tolerance of one known minimum
    for ``hold`` consecutive steps: it does not change when the race is given more steps. A run that
    later leaves that minimum's tolerance again has ``left_at`` set to the first step outside.
    ``failed_at`` / ``error`` record an optimizer whose ``step`` raised something other than a
    ``FloatingPointError`` (with ``race(..., errors="record")``): a failure, not a divergence.
    """

    label: str
    trajectory: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    steps: int
    converged_at: int | None = None
    minimum: int | None = None
    diverged_at: int | None = None
    error: str | None = None
    recorded: np.ndarray | None = None
    evaluations: np.ndarray | None = None
    seconds: np.ndarray | None = None
    failed_at: int | None = None
    left_at: int | None = None

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def final_point(self) -> np.ndarray:
        return self.trajectory[-1]

    @property
    def iterations(self) -> str:
        """What the notes write in brackets: steps to converge, ``>N`` if it never did, ``diverged``."""
        if self.failed_at is not None:
            return f"failed at {self.failed_at}"
        if self.diverged_at is not None:
            return f"diverged at {self.diverged_at}"
        if self.converged_at is not None:
            return str(self.converged_at) + (f", left at {self.left_at}" if self.left_at is not None else "")
        return f">{self.steps}"

    @property
    def status(self) -> str:
        if self.failed_at is not None:
            return f"failed at step {self.failed_at}: {self.error}"
        if self.diverged_at is not None:
            return f"diverged at step {self.diverged_at}"
        if self.converged_at is not None:
            left = f", left the well again at step {self.left_at}" if self.left_at is not None else ""
            return f"converged at step {self.converged_at}{left}"
        return f"not converged in {self.steps} steps"


@dataclass
class RaceResult:
    landscape: Landscape
    start: tuple[float, ...]
    steps: int
    seed: int
    runs: list[Run] = field(default_factory=list)

    def __getitem__(self, label: str) -> Run:
        for run in self.runs:
            if run.label == label:
                return run
        raise KeyError(f"no run labelled {label!r}; runs: {', '.join(r.label for r in self.runs)}")

    def minimum_label(self, index: int | None) -> str:
        if index is None:
            return "—"
        point = ", ".join(f"{v:.2f}" for v in self.landscape.minima[index])
        best = min(self.landscape.minimum_values)
        is_global = self.landscape.minimum_values[index] <= best + 1e-9
        return f"({point})" + (" global" if is_global else " local")

    def rows(self) -> list[dict[str, str]]:
        """The summary table: one dict per optimizer."""
        return [
            {
                "optimizer": run.label,
                "converged at": _converged_cell(run),
                "minimum reached": self.minimum_label(run.minimum),
                "final loss": f"{run.final_loss:.4g}",
                "diverged": _diverged_cell(run),
            }
            for run in self.runs
        ]


def _converged_cell(run: Run) -> str:
    if run.converged_at is None:
        return "—"
    return str(run.converged_at) + (f" (left at {run.left_at})" if run.left_at is not None else "")


def _diverged_cell(run: Run) -> str:
    if run.failed_at is not None:
        return f"failed at step {run.failed_at}: {run.error}"
    return "no" if run.diverged_at is None else f"diverged at step {run.diverged_at}"


def _to_landscape(landscape: Landscape | str) -> Landscape:
    return get_landscape(landscape) if isinstance(landscape, str) else landscape


def _check_start(landscape: Landscape, start: Any) -> tuple[float, ...]:
    if start is None:
        point = landscape.start
    else:
        point = tuple(float(v) for v in np.asarray(start, float).reshape(-1))
    if len(point) != landscape.dim:
        raise ValueError(
            f"start must have {landscape.dim} coordinates for {landscape.name}, got {len(point)}"
        )
    if not landscape.contains(point):
        box = " × ".join(f"[{lo:g}, {hi:g}]" for lo, hi in landscape.domain)
        shown = ", ".join(f"{v:g}" for v in point)
        raise ValueError(f"start ({shown}) is outside the domain of {landscape.name}: {box}")
    return point


def _loss_and_gradient_norm(landscape: Landscape, point: Tensor) -> tuple[float, float]:
    """True loss and gradient norm at one point (each point on its own, so that a streamed frame and
    a finished race compute every number by the same operations)."""
    w = point.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = landscape(w)
        (grad,) = torch.autograd.grad(loss, w)
    return float(loss.detach()), float(grad.norm())


def _convergence(
    landscape: Landscape, trajectory: np.ndarray, loss: np.ndarray, xtol: float, ftol: float, hold: int
) -> tuple[int | None, int | None, int | None]:
    """``(converged_at, minimum, left_at)``: the first step from which the run stays within tolerance
    of one known minimum for ``hold`` consecutive steps, that minimum, and the first later step at which
    it is outside that minimum's tolerance again (``None`` if it never leaves)."""
    minima = np.asarray(landscape.minima, float)
    values = np.asarray(landscape.minimum_values, float)
    distance = np.linalg.norm(trajectory[:, None, :] - minima[None, :, :], axis=-1)
    nearest = distance.argmin(axis=1)[:, None] == np.arange(len(minima))[None, :]
    close = nearest & ((distance <= xtol) | (loss[:, None] - values[None, :] <= ftol))  # (steps + 1, minima)
    length = len(trajectory)
    window = min(hold, length)
    best: tuple[int, int] | None = None
    for m in range(len(minima)):
        inside = close[:, m].astype(int)
        runs = np.convolve(inside, np.ones(window, int), mode="valid")  # inside-counts of each window
        starts = np.flatnonzero(runs == window)
        if starts.size and (best is None or starts[0] < best[0]):
            best = (int(starts[0]), m)
    if best is None:
        return None, None, None
    at, m = best
    outside = np.flatnonzero(~close[at:, m])
    return at, m, (int(at + outside[0]) if outside.size else None)


class _Runner:
    """One optimizer stepping through a race, one :meth:`step` at a time.

    :func:`race` steps each runner to the end in turn; :func:`race_stream` steps them all in lockstep
    and reports every step as it happens. Both build each :class:`Run` with :meth:`finish`, so a
    streamed race and a finished one are the same numbers.
    """

    def __init__(self, label: str, factory: Factory, landscape: Landscape, start: Tensor, steps: int,
                 seed: int, schedule: Callable[[int], float] | None, escape: float,
                 record: Callable[[torch.optim.Optimizer, Tensor], float] | None, errors: str) -> None:
        self.label, self.landscape, self.steps, self.schedule = label, landscape, steps, schedule
        self.escape, self.record, self.errors = escape, record, errors
        self.optimizer, self.param = factory(start)
        self.sample_next = landscape.sampler(seed)
        self.center = torch.tensor(landscape.center, dtype=torch.float64)
        self.points = [self.param.detach().to(torch.float64).clone()]
        loss, norm = _loss_and_gradient_norm(landscape, self.points[0])
        self.losses, self.norms = [loss], [norm]
        self.recorded: list[float] = []
        self.evaluations, self.seconds = [0], [0.0]
        self.calls = 0
        self.diverged_at: int | None = None
        self.failed_at: int | None = None
        self.error: str | None = None
        self.k = 0
        self.stopped = False

    @property
    def done(self) -> bool:
        return self.stopped or self.k >= self.steps

    def step(self) -> bool:
        """Take one step; ``False`` once the run is over (budget spent, diverged or failed)."""
        if self.done:
            return False
        k, optimizer, param = self.k, self.optimizer, self.param
        if self.schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = float(self.schedule(k))
        sample = self.sample_next()

        def closure(sample: Any = sample) -> Tensor:
            self.calls += 1
            optimizer.zero_grad()
            loss = self.landscape.sample_loss(param, sample)
            loss.backward()
            return loss

        began = time.perf_counter()
        try:
            optimizer.step(closure)
        except FloatingPointError as failure:  # NonFiniteError included: a divergence
            self.diverged_at = k + 1
            self.error = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
            self.stopped = True
            return False
        except Exception as failure:  # a failure, not a divergence: raised, or recorded as such
            if self.errors == "raise":
                raise
            self.failed_at = k + 1
            text = str(failure).splitlines()[0] if str(failure) else ""
            self.error = f"{type(failure).__name__}: {text}" if text else type(failure).__name__
            self.stopped = True
            return False
        self.seconds.append(self.seconds[-1] + time.perf_counter() - began)
        self.evaluations.append(self.calls)
        self.k = k + 1
        point = param.detach().to(torch.float64).clone()
        loss, norm = _loss_and_gradient_norm(self.landscape, point)
        self.points.append(point)
        self.losses.append(loss)
        self.norms.append(norm)
        if self.record is not None:
            self.recorded.append(float(self.record(optimizer, param)))
        distance = float((point - self.center).norm())
        if not (math.isfinite(loss) and math.isfinite(distance)):
            self.diverged_at, self.stopped = self.k, True  # stop at the first non-finite value
        elif distance > self.escape * self.landscape.diagonal:
            self.diverged_at, self.stopped = self.k, True
        return not self.stopped

    def finish(self) -> Run:
        return Run(
            label=self.label,
            trajectory=torch.stack(self.points).numpy(),
            loss=np.asarray(self.losses),
            grad_norm=np.asarray(self.norms),
            steps=self.steps,
            diverged_at=self.diverged_at,
            failed_at=self.failed_at,
            error=self.error,
            recorded=np.asarray(self.recorded) if self.record is not None else None,
            evaluations=np.asarray(self.evaluations),
            seconds=np.asarray(self.seconds),
        )


def race(
    landscape: Landscape | str,
    optimizers: Iterable[OptimizerLike] | Mapping[str, OptimizerLike],
    start: Any = None,
    steps: int = 200,
    *,
    noise: float = 0.0,
    seed: int = 0,
    xtol: float | None = None,
    ftol: float = 1e-8,
    escape: float = 10.0,
    schedule: Callable[[int], float] | None = None,
    record: Callable[[torch.optim.Optimizer, Tensor], float] | None = None,
    hold: int = 10,
    errors: str = "raise",
) -> RaceResult:
    """Race ``optimizers`` on ``landscape`` from the same ``start`` for ``steps`` steps.

    Args:
        landscape: a :class:`~descentlab.landscapes.Landscape` or a spec such as ``"quadratic(kappa=100)"``.
        optimizers: spec strings, optimizer objects, builders ``params -> optimizer``, ``(label, x)``
            pairs, or a dict ``{label: x}``.
        start: starting point inside the landscape's domain (default: the landscape's own start).
        steps: number of optimizer steps (> 0).
        noise: standard deviation σ of additive gradient noise (0 for exact gradients).
        seed: seed of the noise or of the mini-batch order — the same for every optimizer.
        xtol: a run has converged at the first step from which it stays within ``xtol`` of a known
            minimum (default ``1e-3`` × the domain's diagonal), or within ``ftol`` of its loss, for
            ``hold`` consecutive steps; a run that leaves again later has ``Run.left_at`` set. The step
            found does not depend on ``steps`` (once the budget covers it).
        escape: a run has diverged when its loss or position is not finite, it is further than
            ``escape`` × the domain's diagonal from the domain's centre, or its ``step`` raised a
            ``FloatingPointError`` (such as :class:`~descentlab.validation.NonFiniteError` from
            ``nonfinite="raise"``). Any other exception is a bug, not a divergence: it propagates.
        schedule: optional ``t -> learning rate`` applied to every parameter group before step ``t``.
        record: optional ``(optimizer, param) -> float`` called after every step; the values land in
            ``Run.recorded`` (e.g. an effective learning rate read from the optimizer's state).
        hold: the number of consecutive steps within tolerance that make a run *converged*.
        errors: what an exception other than a ``FloatingPointError`` from an optimizer's ``step``
            does: ``"raise"`` (the default: a bug surfaces with its traceback) or ``"record"`` (the run
            stops, marked *failed* at that step with the error's message; the others race on).
    """
    landscape, point, contenders, xtol = _prepare(
        landscape, optimizers, start, steps, noise, seed, xtol, ftol, escape, schedule, record, hold, errors)
    result = RaceResult(landscape=landscape, start=point, steps=steps, seed=seed)
    for runner in _runners(contenders, landscape, point, steps, seed, schedule, escape, record, errors):
        while runner.step():
            pass
        result.runs.append(_finished(runner, landscape, xtol, ftol, hold))
    return result


@dataclass(frozen=True)
class Frame:
    """One step of a streamed race: ``runs`` holds ``(index, point, loss, gradient norm)`` of every run
    that took step ``step`` (runs that stopped earlier are absent)."""

    step: int
    runs: list[tuple[int, list[float], float, float]]
    labels: list[str] | None = None  # the runs' labels, on the first frame only


def race_stream(
    landscape: Landscape | str,
    optimizers: Iterable[OptimizerLike] | Mapping[str, OptimizerLike],
    start: Any = None,
    steps: int = 200,
    *,
    noise: float = 0.0,
    seed: int = 0,
    xtol: float | None = None,
    ftol: float = 1e-8,
    escape: float = 10.0,
    schedule: Callable[[int], float] | None = None,
    hold: int = 10,
    errors: str = "raise",
) -> Iterator[Frame | RaceResult]:
    """:func:`race`, with every optimizer stepped in lockstep and each step yielded as it happens.

    Yields a :class:`Frame` for step 0 (the start) and for every step after it, then the finished
    :class:`RaceResult` — the same numbers as ``race(...)`` with the same arguments. Stopping the
    iteration early (closing the generator) stops the work.
    """
    landscape, point, contenders, xtol = _prepare(
        landscape, optimizers, start, steps, noise, seed, xtol, ftol, escape, schedule, None, hold, errors)
    runners = list(_runners(contenders, landscape, point, steps, seed, schedule, escape, None, errors))
    yield Frame(0, [(i, r.points[0].tolist(), r.losses[0], r.norms[0]) for i, r in enumerate(runners)],
                [r.label for r in runners])
    for k in range(1, steps + 1):
        moved = []
        for i, runner in enumerate(runners):
            if not runner.done:
                runner.step()
                if runner.k == k:  # it took step k (one that raised did not)
                    moved.append((i, runner))
        if not moved:
            break
        yield Frame(k, [(i, r.points[k].tolist(), r.losses[k], r.norms[k]) for i, r in moved])
    result = RaceResult(landscape=landscape, start=point, steps=steps, seed=seed)
    result.runs.extend(_finished(r, landscape, xtol, ftol, hold) for r in runners)
    yield result


def _prepare(landscape, optimizers, start, steps, noise, seed, xtol, ftol, escape, schedule, record, hold,
             errors):
    """Check every argument of a race before any work; the landscape, start, contenders and ``xtol``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    check_int("seed", seed, low=0)
    if xtol is not None:
        check_number("xtol", xtol, low=0.0)
    check_number("ftol", ftol, low=0.0)
    check_positive("escape", escape)
    check_int("hold", hold, low=1)
    check_choice("errors", errors, ("raise", "record"))
    for name, value in (("schedule", schedule), ("record", record)):
        if value is not None:
            check_callable(name, value)
    landscape = _to_landscape(landscape)
    if noise:
        landscape = with_gradient_noise(landscape, noise)
    point = _check_start(landscape, start)
    if xtol is None:
        xtol = 1e-3 * landscape.diagonal
    entries = list(optimizers.items()) if isinstance(optimizers, Mapping) else list(optimizers)
    if not entries:
        raise ValueError("optimizers must name at least one optimizer, got none")
    registry = optimizer_registry()
    return landscape, point, [make_contender(entry, registry) for entry in entries], xtol


def _runners(
    contenders, landscape, point, steps, seed, schedule, escape, record, errors
) -> Iterator[_Runner]:
    """One runner per contender, labels made unique (``"adam #2"``), built one after the other."""
    start_tensor = torch.tensor(point, dtype=torch.float64)
    seen: dict[str, int] = {}
    for label, factory in contenders:
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} #{seen[label]}"
        yield _Runner(label, factory, landscape, start_tensor, steps, seed, schedule, escape, record, errors)


def _finished(runner: _Runner, landscape: Landscape, xtol: float, ftol: float, hold: int) -> Run:
    run = runner.finish()
    if run.diverged_at is None and run.failed_at is None:
        run.converged_at, run.minimum, run.left_at = _convergence(
            landscape, run.trajectory, run.loss, xtol, ftol, hold)
    return run
