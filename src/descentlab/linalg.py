"""Linear algebra the second-order solvers share: the (preconditioned) conjugate-gradient method.

CG solves ``A x = b`` for a symmetric positive-definite ``A`` that is only available as a
matrix-vector product — a Hessian-, Gauss–Newton- or Fisher-vector product. In exact arithmetic it
finishes in at most ``n`` iterations on an ``n``-dimensional system (Hestenes & Stiefel 1952;
Nocedal & Wright, *Numerical Optimization*, 2nd ed., Algorithm 5.3).

Note on the course notes (000, "Conjugate Gradient"): *linear* CG is a method for quadratics
(equivalently, SPD linear systems); it is Hessian-free optimization that applies it to the local
quadratic model of a non-quadratic loss. The non-quadratic variant is *nonlinear* CG
(:class:`descentlab.second_order.NonlinearCG`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .validation import check_int, check_number, check_positive

__all__ = ["cg", "CGResult"]

Matvec = Callable[[Tensor], Tensor]


@dataclass
class CGResult:
    """What :func:`cg` found.

    Attributes:
        x: the approximate solution (the last iterate with positive curvature along every
            direction used; ``b`` itself if the very first direction had non-positive curvature).
        iterations: CG iterations performed (matrix-vector products, not counting ``x0``'s).
        residual_norm: ‖b − A x‖ of the returned ``x`` (the recurrence's value).
        converged: the residual tolerance was met.
        negative_curvature: a direction ``p`` with ``pᵀ A p ≤ 0`` was met (then ``A`` is not SPD).
        curvature_direction: that direction, else ``None``.
        iterates: ``(iteration, x_i)`` pairs kept when ``save_iterates`` was given.
        quadratic_values: φ(x_i) = ½ x_iᵀ A x_i − bᵀ x_i for each iterate (``x0`` first).
    """

    x: Tensor
    iterations: int
    residual_norm: float
    converged: bool
    negative_curvature: bool = False
    curvature_direction: Tensor | None = None
    iterates: list[tuple[int, Tensor]] = field(default_factory=list)
    quadratic_values: list[float] = field(default_factory=list)


def cg(
    matvec: Matvec,
    b: Tensor,
    x0: Tensor | None = None,
    *,
    preconditioner: Matvec | Tensor | None = None,
    tol: float = 1e-10,
    atol: float = 0.0,
    max_iter: int | None = None,
    stop_on_negative_curvature: bool = True,
    progress_tol: float | None = None,
    save_iterates: Callable[[int], bool] | None = None,
) -> CGResult:
    """Preconditioned conjugate gradient for ``A x = b`` (Nocedal & Wright, Algorithm 5.3).

    With ``r₀ = b − A x₀``, ``z₀ = M⁻¹ r₀``, ``p₀ = z₀``, each iteration does::

        α_k = r_kᵀ z_k / p_kᵀ A p_k
        x_{k+1} = x_k + α_k p_k,          r_{k+1} = r_k − α_k A p_k
        z_{k+1} = M⁻¹ r_{k+1},            β_k = r_{k+1}ᵀ z_{k+1} / r_kᵀ z_k
        p_{k+1} = z_{k+1} + β_k p_k

    and stops when ``‖r‖ ≤ max(tol·‖b‖, atol)``, after ``max_iter`` iterations (default ``b.numel()``),
    or — with ``stop_on_negative_curvature`` — when ``p_kᵀ A p_k ≤ 0``: the quadratic is unbounded
    along ``p_k``, so the last iterate (or ``b`` on the first iteration, the steepest-descent
    direction of φ at 0) is returned and the direction is reported (truncated Newton, Steihaug 1983).

    Args:
        matvec: ``v ↦ A v`` on tensors shaped like ``b``.
        b: right-hand side.
        x0: initial guess (zeros by default).
        preconditioner: ``M⁻¹`` as a function ``r ↦ M⁻¹ r`` or as a tensor ``d`` holding the diagonal
            of ``M`` (then ``M⁻¹ r = r / d``).
        tol: relative residual tolerance (``‖r‖ ≤ tol·‖b‖``).
        atol: absolute residual tolerance.
        max_iter: iteration cap.
        stop_on_negative_curvature: stop at the first direction with ``pᵀAp ≤ 0``.
        progress_tol: Martens' (2010, §4.4) relative-progress criterion on the quadratic
            φ(x) = ½xᵀAx − bᵀx: stop at iteration ``i`` once ``i > k``, ``φ(x_i) < 0`` and
            ``(φ(x_i) − φ(x_{i−k})) / φ(x_i) < k · progress_tol`` with ``k = max(10, ⌈0.1 i⌉)``.
        save_iterates: predicate on the iteration number; matching iterates are kept in
            ``CGResult.iterates`` (Hessian-free backtracks over them).
    """
    check_number("tol", tol, low=0.0)
    check_number("atol", atol, low=0.0)
    max_iter = b.numel() if max_iter is None else check_int("max_iter", max_iter, low=0)
    if progress_tol is not None:
        check_positive("progress_tol", progress_tol)
    if isinstance(preconditioner, Tensor):
        diagonal = preconditioner
        if (diagonal <= 0).any():
            raise ValueError("preconditioner diagonal must be positive everywhere")
        preconditioner = lambda r: r / diagonal  # noqa: E731

    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(x) if x0 is not None else b.clone()
    z = preconditioner(r) if preconditioner is not None else r
    p = z.clone()
    rz = torch.dot(r.flatten(), z.flatten())
    threshold = max(tol * torch.linalg.vector_norm(b).item(), atol)
    result = CGResult(x=x, iterations=0, residual_norm=torch.linalg.vector_norm(r).item(), converged=False)

    def quadratic(x_: Tensor, r_: Tensor) -> float:
        # φ(x) = ½ xᵀ A x − bᵀ x = −½ xᵀ (b + r) since A x = b − r.
        return -0.5 * torch.dot(x_.flatten(), (b + r_).flatten()).item()

    result.quadratic_values.append(quadratic(x, r))
    if save_iterates is not None and save_iterates(0):
        result.iterates.append((0, x.clone()))
    if result.residual_norm <= threshold:
        result.converged = True
        return result

    for k in range(max_iter):
        ap = matvec(p)
        curvature = torch.dot(p.flatten(), ap.flatten())
        if curvature <= 0 and stop_on_negative_curvature:
            result.negative_curvature = True
            result.curvature_direction = p
            if k == 0 and x0 is None:
                result.x = b.clone()  # steepest descent on φ at 0
            return result
        alpha = rz / curvature
        x = x + alpha * p
        r = r - alpha * ap
        result.x, result.iterations = x, k + 1
        result.residual_norm = torch.linalg.vector_norm(r).item()
        result.quadratic_values.append(quadratic(x, r))
        if save_iterates is not None and save_iterates(k + 1):
            result.iterates.append((k + 1, x.clone()))
        if result.residual_norm <= threshold:
            result.converged = True
            return result
        if progress_tol is not None and _martens_stop(result.quadratic_values, progress_tol):
            return result
        z = preconditioner(r) if preconditioner is not None else r
        rz_new = torch.dot(r.flatten(), z.flatten())
        p = z + (rz_new / rz) * p
        rz = rz_new
    return result


def _martens_stop(values: list[float], eps: float) -> bool:
    """Martens (2010) eq. in §4.4: stop when the relative progress over the last k steps is small."""
    i = len(values) - 1
    k = max(10, math.ceil(0.1 * i))
    if i <= k or values[i] >= 0:
        return False
    return (values[i] - values[i - k]) / values[i] < k * eps
