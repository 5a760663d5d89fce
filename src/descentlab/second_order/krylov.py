"""Krylov subspace descent (Vinyals & Povey 2012)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..operators import CurvatureOperator
from ..validation import check_choice, check_int, check_number, check_positive
from ._closure import Closure
from ._solver import ClosureSolver, descend, hyperparameters, record_search
from .direction import BFGSDirection
from .hessian_free import CURVATURES, curvature_operator
from .objective import Point, SubspaceObjective
from .search import Found, StrongWolfe


def krylov_basis(damped: CurvatureOperator, g: Tensor, dim: int, extra: Tensor | None) -> Tensor:
    """An orthonormal basis ``V`` of ``span{g, A g, …, A^{K−1} g}`` (+ ``extra``), by QR.

    The powers are normalised as they are formed; directions that turn out dependent (a small
    diagonal entry of R) are dropped, so ``V`` is n × m with m ≤ K + 1.
    """
    vectors, v = [], g / torch.linalg.vector_norm(g)
    for _ in range(dim):
        vectors.append(v)
        v = damped.matvec(v)
        norm = torch.linalg.vector_norm(v)
        if not torch.isfinite(norm) or norm == 0:
            break
        v = v / norm
    if extra is not None:
        vectors.append(extra)
    q, r = torch.linalg.qr(torch.stack(vectors, dim=1))
    keep = r.diagonal().abs() > 1e-8 * r.diagonal().abs().max()
    return q[:, keep]


class KrylovSubspaceDescent(ClosureSolver):
    """Krylov subspace descent: x ← x + Vα, α minimising f over span{g, Ag, …} (Vinyals & Povey 2012).

    Minimises the loss over a small subspace each step: the *direction* is a subspace, and the
    *search* over it is BFGS — the same direction-search loop as :class:`~.BFGS`, run on
    ``h(α) = f(x + V α)``. Each ``step(closure, curvature_closure=None)``:

    1. forms the Krylov basis ``{g, A g, A² g, …, A^{K−1} g}`` with ``A = B + λ I`` (``B`` the
       Gauss–Newton matrix when the closure returns ``(loss, outputs)``, else the Hessian; products
       on ``curvature_closure``'s batch if given), plus the previous step, and orthonormalises it
       (QR, dropping dependent directions) into ``V`` (n × m, m ≤ K + 1);
    2. minimises ``h(α) = f(x + V α)`` over α ∈ ℝᵐ with ``subspace_iter`` iterations of BFGS
       (strong-Wolfe line search, first trial step 1), starting from α = 0, and moves to
       ``x + lr · V α``.

    Vinyals & Povey use a diagonal preconditioner in the Krylov recursion and separate batches for
    gradient, curvature and the BFGS phase; here the batches are the caller's choice.
    State: ``previous_step`` (V α of the last step).
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
        defaults = hyperparameters(locals())
        check_positive("lr", lr)
        check_int("subspace_dim", subspace_dim)
        check_number("damping", damping, low=0.0)
        check_choice("curvature", curvature, CURVATURES)
        check_int("subspace_iter", subspace_iter)
        check_number("tolerance_grad", tolerance_grad, low=0.0)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Closure | None = None, curvature_closure: Closure | None = None) -> Any:  # type: ignore[override]
        group, state = self.group, self.solver_state
        objective, on_batch = self._objectives(closure, curvature_closure)
        start = objective.point(curvature=True, batch=on_batch)
        x, f, g, graph = start.x, start.f, start.g, start.graph
        del start
        state["n_iter"] += 1
        if torch.isfinite(g).all() and g.abs().max().item() <= group["tolerance_grad"]:
            return f
        basis = None
        if torch.isfinite(g).all():
            damped = curvature_operator(graph, group["curvature"]).damped(group["damping"])
            basis = krylov_basis(damped, g, group["subspace_dim"], state.get("previous_step"))
            del damped
        del graph  # the parameters move from here on
        if basis is None or basis.shape[1] == 0:  # a non-finite gradient, or no usable subspace
            record_search(state, Found(0.0, False))
            return f

        subspace = SubspaceObjective(objective, x, basis)
        inner = {"n_iter": 0, "line_search_failures": 0, "line_search_failed": False}
        end = descend(
            subspace,
            BFGSDirection(scipy_step=False),
            StrongWolfe(c1=1e-4, c2=0.9, max_iter=10),
            inner,
            Point(torch.zeros(basis.shape[1], dtype=g.dtype, device=g.device), f, basis.T @ g),
            lr=1.0,
            max_iter=group["subspace_iter"],
            max_eval=math.inf,
            tolerance_grad=group["tolerance_grad"],
            tolerance_change=0.0,
        )
        state["line_search_failures"] += inner["line_search_failures"]
        state["line_search_failed"] = inner["line_search_failed"]
        step = basis @ end.x
        state["previous_step"] = step if torch.linalg.vector_norm(step) > 0 else None
        objective.move(x + group["lr"] * step)
        return f
