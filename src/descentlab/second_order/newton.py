"""Newton's method with Levenberg–Marquardt damping and a line search."""

from __future__ import annotations

from typing import Any

from ..validation import check_number
from ._solver import LineSearchSolver, hyperparameters
from .direction import NewtonDirection


class Newton(LineSearchSolver):
    r"""Newton's method: ``x ← x + t d`` with ``(∇²f(x) + μ I) d = −∇f(x)`` (course notes 000, 002).

    Direction :class:`~.direction.NewtonDirection` + a line search (Moré–Thuente's strong-Wolfe
    search from ``t = lr`` by default). The exact Hessian is formed from the gradient's graph (``n``
    Hessian-vector products, ``n²`` memory): for small models and the 2-D landscapes. Every trial
    point of the search keeps its gradient's graph, so the accepted one is not evaluated again for
    its Hessian: one closure call per trial step. On a quadratic with positive-definite Hessian and
    ``damping=0`` one step lands on the minimum. An indefinite Hessian is regularised
    (μ = 2·(−λ_min) + ‖g‖, Ueda & Yamashita 2010; see
    :func:`~.direction.damped_newton_direction`) so ``d`` is always a descent direction of sensible
    length, and the line search globalises the method (Nocedal & Wright §3.4).

    Args:
        lr: initial step length ``t`` (1 is the Newton step).
        damping: Levenberg–Marquardt μ ≥ 0 added to the Hessian's diagonal.
        max_iter: Newton iterations per ``step()``.
        line_search_fn: ``"more_thuente"`` (default), ``"strong_wolfe"``, ``"backtracking"`` (Armijo)
            or ``None`` (fixed ``lr``).

    ``state["damping"]`` holds the μ actually used at the last iteration.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        damping: float = 0.0,
        max_iter: int = 1,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        line_search_fn: str | None = "more_thuente",
        c1: float = 1e-4,
        c2: float = 0.9,
    ) -> None:
        defaults = hyperparameters(locals())
        check_number("damping", damping, low=0.0)
        super().__init__(params, defaults)

    def _direction(self) -> NewtonDirection:
        return NewtonDirection(self.group["damping"])
