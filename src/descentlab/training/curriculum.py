"""Curriculum learning: "training the classifier with easy examples initially and gradually
transitioning to the harder ones. Useful for architectures which are very hard to train" (notes 002).

Order the N examples by a difficulty score (``argsort(difficulty)``, easiest first, ties by index);
a *pacing function* p(t) ∈ (0, 1] says which fraction of them batch t may use; batch t draws
``batch_size`` examples uniformly without replacement from the easiest ⌈p(t) · N⌉ (Hacohen &
Weinshall 2019, "On the power of curriculum learning in training deep networks"; Platanios et al.
2019, "Competence-based curriculum learning for neural machine translation"). Anti-curriculum
(hardest first) is ``CurriculumSampler(-difficulty, …)``; the scores may come from
:func:`loss_difficulty` (a reference model's per-example loss, Hacohen & Weinshall's "transfer" and
"self-taught" scoring) or anything else.

Pacing functions are plain, picklable, frozen dataclasses like the learning-rate schedules; with
s = min(1, t / ramp) and a starting fraction b:

==================  ===========================================================================
``Constant(b)``     p(t) = b
``Linear``          p(t) = b + (1 − b) s
``Root``            p(t) = b + (1 − b) √s
``Quadratic``       p(t) = b + (1 − b) s²
``Step``            p(t) = b + (1 − b) ⌊s · n⌋ / n   (n equal steps; n = 1: Hacohen & Weinshall's
                    "single step")
``Exponential``     p(t) = min(1, b · γ^⌊t / step_length⌋)  (Hacohen & Weinshall's "fixed exponential
                    pacing")
``Competence``      c(t) = min(1, (t (1 − c₀^p) / T + c₀^p)^{1/p})  (Platanios et al.: p = 1 their
                    linear competence, p = 2 their "competence-sqrt")
==================  ===========================================================================

(the linear / root / quadratic / step family as compared by Wu, Dyer & Neyshabur 2021, "When do
curricula work?").

No speed-up is claimed. Measured on digits (``benchmarks/curriculum_digits.py``: MLP 64-64-10, SGD +
momentum, 600 steps of 32, difficulty = a reference model's loss, 5 seeds), test accuracy: random
order 0.964 ± 0.009; easy-first 0.960 ± 0.007 (linear pacing), 0.959 ± 0.006 (root), 0.955 ± 0.007
(competence); hard-first 0.969 ± 0.004 — differences of the order of the seed-to-seed spread (issue 13
reported easy-first 0.951 against 0.965 for random). Wu et al. found curricula help mainly with a
small time budget or noisy labels. The tests check that the sampler does what its pacing says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import Sampler

from ..validation import check_callable, check_int, check_number, check_positive

__all__ = [
    "Pacing",
    "Constant",
    "Linear",
    "Root",
    "Quadratic",
    "Step",
    "Exponential",
    "Competence",
    "PACINGS",
    "CurriculumSampler",
    "loss_difficulty",
]


def _step(t) -> int:
    return check_int("t", t, low=0)


def _fraction(name: str, value) -> float:
    return check_number(name, value, low=0.0, high=1.0, low_open=True)


class Pacing:
    """A fraction of the data as a function of the step: ``pacing(t) -> float`` in (0, 1]."""

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def values(self, steps: int) -> list[float]:
        return [self(t) for t in range(check_int("steps", steps, low=0))]


@dataclass(frozen=True)
class Constant(Pacing):
    """p(t) = b (b = 1: no curriculum, uniform sampling)."""

    start: float = 1.0

    def __post_init__(self) -> None:
        _fraction("start", self.start)

    def __call__(self, t: int) -> float:
        _step(t)
        return self.start


@dataclass(frozen=True)
class _Ramp(Pacing):
    start: float = 0.1
    ramp: int = 1000

    def __post_init__(self) -> None:
        _fraction("start", self.start)
        check_int("ramp", self.ramp, low=1)

    def _s(self, t: int) -> float:
        return min(1.0, _step(t) / self.ramp)


@dataclass(frozen=True)
class Linear(_Ramp):
    """p(t) = b + (1 − b) · min(1, t / ramp)."""

    def __call__(self, t: int) -> float:
        return self.start + (1 - self.start) * self._s(t)


@dataclass(frozen=True)
class Root(_Ramp):
    """p(t) = b + (1 − b) · √min(1, t / ramp)."""

    def __call__(self, t: int) -> float:
        return self.start + (1 - self.start) * math.sqrt(self._s(t))


@dataclass(frozen=True)
class Quadratic(_Ramp):
    """p(t) = b + (1 − b) · min(1, t / ramp)²."""

    def __call__(self, t: int) -> float:
        return self.start + (1 - self.start) * self._s(t) ** 2


@dataclass(frozen=True)
class Step(_Ramp):
    """p(t) = b + (1 − b) · ⌊min(1, t / ramp) · n⌋ / n: ``steps`` equal jumps, the last at t = ramp."""

    steps: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("steps", self.steps, low=1)

    def __call__(self, t: int) -> float:
        return self.start + (1 - self.start) * math.floor(self._s(t) * self.steps) / self.steps


@dataclass(frozen=True)
class Exponential(Pacing):
    """p(t) = min(1, b · γ^⌊t / step_length⌋) (Hacohen & Weinshall 2019, fixed exponential pacing)."""

    start: float = 0.1
    gamma: float = 2.0
    step_length: int = 100

    def __post_init__(self) -> None:
        _fraction("start", self.start)
        check_number("gamma", self.gamma, low=1.0, low_open=True)
        check_int("step_length", self.step_length, low=1)

    def __call__(self, t: int) -> float:
        return min(1.0, self.start * self.gamma ** (_step(t) // self.step_length))


@dataclass(frozen=True)
class Competence(Pacing):
    """Platanios et al. 2019: c(t) = min(1, (t (1 − c₀^p) / T + c₀^p)^{1/p}); p = 1 is their linear
    competence, p = 2 (default) their "competence-sqrt"; T is the time at which c reaches 1."""

    c0: float = 0.01
    T: int = 1000
    p: float = 2.0

    def __post_init__(self) -> None:
        _fraction("c0", self.c0)
        check_int("T", self.T, low=1)
        check_positive("p", self.p)

    def __call__(self, t: int) -> float:
        c0p = self.c0**self.p
        return min(1.0, (_step(t) * (1 - c0p) / self.T + c0p) ** (1 / self.p))


PACINGS: dict[str, type[Pacing]] = {
    "constant": Constant,
    "linear": Linear,
    "root": Root,
    "quadratic": Quadratic,
    "step": Step,
    "exponential": Exponential,
    "competence": Competence,
}


class CurriculumSampler(Sampler[list[int]]):
    """A ``batch_sampler`` of ``total_steps`` batches; batch t is ``batch_size`` indices drawn uniformly
    without replacement from the easiest ⌈pacing(t) · N⌉ examples (at least ``batch_size`` of them).

    ``difficulty``: one score per example, lower = easier. ``pacing``: a :class:`Pacing` or any callable
    ``t -> fraction in (0, 1]``. ``generator``: as for ``RandomSampler`` (``None``: one seed drawn from
    torch's global RNG per pass).
    """

    def __init__(
        self,
        difficulty: Tensor,
        pacing: Callable[[int], float],
        batch_size: int,
        total_steps: int,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        scores = torch.as_tensor(difficulty)
        if scores.dim() != 1 or scores.numel() == 0 or not torch.isfinite(scores.double()).all():
            raise ValueError(
                f"difficulty must be a non-empty 1-D tensor of finite scores, got shape {tuple(scores.shape)}"
            )
        self.pacing = check_callable("pacing", pacing, "pacing(t) -> fraction in (0, 1]")
        self.batch_size = check_int("batch_size", batch_size, low=1, high=scores.numel())
        self.total_steps = check_int("total_steps", total_steps, low=1)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator
        self.order = torch.argsort(scores.cpu(), stable=True)

    def __len__(self) -> int:
        return self.total_steps

    def pool_size(self, t: int) -> int:
        """How many of the easiest examples batch t draws from: max(B, ⌈p(t) · N⌉)."""
        fraction = check_number(f"pacing({t})", self.pacing(t), low=0.0, high=1.0, low_open=True)
        n = len(self.order)
        return min(n, max(self.batch_size, math.ceil(fraction * n - 1e-9)))

    def __iter__(self) -> Iterator[list[int]]:
        generator = self.generator
        if generator is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator().manual_seed(seed)
        for t in range(self.total_steps):
            pool = self.pool_size(t)
            pick = torch.randperm(pool, generator=generator)[: self.batch_size]
            yield self.order[pick].tolist()


@torch.no_grad()
def loss_difficulty(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: tuple[Tensor, Tensor],
    *,
    batch_size: int = 1024,
) -> Tensor:
    """Each example's loss under a reference model (lower = easier): ``loss_fn`` must return per-example
    losses (``reduction="none"``), e.g. ``lambda out, y: F.cross_entropy(out, y, reduction="none")``.
    The model is evaluated in eval mode and put back in the mode it was in."""
    check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> per-example losses")
    batch_size = check_int("batch_size", batch_size, low=1)
    inputs, targets = data
    was_training = model.training
    model.eval()
    try:
        scores = []
        for i in range(0, len(inputs), batch_size):
            loss = loss_fn(model(inputs[i : i + batch_size]), targets[i : i + batch_size])
            if loss.dim() == 0:
                raise ValueError("loss_fn must return one loss per example (reduction='none'), got a scalar")
            scores.append(loss.reshape(len(loss), -1).sum(1) if loss.dim() > 1 else loss)
        return torch.cat(scores).float()
    finally:
        model.train(was_training)
