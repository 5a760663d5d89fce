"""Nonlinear conjugate gradient with FR, PR+, HS and DY β and restarts."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._closure import Closure, check_choice, check_hyper, check_int
from ._line_search_solver import LineSearchSolver
from .direction import BETA_RULES, conjugate_beta
from .quasi_newton import _scipy_initial_step


class NonlinearCG(LineSearchSolver):
    """Nonlinear CG: x ← x + t·d,  d ← −g + β·d  (Fletcher & Reeves 1964; Nocedal & Wright §5.2)::

        d₀ = −g₀;   d_{k+1} = −g_{k+1} + β_{k+1} d_k   (β by ``beta``: "FR", "PR+", "HS", "DY")

    with a strong-Wolfe line search (c₂ = 0.1 by default, so that FR/DY directions stay descent
    directions). Restarts with ``d = −g`` every ``restart_every`` iterations (default: the number
    of parameters, n), when two consecutive gradients are far from orthogonal
    (``|g₊ᵀg| ≥ restart_threshold ‖g₊‖²``, Powell 1977) and whenever d is not a descent direction.
    State: ``d`` (last direction), ``prev_flat_grad``, ``since_restart``, ``restarts``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        beta: str = "PR+",
        restart_every: int | None = None,
        restart_threshold: float = 0.2,
        max_iter: int = 1,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        line_search_fn: str | None = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.1,
    ) -> None:
        check_choice("beta", beta, BETA_RULES)
        if restart_every is not None:
            check_int("restart_every", restart_every)
        check_hyper("restart_threshold", restart_threshold, low_open=True)
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
            beta=beta,
            restart_every=restart_every,
            restart_threshold=restart_threshold,
        )

    def _direction(self, closure: Closure, x: Tensor, f: float, g: Tensor) -> Tensor:
        state, group = self.solver_state, self.group
        d_old, g_old = state.get("d"), state.get("prev_flat_grad")
        period = group["restart_every"] or self._numel
        restart = (
            d_old is None
            or state.get("since_restart", 0) >= period
            or torch.dot(g, g_old).abs() >= group["restart_threshold"] * torch.dot(g, g)
        )
        if restart:
            if d_old is not None:
                state["restarts"] = state.get("restarts", 0) + 1
            d = -g
            state["since_restart"] = 0
        else:
            d = -g + conjugate_beta(group["beta"], g, g_old, d_old) * d_old
            state["since_restart"] = state.get("since_restart", 0) + 1
        if torch.dot(g, d) >= 0:
            d = -g
            state["since_restart"] = 0
        state["d"] = d
        return d

    def _remember(self, s: Tensor, y: Tensor, g_old: Tensor, g_new: Tensor, d: Tensor) -> None:
        self.solver_state["prev_flat_grad"] = g_old

    def _reset(self) -> None:
        self.solver_state.pop("d", None)

    def _initial_step(self, f: float, g: Tensor, d: Tensor) -> float:
        return _scipy_initial_step(self.solver_state, f, g, d, self.group["lr"])
