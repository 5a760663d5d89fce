"""Hessian-free optimization (Martens 2010)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..curvature import diagonal_estimate
from ..linalg import CGResult, cg
from ..operators import CurvatureOperator, GradientGraph
from ..validation import check_choice, check_int, check_number, check_pair, check_positive
from ._closure import Closure
from ._solver import ClosureSolver, hyperparameters, record_search
from .objective import ClosureObjective, LineObjective, Point
from .search import Backtracking, Found

CURVATURES = ("auto", "gauss_newton", "hessian")


def curvature_operator(graph: GradientGraph, kind: str) -> CurvatureOperator:
    """``B``: the Gauss–Newton matrix (``"auto"`` when the closure returned outputs) or the Hessian."""
    if kind == "auto":
        kind = "gauss_newton" if graph.outputs is not None else "hessian"
    return graph.gauss_newton_operator() if kind == "gauss_newton" else graph.hessian_operator()


def _geometric_indices(limit: int, ratio: float = 1.3) -> set[int]:
    """CG iterations whose iterates HF keeps for backtracking: ⌈1.3^j⌉ (Martens 2010, §4.6)."""
    indices, j = set(), 0
    while (i := math.ceil(ratio**j)) <= limit:
        indices.add(i)
        j += 1
    return indices


@dataclass
class _Candidate:
    """A CG iterate ``p`` with its damped model value ``φ(p) = ½ pᵀ(B + λI)p + ∇fᵀp``."""

    p: Tensor
    model_value: float


def _candidates(result: CGResult, damped: CurvatureOperator, g: Tensor) -> list[_Candidate]:
    """The kept CG iterates ``p_{⌈1.3^j⌉}`` and the final solution, each with its model value.

    Computed before the parameters move: the curvature graph belongs to x.
    """
    candidates = [_Candidate(p, result.quadratic_values[i]) for i, p in result.iterates if i > 0]
    if not candidates or not torch.equal(candidates[-1].p, result.x):
        if len(result.quadratic_values) > result.iterations and result.iterations > 0:
            value = result.quadratic_values[result.iterations]
        else:
            value = 0.5 * torch.dot(result.x, damped.matvec(result.x)).item() + torch.dot(g, result.x).item()
        candidates.append(_Candidate(result.x, value))
    return candidates


def _finite_or_inf(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def backtrack_over_iterates(
    objective: ClosureObjective, start: Point, candidates: list[_Candidate]
) -> tuple[_Candidate, Point]:
    """Martens (2010, §4.6): from the last CG iterate, step back while the previous one has a lower loss."""

    def evaluated(candidate: _Candidate) -> Point:
        x = start.x + candidate.p
        f, g = objective.evaluate(x)
        return Point(x, _finite_or_inf(f), g)

    best, best_point = candidates[-1], evaluated(candidates[-1])
    for candidate in reversed(candidates[:-1]):
        point = evaluated(candidate)
        if point.f >= best_point.f:
            break
        best, best_point = candidate, point
    return best, best_point


def levenberg_marquardt(damping: float, rho: float, bounds: tuple[float, float]) -> float:
    """ρ < ¼ ⇒ λ ← 3/2 λ;  ρ > ¾ ⇒ λ ← 2/3 λ, within ``bounds`` (Martens 2010, §4.1)."""
    lo, hi = bounds
    if rho < 0.25:
        return min(hi, damping * 1.5)
    if rho > 0.75:
        return max(lo, damping * 2 / 3)
    return damping


class HessianFree(ClosureSolver):
    """Hessian-free: x ← x + t·p,  p ≈ −(B + λI)⁻¹∇f by CG on curvature products (Martens 2010).

    After Martens (2010), "Deep learning via Hessian-free optimization". A truncated-Newton
    *direction* (CG on the damped quadratic model, then backtracking over the CG iterates) plus an
    Armijo *search* on the chosen direction. Each ``step(closure, curvature_closure=None)``:

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
    4. takes ``x ← x + t p`` with Armijo backtracking on ``t`` from ``lr`` (shrink 0.8; the loss at
       ``t = 1`` is already known from step 3). A failed search leaves the best point it saw and is
       recorded in state;
    5. adapts λ by the reduction ratio ρ = (f(x + p) − f(x)) / q(p), ``q(p) = ∇fᵀp + ½ pᵀ B p``:
       ρ < ¼ ⇒ λ ← 3/2 λ;  ρ > ¾ ⇒ λ ← 2/3 λ  (Levenberg–Marquardt).

    Negative curvature (possible with the Hessian) stops CG at the last good iterate, so steps stay finite.
    State: ``damping`` (λ), ``direction`` (last CG solution), ``cg_iterations``, ``rho`` and, with the
    diagonal preconditioner, ``generator_state`` (its probes' RNG, seeded by ``seed``).
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
        defaults = hyperparameters(locals())
        check_positive("lr", lr)
        check_positive("damping", damping)
        check_choice("curvature", curvature, CURVATURES)
        check_int("cg_max_iter", cg_max_iter)
        check_positive("cg_progress_tol", cg_progress_tol)
        check_number("cg_decay", cg_decay, low=0.0, high=1.0)
        check_choice("preconditioner", preconditioner, (None, "diagonal"))
        check_number("preconditioner_exponent", preconditioner_exponent, low=0.0, high=1.0)
        check_int("preconditioner_samples", preconditioner_samples)
        lo, hi = check_pair("damping_bounds", damping_bounds, "lowest", "highest")
        check_positive("damping_bounds[0]", lo)
        check_number("damping_bounds[1]", hi, low=lo)
        check_int("max_iter", max_iter)
        check_int("seed", seed, low=0)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Closure | None = None, curvature_closure: Closure | None = None) -> Any:  # type: ignore[override]
        objective, on_batch = self._objectives(closure, curvature_closure)
        losses = [self._iteration(objective, on_batch) for _ in range(self.group["max_iter"])]
        return losses[0]

    def _iteration(self, objective: ClosureObjective, on_batch: ClosureObjective) -> float:
        group, state = self.group, self.solver_state
        lam = state.setdefault("damping", group["damping"])
        start = objective.point(curvature=True, batch=on_batch)
        graph, start.graph = start.graph, None

        # The direction: CG on (B + λI) p = −∇f, then backtracking over its iterates.
        curvature = curvature_operator(graph, group["curvature"])
        damped = curvature.damped(lam)
        previous = state.get("direction")
        keep = _geometric_indices(group["cg_max_iter"])
        result = cg(
            damped.matvec,
            -start.g,
            None if previous is None else group["cg_decay"] * previous,
            preconditioner=self._preconditioner(curvature, lam),
            tol=1e-10,
            max_iter=group["cg_max_iter"],
            progress_tol=group["cg_progress_tol"],
            save_iterates=lambda i: i in keep,
        )
        state["cg_iterations"] = result.iterations
        state["direction"] = result.x
        candidates = _candidates(result, damped, start.g)
        del graph, curvature, damped  # the parameters move from here on; free the graph first
        best, at_p = backtrack_over_iterates(objective, start, candidates)

        # λ by the reduction ratio against the undamped model q(p) = φ(p) − ½λ‖p‖².
        p = best.p
        predicted = best.model_value - 0.5 * lam * torch.dot(p, p).item()
        rho = (at_p.f - start.f) / predicted if predicted < 0 else -math.inf
        state["rho"] = rho
        state["damping"] = levenberg_marquardt(lam, rho, group["damping_bounds"])

        # The search: Armijo backtracking on t along p; φ(1) = f(x + p) is already known.
        phi = LineObjective(objective, start, p)
        phi.remember(1.0, at_p)
        if phi.slope0 < 0:
            found = Backtracking(c1=1e-4, shrink=0.8, max_iter=20)(phi, group["lr"])
        else:
            found = Found(0.0, False)
        record_search(state, found)
        objective.move(phi.x(found.step))
        state["n_iter"] += 1
        return start.f

    def _preconditioner(self, curvature: CurvatureOperator, lam: float) -> Tensor | None:
        """``M = diag(B̂ + λ)^α`` with ``B̂ ≥ 0`` a Hutchinson estimate of diag(B) (Chapelle & Erhan 2011)."""
        group = self.group
        if group["preconditioner"] != "diagonal":
            return None
        generator = self._generator()
        diag = diagonal_estimate(curvature, group["preconditioner_samples"], generator=generator)
        self._keep_generator(generator)
        return (diag.clamp_min(0) + lam) ** group["preconditioner_exponent"]
