"""The *search* half of a solver: how far to go along a descent direction, given only φ.

A search is a small frozen object called as ``search(phi, t0) -> Found``, where ``phi`` is a
:class:`~.objective.LineObjective` (φ(t) = f(x + t d), φ'(t), its cache) and ``t0`` the first trial
step. It evaluates φ as it needs, and returns the accepted step — or, when it fails, the best step it
saw (0 if nothing beat the start) with ``success=False``. It never moves the parameters and never
writes solver state: the solver does both. The scalar algorithms are :mod:`descentlab.linesearch`.

* :class:`FixedStep` — ``t = t0``, no evaluation (a learning rate);
* :class:`Backtracking` — Armijo backtracking ``t0, ρ t0, ρ² t0, …`` (Nocedal & Wright, Alg. 3.1);
* :class:`StrongWolfe` — bracketing and zoom to the strong Wolfe conditions (N&W Algs. 3.5–3.6);
* :class:`MoreThuente` — the same conditions by Moré & Thuente's interpolating search (MINPACK's
  ``dcsrch``, which SciPy's BFGS, CG and Newton-CG run first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..linesearch import backtracking_armijo, more_thuente, strong_wolfe
from .objective import LineObjective

LINE_SEARCHES = (None, "strong_wolfe", "more_thuente", "backtracking")


@dataclass(frozen=True)
class Found:
    """The step a search accepted (or, with ``success=False``, the best one it saw)."""

    step: float
    success: bool


class Search(Protocol):
    def __call__(self, phi: LineObjective, t0: float) -> Found: ...


@dataclass(frozen=True)
class FixedStep:
    """``t = t0``: no evaluation, always accepted."""

    def __call__(self, phi: LineObjective, t0: float) -> Found:
        return Found(t0, True)


@dataclass(frozen=True)
class Backtracking:
    """``t = t0 ρᵏ`` for the first k with ``φ(t) ≤ φ(0) + c₁ t φ'(0)`` (sufficient decrease)."""

    c1: float = 1e-4
    shrink: float = 0.5
    max_iter: int = 25

    def __call__(self, phi: LineObjective, t0: float) -> Found:
        result = backtracking_armijo(
            phi, phi.value0, phi.slope0, t0, c1=self.c1, shrink=self.shrink, max_iter=self.max_iter
        )
        return Found(result.step, result.success)


@dataclass(frozen=True)
class StrongWolfe:
    """``t`` with ``φ(t) ≤ φ(0) + c₁ t φ'(0)`` and ``|φ'(t)| ≤ c₂ |φ'(0)|``."""

    c1: float = 1e-4
    c2: float = 0.9
    max_iter: int = 25

    def __call__(self, phi: LineObjective, t0: float) -> Found:
        result = strong_wolfe(phi, phi.value0, phi.slope0, t0, c1=self.c1, c2=self.c2, max_iter=self.max_iter)
        return Found(result.step, result.success)


@dataclass(frozen=True)
class MoreThuente:
    """``t`` with the strong Wolfe conditions, by :func:`~descentlab.linesearch.more_thuente`."""

    c1: float = 1e-4
    c2: float = 0.9
    max_iter: int = 25

    def __call__(self, phi: LineObjective, t0: float) -> Found:
        result = more_thuente(phi, phi.value0, phi.slope0, t0, c1=self.c1, c2=self.c2, max_iter=self.max_iter)
        return Found(result.step, result.success)


def make_search(line_search_fn: str | None, c1: float, c2: float, max_iter: int = 25) -> Search:
    """The search a solver's ``line_search_fn`` names (``None``: a fixed step)."""
    if line_search_fn == "strong_wolfe":
        return StrongWolfe(c1, c2, max_iter)
    if line_search_fn == "more_thuente":
        return MoreThuente(c1, c2, max_iter)
    if line_search_fn == "backtracking":
        return Backtracking(c1, max_iter=max_iter)
    if line_search_fn is None:
        return FixedStep()
    raise ValueError(f"line_search_fn must be one of {LINE_SEARCHES}, got {line_search_fn!r}")
