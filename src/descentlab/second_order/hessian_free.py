"""Hessian-free optimization (Martens 2010)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..curvature import CurvatureOperator, diagonal_estimate
from ..linalg import cg
from ..linesearch import backtracking_armijo
from ._closure import Closure, ClosureGraph, ClosureSolver, check_choice, check_hyper, check_int

CURVATURES = ("auto", "gauss_newton", "hessian")


def _geometric_indices(limit: int, ratio: float = 1.3) -> set[int]:
    """CG iterations whose iterates HF keeps for backtracking: ⌈1.3^j⌉ (Martens 2010, §4.6)."""
    indices, j = set(), 0
    while (i := math.ceil(ratio**j)) <= limit:
        indices.add(i)
        j += 1
    return indices


class HessianFree(ClosureSolver):
    """Hessian-free: x ← x + t·p,  p ≈ −(B + λI)⁻¹∇f by CG on curvature products (Martens 2010).

    After Martens (2010), "Deep learning via Hessian-free optimization".

    Each ``step(closure, curvature_closure=None)``:

    1. builds the damped curvature ``A = B + λ I`` from matrix-vector products only, where ``B`` is
       the Gauss–Newton matrix ``Jᵀ H_L J`` (``curvature="gauss_newton"``, needs a closure returning
       ``(loss, outputs)``) or the Hessian (``"hessian"``); ``"auto"`` picks Gauss–Newton when
       outputs are returned. With ``curvature_closure`` the products use that closure's (smaller)
       mini-batch, as Martens does;
    2. runs CG on ``A p = −∇f`` from ``ζ p_prev`` (warm start, ζ = ``cg_decay``), optionally
       preconditioned by ``M = diag(B̂ + λ)^α`` with ``B̂`` a Hutchinson estimate of the curvature's
       diagonal (Chapelle & Erhan 2011; Martens used the empirical-Fisher diagonal, which needs
       per-example gradients a closure does not give), stopped by Martens' relative-progress rule;
    3. backtracks over the CG iterates ``p_{⌈1.3^j⌉}``: starting from the last, moves to the previous
       one while that has a lower loss;
    4. takes ``x ← x + t p`` with Armijo backtracking on ``t`` from ``lr`` (failure: no move,
       recorded in state);
    5. adapts λ by the reduction ratio ρ = (f(x + p) − f(x)) / q(p), ``q(p) = ∇fᵀp + ½ pᵀ B p``:
       ρ < ¼ ⇒ λ ← 3/2 λ;  ρ > ¾ ⇒ λ ← 2/3 λ  (Levenberg–Marquardt).

    Negative curvature (possible with the Hessian) stops CG at the last good iterate, so steps stay finite.
    State: ``damping`` (λ), ``direction`` (last CG solution), ``cg_iterations``, ``rho``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        damping: float = 1.0,
        curvature: str = "auto",
        cg_max_iter: int = 100,
        cg_progress_tol: float = 5e-4,
        cg_decay: float = 0.95,
        preconditioner: str | None = None,
        preconditioner_exponent: float = 0.75,
        preconditioner_samples: int = 4,
        damping_bounds: tuple[float, float] = (1e-8, 1e8),
        max_iter: int = 1,
        seed: int = 0,
    ) -> None:
        check_hyper("lr", lr, low_open=True)
        check_hyper("damping", damping, low_open=True)
        check_choice("curvature", curvature, CURVATURES)
        check_int("cg_max_iter", cg_max_iter)
        check_hyper("cg_progress_tol", cg_progress_tol, low_open=True)
        check_hyper("cg_decay", cg_decay, high=1.0)
        check_choice("preconditioner", preconditioner, (None, "diagonal"))
        check_hyper("preconditioner_exponent", preconditioner_exponent, high=1.0)
        check_int("preconditioner_samples", preconditioner_samples)
        check_int("max_iter", max_iter)
        lo, hi = damping_bounds
        check_hyper("damping_bounds[0]", lo, low_open=True)
        check_hyper("damping_bounds[1]", hi, low=lo)
        defaults = dict(
            lr=lr,
            damping=damping,
            curvature=curvature,
            cg_max_iter=cg_max_iter,
            cg_progress_tol=cg_progress_tol,
            cg_decay=cg_decay,
            preconditioner=preconditioner,
            preconditioner_exponent=preconditioner_exponent,
            preconditioner_samples=preconditioner_samples,
            damping_bounds=damping_bounds,
            max_iter=max_iter,
        )
        super().__init__(params, defaults)
        self._generator = torch.Generator().manual_seed(seed)

    def _curvature_product(self, graph: ClosureGraph):
        kind = self.group["curvature"]
        if kind == "auto":
            kind = "gauss_newton" if graph.outputs is not None else "hessian"
        return graph.ggn if kind == "gauss_newton" else graph.hvp

    @torch.no_grad()
    def step(self, closure: Closure | None = None, curvature_closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        loss_at_start = None
        for _ in range(self.group["max_iter"]):
            loss = self._one_iteration(closure, curvature_closure)
            loss_at_start = loss if loss_at_start is None else loss_at_start
        return loss_at_start

    def _one_iteration(self, closure: Closure, curvature_closure: Closure | None) -> float:
        group, state = self.group, self.solver_state
        lam = state.setdefault("damping", group["damping"])
        x = self._flat_params()
        graph = self._evaluate_graph(closure if curvature_closure is None else curvature_closure)
        if curvature_closure is None:
            f, g = graph.value, graph.grad
        else:
            f, g = self._evaluate(closure)  # the parameters are still at x
        product = self._curvature_product(graph)
        preconditioner = None
        if group["preconditioner"] == "diagonal":
            op = CurvatureOperator(product, self._numel, g.dtype, g.device)
            diag = diagonal_estimate(
                op, group["preconditioner_samples"], generator=self._generator
            ).clamp_min(0)
            preconditioner = (diag + lam) ** group["preconditioner_exponent"]
        previous = state.get("direction")
        x0 = None if previous is None else group["cg_decay"] * previous
        keep = _geometric_indices(group["cg_max_iter"])
        result = cg(
            lambda v: product(v) + lam * v,
            -g,
            x0,
            preconditioner=preconditioner,
            tol=1e-10,
            max_iter=group["cg_max_iter"],
            progress_tol=group["cg_progress_tol"],
            save_iterates=lambda i: i in keep,
        )
        state["cg_iterations"] = result.iterations
        state["direction"] = result.x
        # Candidates with their damped model values φ(p) = ½ pᵀ(B + λI)p + ∇fᵀp, all taken before the
        # parameters move (the curvature graph belongs to x).
        candidates = [(p, result.quadratic_values[i]) for i, p in result.iterates if i > 0]
        if not candidates or not torch.equal(candidates[-1][0], result.x):
            if len(result.quadratic_values) > result.iterations and result.iterations > 0:
                phi_x = result.quadratic_values[result.iterations]
            else:
                phi_x = 0.5 * torch.dot(result.x, product(result.x) + lam * result.x).item()
                phi_x += torch.dot(g, result.x).item()
            candidates.append((result.x, phi_x))

        # Backtrack over CG iterates: from the last, step back while the previous one is better.
        def loss_at(p: Tensor) -> float:
            value, _ = self._evaluate_at(closure, x + p)
            return value if math.isfinite(value) else math.inf

        (best_p, best_phi), best_f = candidates[-1], loss_at(candidates[-1][0])
        for p, phi in reversed(candidates[:-1]):
            value = loss_at(p)
            if value >= best_f:
                break
            best_p, best_phi, best_f = p, phi, value

        # Reduction ratio against the undamped model q(p) = φ(p) − ½λ‖p‖²; Levenberg–Marquardt on λ.
        g_dot_p = torch.dot(g, best_p).item()
        predicted = best_phi - 0.5 * lam * torch.dot(best_p, best_p).item()
        rho = (best_f - f) / predicted if predicted < 0 else -math.inf
        state["rho"] = rho
        lo, hi = group["damping_bounds"]
        if rho < 0.25:
            lam = min(hi, lam * 1.5)
        elif rho > 0.75:
            lam = max(lo, lam * 2 / 3)
        state["damping"] = lam

        # Armijo backtracking on the chosen direction.
        step = 0.0
        if g_dot_p < 0:
            if group["lr"] == 1.0 and best_f <= f + 1e-4 * g_dot_p:
                step = 1.0
            else:
                search = backtracking_armijo(
                    lambda t: (loss_at(t * best_p), g_dot_p), f, g_dot_p, group["lr"], shrink=0.8, max_iter=20
                )
                step = search.step
        state["line_search_failed"] = step == 0.0
        if step == 0.0:
            state["line_search_failures"] += 1
        self._set_flat_params(x + step * best_p)
        state["n_iter"] += 1
        return f
