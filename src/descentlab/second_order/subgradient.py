"""The subgradient method for non-smooth convex losses, keeping the best iterate."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..validation import check_choice, check_number, check_positive
from ._closure import Closure
from ._solver import ClosureSolver, hyperparameters, record_search
from .search import Found

STEP_RULES = ("constant", "constant_length", "diminishing", "diminishing_length", "polyak")


class Subgradient(ClosureSolver):
    """Subgradient method (Shor 1985; Boyd's EE364b notes; course notes 002): ``x ← x − α_k g_k``
    with ``g_k ∈ ∂f(x_k)`` — autograd returns a valid subgradient of ``|·|``, ``max(0, ·)`` and
    hinge losses at their kinks (0 is in the subdifferential there). Step rules:

    * ``"constant"``: ``α_k = lr``;   ``"constant_length"``: ``α_k = lr / ‖g_k‖``;
    * ``"diminishing"``: ``α_k = lr / √(k + 1)`` (not summable, → 0: converges for convex f with
      bounded subgradients);  ``"diminishing_length"`` (default): ``α_k = lr / (√(k + 1) ‖g_k‖)``,
      the same for the step's length, which is robust to the gradient's scale;
    * ``"polyak"``: ``α_k = (f(x_k) − f*) / ‖g_k‖²`` with the optimal value ``f_star`` known.

    The direction is ``−g``; the "search" is the step rule, which needs no evaluation. It is not
    a descent method — f can go up — so the best iterate is kept (``state["best_loss"]``,
    ``state["best_flat_params"]``): :attr:`best_loss`, :meth:`best_params` and :meth:`load_best`.
    A non-finite subgradient is a failed step: recorded (``state["line_search_failed"]``), and the
    parameters stay where they are.
    """

    def __init__(
        self, params: Any, lr: float = 0.1, step_rule: str = "diminishing_length", f_star: float = 0.0
    ) -> None:
        defaults = hyperparameters(locals())
        check_positive("lr", lr)
        check_choice("step_rule", step_rule, STEP_RULES)
        check_number("f_star", f_star)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        group, state = self.group, self.solver_state
        x = self._flat.get()
        f, g = self._objective(closure).evaluate()
        if math.isfinite(f) and f < state.get("best_loss", math.inf):
            state["best_loss"], state["best_flat_params"] = f, x.clone()
        k = state["n_iter"]
        state["n_iter"] += 1
        g_norm = torch.linalg.vector_norm(g).item()
        finite = bool(torch.isfinite(g).all())
        record_search(state, Found(0.0, finite))
        if g_norm == 0.0 or not finite:
            return f
        rule = group["step_rule"]
        if rule == "constant":
            alpha = group["lr"]
        elif rule == "constant_length":
            alpha = group["lr"] / g_norm
        elif rule == "diminishing":
            alpha = group["lr"] / math.sqrt(k + 1)
        elif rule == "diminishing_length":
            alpha = group["lr"] / (math.sqrt(k + 1) * g_norm)
        else:
            alpha = max(f - group["f_star"], 0.0) / (g_norm * g_norm)
        self._flat.set(x - alpha * g)
        return f

    @property
    def best_loss(self) -> float:
        return self.solver_state.get("best_loss", math.inf)

    def best_params(self) -> list[Tensor]:
        """The best iterate seen so far, shaped like the parameters."""
        flat = self.solver_state.get("best_flat_params")
        return [piece.clone() for piece in self._flat.split(self._flat.get() if flat is None else flat)]

    @torch.no_grad()
    def load_best(self) -> None:
        """Copy the best iterate into the parameters."""
        self._flat.set(self.solver_state.get("best_flat_params", self._flat.get()))
