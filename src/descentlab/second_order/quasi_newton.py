"""Quasi-Newton solvers: dense BFGS and limited-memory L-BFGS."""

from __future__ import annotations

from typing import Any

from ..validation import check_int
from ._solver import LineSearchSolver, hyperparameters
from .direction import BFGSDirection, LBFGSDirection


class BFGS(LineSearchSolver):
    """BFGS: x ← x + t·d,  d = −H⁻¹g,  H⁻¹ updated from each (s, y) pair (notes 002).

    Broyden–Fletcher–Goldfarb–Shanno with a dense inverse-Hessian approximation: direction
    :class:`~.direction.BFGSDirection` + a strong-Wolfe line search (which guarantees ``yᵀs > 0``,
    keeping ``Hinv`` positive definite) — by default Moré & Thuente's (``"more_thuente"``, the
    search SciPy's BFGS runs first); ``"strong_wolfe"`` is the bracket-and-zoom search of Nocedal &
    Wright. ``Hinv`` updated by :class:`~descentlab.second_order.direction.BFGSInverseHessian`
    (Nocedal & Wright eq. 6.17). ``n²`` memory: for small models; use :class:`LBFGS` otherwise.
    Defaults follow ``scipy.optimize.minimize(method="BFGS")`` (``Hinv₀ = I``, c₂ = 0.9, SciPy's
    initial step, Moré–Thuente search), and so do its iterates and evaluation counts, up to
    rounding.
    ``state["inverse_hessian"]`` holds ``Hinv``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 1,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        line_search_fn: str | None = "more_thuente",
        c1: float = 1e-4,
        c2: float = 0.9,
    ) -> None:
        super().__init__(params, hyperparameters(locals()))

    def _direction(self) -> BFGSDirection:
        return BFGSDirection()


class LBFGS(LineSearchSolver):
    """L-BFGS: x ← x + t·d,  d = −H⁻¹g by the two-loop recursion over the last m pairs (s, y).

    Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989): direction
    :class:`~.direction.LBFGSDirection` (``m = history_size``, ``Hinv₀ = (sᵀy / yᵀy) I``) +
    Moré & Thuente's strong-Wolfe line search by default (the search of L-BFGS-B).

    Same keywords as ``torch.optim.LBFGS`` (``lr``, ``max_iter=20``, ``max_eval``,
    ``tolerance_grad``, ``tolerance_change``, ``history_size=100``, ``line_search_fn``) and the same
    state keys ``old_dirs`` (y's) / ``old_stps`` (s's), but the line search is on by default
    (``line_search_fn=None`` gives torch's fixed-step variant, ``"strong_wolfe"`` a bracket-and-zoom
    search like torch's) and the first step of a run has
    length ``lr · min(1, 1/‖g‖)``. Pairs with ``yᵀs ≤ 10⁻¹⁰`` are skipped.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = "more_thuente",
        c1: float = 1e-4,
        c2: float = 0.9,
    ) -> None:
        defaults = hyperparameters(locals())
        check_int("history_size", history_size)
        super().__init__(params, defaults)

    def _direction(self) -> LBFGSDirection:
        return LBFGSDirection(self.group["history_size"])
