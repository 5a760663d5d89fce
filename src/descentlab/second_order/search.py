"""The *search* half of a solver: how far to go along a descent direction ``d`` from ``x``.

A search evaluates the closure along the ray ``x + t d`` through
φ(t) = f(x + t d), φ'(t) = ∇f(x + t d)ᵀ d, using :mod:`descentlab.linesearch`, and leaves the
parameters at the accepted point — or, if the search fails, at the best point it evaluated (never
worse than ``x``), recording the failure in the solver's state.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..linesearch import LineSearchResult, backtracking_armijo, strong_wolfe
from ._closure import Closure, ClosureSolver

LINE_SEARCHES = (None, "strong_wolfe", "backtracking")


@dataclass
class SearchOutcome:
    step: float
    value: float
    grad: Tensor
    success: bool
    evaluations: int


def search_along(
    solver: ClosureSolver,
    closure: Closure,
    x: Tensor,
    f: float,
    g: Tensor,
    d: Tensor,
    *,
    t0: float,
    line_search_fn: str | None,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_ls: int = 25,
) -> SearchOutcome:
    """Move from ``x`` along ``d`` (``gᵀd < 0``); ``line_search_fn=None`` takes the fixed step ``t0``."""
    cache: dict[float, tuple[float, Tensor]] = {0.0: (f, g)}

    def phi(t: float) -> tuple[float, float]:
        value, grad = solver._evaluate_at(closure, x + t * d)
        cache[t] = (value, grad)
        return value, float(grad @ d)

    g0 = float(g @ d)
    if line_search_fn is None:
        value, grad = solver._evaluate_at(closure, x + t0 * d)
        return SearchOutcome(t0, value, grad, True, 1)
    if line_search_fn == "strong_wolfe":
        result: LineSearchResult = strong_wolfe(phi, f, g0, t0, c1=c1, c2=c2, max_iter=max_ls)
    elif line_search_fn == "backtracking":
        result = backtracking_armijo(phi, f, g0, t0, c1=c1, max_iter=max_ls)
    else:
        raise ValueError(f"line_search_fn must be one of {LINE_SEARCHES}, got {line_search_fn!r}")
    state = solver.solver_state
    state["line_search_failed"] = not result.success
    if not result.success:
        state["line_search_failures"] += 1
    value, grad = cache[result.step]
    solver._set_flat_params(x + result.step * d)
    return SearchOutcome(result.step, value, grad, result.success, result.evaluations)
