"""Krylov subspace descent (Vinyals & Povey 2012)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..linesearch import strong_wolfe
from ._closure import Closure, ClosureSolver, check_choice, check_hyper, check_int
from .direction import BFGSInverseHessian


class KrylovSubspaceDescent(ClosureSolver):
    """Krylov subspace descent: x ← x + Vα, α minimising f over span{g, Ag, …} (Vinyals & Povey 2012).

    Minimises the loss over a small subspace each step.

    Each ``step(closure, curvature_closure=None)``:

    1. forms the Krylov basis ``{g, A g, A² g, …, A^{K−1} g}`` with ``A = B + λ I`` (``B`` the
       Gauss–Newton matrix when the closure returns ``(loss, outputs)``, else the Hessian; products
       on ``curvature_closure``'s batch if given), plus the previous step, and orthonormalises it
       (QR, dropping dependent directions) into ``V`` (n × m, m ≤ K + 1);
    2. minimises ``h(α) = f(x + V α)`` over α ∈ ℝᵐ with ``subspace_iter`` iterations of BFGS
       (strong-Wolfe line search), starting from α = 0, and moves to ``x + lr · V α``.

    Vinyals & Povey use a diagonal preconditioner in the Krylov recursion and separate batches for
    gradient, curvature and the BFGS phase; here the batches are the caller's choice.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        subspace_dim: int = 8,
        damping: float = 1e-3,
        curvature: str = "auto",
        subspace_iter: int = 20,
        tolerance_grad: float = 1e-9,
    ) -> None:
        check_hyper("lr", lr, low_open=True)
        check_int("subspace_dim", subspace_dim)
        check_hyper("damping", damping)
        check_choice("curvature", curvature, ("auto", "gauss_newton", "hessian"))
        check_int("subspace_iter", subspace_iter)
        check_hyper("tolerance_grad", tolerance_grad)
        defaults = dict(
            lr=lr,
            subspace_dim=subspace_dim,
            damping=damping,
            curvature=curvature,
            subspace_iter=subspace_iter,
            tolerance_grad=tolerance_grad,
        )
        super().__init__(params, defaults)

    def _basis(self, product, g: Tensor) -> Tensor:
        group, state = self.group, self.solver_state
        vectors, v = [], g / torch.linalg.vector_norm(g)
        for _ in range(group["subspace_dim"]):
            vectors.append(v)
            v = product(v) + group["damping"] * v
            norm = torch.linalg.vector_norm(v)
            if not torch.isfinite(norm) or norm == 0:
                break
            v = v / norm
        if state.get("previous_step") is not None:
            vectors.append(state["previous_step"])
        q, r = torch.linalg.qr(torch.stack(vectors, dim=1))
        keep = r.diagonal().abs() > 1e-8 * r.diagonal().abs().max()
        return q[:, keep]

    @torch.no_grad()
    def step(self, closure: Closure | None = None, curvature_closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        group, state = self.group, self.solver_state
        x = self._flat_params()
        graph = self._evaluate_graph(closure if curvature_closure is None else curvature_closure)
        if curvature_closure is None:
            f, g = graph.value, graph.grad
        else:
            f, g = self._evaluate(closure)  # the parameters are still at x
        state["n_iter"] += 1
        if g.abs().max().item() <= group["tolerance_grad"]:
            return f
        use_ggn = group["curvature"] == "gauss_newton" or (
            group["curvature"] == "auto" and graph.outputs is not None
        )
        basis = self._basis(graph.ggn if use_ggn else graph.hvp, g)

        # BFGS over the subspace coefficients α.
        alpha = torch.zeros(basis.shape[1], dtype=g.dtype, device=g.device)
        h, h_grad = f, basis.T @ g
        inverse = BFGSInverseHessian(basis.shape[1], g.dtype, g.device)
        for _ in range(group["subspace_iter"]):
            if h_grad.abs().max().item() <= group["tolerance_grad"]:
                break
            d = inverse.direction(h_grad)
            slope = torch.dot(h_grad, d).item()
            if not slope < 0:
                inverse = BFGSInverseHessian(basis.shape[1], g.dtype, g.device)
                d, slope = -h_grad, -torch.dot(h_grad, h_grad).item()
            cache: dict[float, Tensor] = {}

            def phi(t: float, alpha=alpha, d=d, cache=cache) -> tuple[float, float]:
                value, grad = self._evaluate_at(closure, x + basis @ (alpha + t * d))
                cache[t] = basis.T @ grad
                return value, torch.dot(cache[t], d).item()

            result = strong_wolfe(phi, h, slope, 1.0)
            if result.step == 0.0:
                state["line_search_failures"] += 1
                break
            new_alpha = alpha + result.step * d
            inverse.update(new_alpha - alpha, cache[result.step] - h_grad)
            alpha, h, h_grad = new_alpha, result.value, cache[result.step]
            if not result.success:
                state["line_search_failures"] += 1
                break
        step = basis @ alpha
        state["previous_step"] = step if torch.linalg.vector_norm(step) > 0 else None
        self._set_flat_params(x + group["lr"] * step)
        return f
