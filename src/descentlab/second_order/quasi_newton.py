"""Quasi-Newton solvers: dense BFGS and limited-memory L-BFGS."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ._closure import Closure, check_int
from ._line_search_solver import LineSearchSolver
from .direction import BFGSInverseHessian, lbfgs_direction


def _scipy_initial_step(state: dict, f: float, g: Tensor, d: Tensor, lr: float) -> float:
    """SciPy's first trial step: ``min(lr, 1.01 · 2 (f_{k−1} − f_k) / gᵀd)`` (N&W eq. 3.60).

    Before the first iteration ``f_{k−1} = f + ‖g‖/2``, as in ``scipy.optimize.minimize(method="BFGS")``.
    """
    prev = state.get("prev_loss")
    if prev is None:
        prev = f + torch.linalg.vector_norm(g).item() / 2
    t = 1.01 * 2 * (f - prev) / torch.dot(g, d).item()
    return lr if not (math.isfinite(t) and t > 0) else min(lr, t)


class BFGS(LineSearchSolver):
    """BFGS: x ← x + t·d,  d = −H⁻¹g,  H⁻¹ updated from each (s, y) pair (notes 002).

    Broyden–Fletcher–Goldfarb–Shanno with a dense inverse-Hessian approximation.

    ``d = −Hinv g``; strong-Wolfe line search (which guarantees ``yᵀs > 0``, keeping ``Hinv``
    positive definite); ``Hinv`` updated by :class:`~descentlab.second_order.direction.BFGSInverseHessian`.
    ``n²`` memory: for small models; use :class:`LBFGS` otherwise. Defaults follow
    ``scipy.optimize.minimize(method="BFGS")`` (``Hinv₀ = I``, c₂ = 0.9, SciPy's initial step).
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
        line_search_fn: str | None = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.9,
    ) -> None:
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
        )

    def _model(self, g: Tensor) -> BFGSInverseHessian:
        state = self.solver_state
        if "inverse_hessian" not in state:
            state["inverse_hessian"] = torch.eye(self._numel, dtype=g.dtype, device=g.device)
        model = BFGSInverseHessian(0, g.dtype, g.device)
        model.matrix = state["inverse_hessian"]
        return model

    def _direction(self, closure: Closure, x: Tensor, f: float, g: Tensor) -> Tensor:
        return self._model(g).direction(g)

    def _remember(self, s: Tensor, y: Tensor, g_old: Tensor, g_new: Tensor, d: Tensor) -> None:
        model = self._model(g_old)
        model.update(s, y)
        self.solver_state["inverse_hessian"] = model.matrix

    def _reset(self) -> None:
        self.solver_state.pop("inverse_hessian", None)

    def _initial_step(self, f: float, g: Tensor, d: Tensor) -> float:
        return _scipy_initial_step(self.solver_state, f, g, d, self.group["lr"])


class LBFGS(LineSearchSolver):
    """L-BFGS: x ← x + t·d,  d = −H⁻¹g by the two-loop recursion over the last m pairs (s, y).

    Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989): ``m = history_size``,
    ``Hinv₀ = (sᵀy / yᵀy) I``, strong-Wolfe line search by default.

    Same keywords as ``torch.optim.LBFGS`` (``lr``, ``max_iter=20``, ``max_eval``,
    ``tolerance_grad``, ``tolerance_change``, ``history_size=100``, ``line_search_fn``) and the same
    state keys ``old_dirs`` (y's) / ``old_stps`` (s's), but the line search is on by default
    (``line_search_fn=None`` gives torch's fixed-step variant) and the first step of a run has
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
        line_search_fn: str | None = "strong_wolfe",
        c1: float = 1e-4,
        c2: float = 0.9,
    ) -> None:
        check_int("history_size", history_size)
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
            history_size=history_size,
        )

    def _history(self) -> tuple[list[Tensor], list[Tensor]]:
        state = self.solver_state
        return state.setdefault("old_stps", []), state.setdefault("old_dirs", [])

    def _direction(self, closure: Closure, x: Tensor, f: float, g: Tensor) -> Tensor:
        s_history, y_history = self._history()
        return lbfgs_direction(g, s_history, y_history)

    def _remember(self, s: Tensor, y: Tensor, g_old: Tensor, g_new: Tensor, d: Tensor) -> None:
        if torch.dot(y, s) <= 1e-10:
            return
        s_history, y_history = self._history()
        if len(s_history) == self.group["history_size"]:
            s_history.pop(0)
            y_history.pop(0)
        s_history.append(s)
        y_history.append(y)

    def _reset(self) -> None:
        s_history, y_history = self._history()
        s_history.clear()
        y_history.clear()

    def _initial_step(self, f: float, g: Tensor, d: Tensor) -> float:
        s_history, _ = self._history()
        if s_history:
            return self.group["lr"]
        return self.group["lr"] * min(1.0, 1.0 / torch.linalg.vector_norm(g).item())
