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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import optim as dl_optim
from .landscapes import Landscape, get_landscape, with_gradient_noise
from .specs import build_from_spec, format_spec, parse_spec, resolve_name
from .validation import check_callable, check_int, check_number, check_positive

__all__ = ["race", "Run", "RaceResult", "optimizer_registry", "describe_optimizer", "make_contender"]

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
    canonical = format_spec(key, kwargs)

    def factory(start: Tensor) -> tuple[torch.optim.Optimizer, Tensor]:
        param = start.clone().requires_grad_(True)
        return build_from_spec(canonical, registry, "optimizer", [param]), param

    factory(torch.zeros(2, dtype=torch.float64))  # fail now, with the spec's message, not mid-race
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
    """One optimizer's race: arrays indexed by step (0 is the start), stopped early if it diverged."""

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

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def final_point(self) -> np.ndarray:
        return self.trajectory[-1]

    @property
    def iterations(self) -> str:
        """What the notes write in brackets: steps to converge, ``>N`` if it never did, ``diverged``."""
        if self.diverged_at is not None:
            return f"diverged at {self.diverged_at}"
        if self.converged_at is not None:
            return str(self.converged_at)
        return f">{self.steps}"

    @property
    def status(self) -> str:
        if self.diverged_at is not None:
            return f"diverged at step {self.diverged_at}"
        if self.converged_at is not None:
            return f"converged at step {self.converged_at}"
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
                "converged at": "—" if run.converged_at is None else str(run.converged_at),
                "minimum reached": self.minimum_label(run.minimum),
                "final loss": f"{run.final_loss:.4g}",
                "diverged": "no" if run.diverged_at is None else f"diverged at step {run.diverged_at}",
            }
            for run in self.runs
        ]


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


def _losses_and_gradient_norms(landscape: Landscape, points: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """True loss and gradient norm at every point of a path, in one batched forward/backward pass."""
    w = points.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        losses = landscape(w)
        (grads,) = torch.autograd.grad(losses.sum(), w)
    return losses.detach().numpy(), grads.norm(dim=-1).numpy()


def _convergence(
    landscape: Landscape, trajectory: np.ndarray, loss: np.ndarray, xtol: float, ftol: float
) -> tuple[int | None, int | None]:
    """First step from which the run stays within tolerance of one known minimum, and that minimum."""
    minima = np.asarray(landscape.minima, float)
    values = np.asarray(landscape.minimum_values, float)
    distance = np.linalg.norm(trajectory[:, None, :] - minima[None, :, :], axis=-1)
    nearest = distance.argmin(axis=1)
    rows = np.arange(len(trajectory))
    close = (distance[rows, nearest] <= xtol) | (loss - values[nearest] <= ftol)
    final = nearest[-1]
    inside = close & (nearest == final)
    if not inside[-1]:
        return None, None
    outside = np.flatnonzero(~inside)
    return (int(outside[-1]) + 1 if outside.size else 0), int(final)


def _run_one(
    label: str,
    factory: Factory,
    landscape: Landscape,
    start: Tensor,
    steps: int,
    seed: int,
    schedule: Callable[[int], float] | None,
    escape: float,
    record: Callable[[torch.optim.Optimizer, Tensor], float] | None = None,
) -> Run:
    optimizer, param = factory(start)
    sample_next = landscape.sampler(seed)
    points = [param.detach().to(torch.float64).clone()]
    center = torch.tensor(landscape.center, dtype=torch.float64)
    diverged_at, error = None, None
    recorded: list[float] = []
    for k in range(steps):
        if schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = float(schedule(k))
        sample = sample_next()

        def closure(sample: Any = sample) -> Tensor:
            optimizer.zero_grad()
            loss = landscape.sample_loss(param, sample)
            loss.backward()
            return loss

        try:
            optimizer.step(closure)
        except FloatingPointError as failure:  # NonFiniteError included; anything else propagates
            diverged_at = k + 1
            error = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
            break
        point = param.detach().to(torch.float64).clone()
        points.append(point)
        if record is not None:
            recorded.append(float(record(optimizer, param)))
        distance = float((point - center).norm())
        if not math.isfinite(distance) or distance > escape * landscape.diagonal:
            diverged_at = k + 1
            break
    path = torch.stack(points)
    losses, norms = _losses_and_gradient_norms(landscape, path)
    non_finite = np.flatnonzero(~np.isfinite(losses))
    if non_finite.size and (diverged_at is None or non_finite[0] < diverged_at):
        diverged_at = int(non_finite[0])  # the loss overflowed before the position did
        path, losses, norms = path[: diverged_at + 1], losses[: diverged_at + 1], norms[: diverged_at + 1]
        recorded = recorded[:diverged_at]
    return Run(
        label=label,
        trajectory=path.numpy(),
        loss=losses,
        grad_norm=norms,
        steps=steps,
        diverged_at=diverged_at,
        error=error,
        recorded=np.asarray(recorded) if record is not None else None,
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
        xtol: a run has converged from the first step after which it stays within ``xtol`` of a known
            minimum (default ``1e-3`` × the domain's diagonal) or within ``ftol`` of its loss.
        escape: a run has diverged when its loss or position is not finite, it is further than
            ``escape`` × the domain's diagonal from the domain's centre, or its ``step`` raised a
            ``FloatingPointError`` (such as :class:`~descentlab.validation.NonFiniteError` from
            ``nonfinite="raise"``). Any other exception is a bug, not a divergence: it propagates.
        schedule: optional ``t -> learning rate`` applied to every parameter group before step ``t``.
        record: optional ``(optimizer, param) -> float`` called after every step; the values land in
            ``Run.recorded`` (e.g. an effective learning rate read from the optimizer's state).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    check_int("seed", seed, low=0)
    if xtol is not None:
        check_number("xtol", xtol, low=0.0)
    check_number("ftol", ftol, low=0.0)
    check_positive("escape", escape)
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
    contenders = [make_contender(entry, registry) for entry in entries]
    result = RaceResult(landscape=landscape, start=point, steps=steps, seed=seed)
    start_tensor = torch.tensor(point, dtype=torch.float64)
    seen: dict[str, int] = {}
    for label, factory in contenders:
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} #{seen[label]}"
        run = _run_one(label, factory, landscape, start_tensor, steps, seed, schedule, escape, record)
        if run.diverged_at is None:
            run.converged_at, run.minimum = _convergence(landscape, run.trajectory, run.loss, xtol, ftol)
        result.runs.append(run)
    return result

