"""The iteration shared by Newton, BFGS, L-BFGS and nonlinear CG: direction, then line search."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._closure import Closure, ClosureSolver, check_choice, check_hyper, check_int
from .search import LINE_SEARCHES, search_along


class LineSearchSolver(ClosureSolver):
    """``step(closure)`` runs up to ``max_iter`` iterations of::

        d_k = direction(x_k, g_k)          (subclass; reset to −g_k if not a descent direction)
        t_k = line search on φ(t) = f(x_k + t d_k), starting from t0 (``lr`` by default)
        x_{k+1} = x_k + t_k d_k;  remember(s_k = t_k d_k, y_k = g_{k+1} − g_k)

    stopping when ``max|g| ≤ tolerance_grad``, when the change in loss or the step is below
    ``tolerance_change``, after ``max_eval`` closure calls, or when a line search fails (then the
    parameters stay at the best point found and ``state["line_search_failed"]`` is set).
    Returns the loss at the start of the step, as ``torch.optim.LBFGS`` does.
    """

    def __init__(
        self,
        params: Any,
        *,
        lr: float,
        max_iter: int,
        max_eval: int | None,
        tolerance_grad: float,
        tolerance_change: float,
        line_search_fn: str | None,
        c1: float,
        c2: float,
        **extra: Any,
    ) -> None:
        check_hyper("lr", lr, low_open=True)
        check_int("max_iter", max_iter)
        if max_eval is None:
            max_eval = max_iter * 5 // 4 + 25 if line_search_fn is not None else max_iter + 1
        check_int("max_eval", max_eval)
        check_hyper("tolerance_grad", tolerance_grad)
        check_hyper("tolerance_change", tolerance_change)
        check_choice("line_search_fn", line_search_fn, LINE_SEARCHES)
        check_hyper("c1", c1, low_open=True, high=1.0, high_open=True)
        check_hyper("c2", c2, low=c1, low_open=True, high=1.0, high_open=True)
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            line_search_fn=line_search_fn,
            c1=c1,
            c2=c2,
            **extra,
        )
        super().__init__(params, defaults)

    # -- hooks ---------------------------------------------------------------------------
    def _first_evaluation(self, closure: Closure) -> tuple[float, Tensor]:
        return self._evaluate(closure)

    def _direction(self, closure: Closure, x: Tensor, f: float, g: Tensor) -> Tensor:
        raise NotImplementedError

    def _remember(self, s: Tensor, y: Tensor, g_old: Tensor, g_new: Tensor, d: Tensor) -> None:
        """Update the curvature model with the step s and gradient change y."""

    def _reset(self) -> None:
        """Forget the curvature model (the direction was not a descent direction)."""

    def _initial_step(self, f: float, g: Tensor, d: Tensor) -> float:
        return self.group["lr"]

    # -- the iteration -------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        group, state = self.group, self.solver_state
        evals_at_start = state["func_evals"]
        f, g = self._first_evaluation(closure)
        loss_at_start = f
        x = self._flat_params()
        for _ in range(group["max_iter"]):
            if g.abs().max().item() <= group["tolerance_grad"]:
                break
            d = self._direction(closure, x, f, g)
            if not (torch.isfinite(d).all() and torch.dot(g, d) < 0):
                self._reset()
                d = -g
            outcome = search_along(
                self,
                closure,
                x,
                f,
                g,
                d,
                t0=self._initial_step(f, g, d),
                line_search_fn=group["line_search_fn"],
                c1=group["c1"],
                c2=group["c2"],
            )
            state["n_iter"] += 1
            if outcome.step == 0.0:  # failed search that found nothing better: stay at x
                self._set_flat_params(x)
                break
            s = outcome.step * d
            self._remember(s, outcome.grad - g, g, outcome.grad, d)
            state["prev_loss"] = f
            x = x + s
            small_change = abs(outcome.value - f) < group["tolerance_change"]
            f, g = outcome.value, outcome.grad
            if (
                not outcome.success
                or small_change
                or s.abs().max().item() <= group["tolerance_change"]
                or state["func_evals"] - evals_at_start >= group["max_eval"]
            ):
                break
        state["loss"] = f
        return loss_at_start
