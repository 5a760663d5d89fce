"""Newton's method with Levenberg–Marquardt damping and a line search."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._closure import Closure, check_hyper
from ._line_search_solver import LineSearchSolver
from .direction import damped_newton_direction


class Newton(LineSearchSolver):
    r"""Newton's method: ``x ← x + t d`` with ``(∇²f(x) + μ I) d = −∇f(x)`` (course notes 000, 002).

    The exact Hessian is formed from the closure by double backward (``n`` Hessian-vector
    products, ``n²`` memory): for small models and the 2-D landscapes. On a quadratic with
    positive-definite Hessian and ``damping=0`` one step lands on the minimum. An indefinite
    Hessian is shifted (μ raised above −λ_min) so ``d`` is always a descent direction, and the
    line search (Armijo backtracking from ``t = lr``) globalises the method.

    Args:
        lr: initial step length ``t`` (1 is the Newton step).
        damping: Levenberg–Marquardt μ ≥ 0 added to the Hessian's diagonal.
        max_iter: Newton iterations per ``step()``.
        line_search_fn: ``"backtracking"`` (default), ``"strong_wolfe"`` or ``None`` (fixed ``lr``).

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
        line_search_fn: str | None = "backtracking",
        c1: float = 1e-4,
        c2: float = 0.9,
    ) -> None:
        check_hyper("damping", damping)
        super().__init__(
            params,
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            line_search_fn=line_search_fn,
            c1=c1,
            c2=c2,
            damping=damping,
        )
        self._hessian: Tensor | None = None

    def _first_evaluation(self, closure: Closure) -> tuple[float, Tensor]:
        graph = self._evaluate_graph(closure)
        self._hessian = self._hessian_from(graph)
        return graph.value, graph.grad.clone()

    def _hessian_from(self, graph) -> Tensor:
        eye = torch.eye(self._numel, dtype=graph.grad.dtype, device=graph.grad.device)
        rows = [graph.hvp(e) for e in eye]
        hessian = torch.stack(rows)
        return 0.5 * (hessian + hessian.T)

    def _direction(self, closure: Closure, x: Tensor, f: float, g: Tensor) -> Tensor:
        if self._hessian is None:
            self._set_flat_params(x)
            graph = self._evaluate_graph(closure)
            self._hessian = self._hessian_from(graph)
        d, mu = damped_newton_direction(self._hessian, g, self.group["damping"])
        self.solver_state["damping"] = mu
        self._hessian = None  # the next iterate needs its own Hessian
        return d
