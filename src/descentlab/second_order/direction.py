"""The *direction* half of a solver: which way to step, from the gradient and some curvature model.

Each piece is a small function or state object on flat tensors, shared by the solvers:

* :func:`damped_newton_direction` — solve ``(H + μ I) d = −g`` (Levenberg–Marquardt damping μ),
  raising μ until the matrix is positive definite, so ``d`` is always a descent direction;
* :class:`BFGSInverseHessian` — the dense BFGS inverse-Hessian approximation;
* :func:`lbfgs_direction` — the L-BFGS two-loop recursion over the last m pairs;
* :func:`conjugate_beta` — nonlinear-CG β (Fletcher–Reeves, Polak–Ribière+, Hestenes–Stiefel, Dai–Yuan).
"""

from __future__ import annotations

import torch
from torch import Tensor

BETA_RULES = ("FR", "PR+", "HS", "DY")


def damped_newton_direction(hessian: Tensor, g: Tensor, damping: float = 0.0) -> tuple[Tensor, float]:
    """Levenberg–Marquardt / shifted Newton step: ``d = −(H + μ I)⁻¹ g``.

    Starts at μ = ``damping`` and, while the Cholesky factorisation fails (H + μI not positive
    definite: an indefinite or singular Hessian), sets μ to ``−λ_min(H) + max(μ, 10⁻⁶ max(1, |λ|_max))``,
    so the step never points uphill and never divides by zero. Returns ``(d, μ used)``.
    """
    n = g.numel()
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    mu = damping
    factor, info = torch.linalg.cholesky_ex(hessian + mu * eye)
    if info.item() != 0 or not torch.isfinite(factor).all():
        eigenvalues = torch.linalg.eigvalsh(hessian)
        scale = max(1.0, eigenvalues.abs().max().item())
        mu = -eigenvalues.min().item() + max(mu, 1e-6 * scale)
        factor, info = torch.linalg.cholesky_ex(hessian + mu * eye)
        if info.item() != 0:  # pragma: no cover - only on non-finite Hessians
            return -g, mu
    return -torch.cholesky_solve(g.unsqueeze(1), factor).squeeze(1), mu


class BFGSInverseHessian:
    """Dense BFGS approximation ``Hinv ≈ (∇²f)⁻¹`` (Nocedal & Wright eq. 6.17).

    With ``s = x_{k+1} − x_k``, ``y = g_{k+1} − g_k`` and ``ρ = 1 / yᵀs``::

        Hinv ← (I − ρ s yᵀ) Hinv (I − ρ y sᵀ) + ρ s sᵀ

    The update is skipped when ``yᵀs ≤ 10⁻¹⁰ ‖s‖ ‖y‖`` (no positive curvature along s), which keeps
    ``Hinv`` positive definite. ``Hinv₀ = I`` (as SciPy's BFGS).
    """

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.matrix = torch.eye(n, dtype=dtype, device=device)

    def direction(self, g: Tensor) -> Tensor:
        return -(self.matrix @ g)

    def update(self, s: Tensor, y: Tensor) -> bool:
        ys = torch.dot(y, s)
        if ys <= 1e-10 * torch.linalg.vector_norm(s) * torch.linalg.vector_norm(y):
            return False
        rho = 1.0 / ys
        hy = self.matrix @ y
        # Expanded form of (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ.
        self.matrix = (
            self.matrix
            - rho * (torch.outer(s, hy) + torch.outer(hy, s))
            + (rho * rho * torch.dot(y, hy) + rho) * torch.outer(s, s)
        )
        return True


def lbfgs_direction(g: Tensor, s_history: list[Tensor], y_history: list[Tensor]) -> Tensor:
    """Two-loop recursion (Nocedal & Wright, Algorithm 7.4): ``d = −Hinv_k g`` from the last m pairs.

    ``Hinv_k⁰ = γ I`` with ``γ = sᵀy / yᵀy`` of the newest pair (eq. 7.20); ``−g`` with no history.
    """
    if not s_history:
        return -g
    q = g.clone()
    rhos = [1.0 / torch.dot(y, s) for s, y in zip(s_history, y_history)]
    alphas = []
    for s, y, rho in zip(reversed(s_history), reversed(y_history), reversed(rhos)):
        alpha = rho * torch.dot(s, q)
        q -= alpha * y
        alphas.append(alpha)
    s, y = s_history[-1], y_history[-1]
    r = q * (torch.dot(s, y) / torch.dot(y, y))
    for s, y, rho, alpha in zip(s_history, y_history, rhos, reversed(alphas)):
        beta = rho * torch.dot(y, r)
        r += (alpha - beta) * s
    return -r


def conjugate_beta(rule: str, g_new: Tensor, g_old: Tensor, d_old: Tensor) -> float:
    """β of nonlinear CG, ``d_{k+1} = −g_{k+1} + β d_k`` (Nocedal & Wright §5.2; Dai & Yuan 1999)::

    FR  = g₊ᵀg₊ / gᵀg                 PR+ = max(0, g₊ᵀ(g₊ − g) / gᵀg)
    HS  = g₊ᵀ(g₊ − g) / dᵀ(g₊ − g)      DY  = g₊ᵀg₊ / dᵀ(g₊ − g)
    """
    y = g_new - g_old
    if rule == "FR":
        num, den = torch.dot(g_new, g_new), torch.dot(g_old, g_old)
    elif rule == "PR+":
        num, den = torch.dot(g_new, y), torch.dot(g_old, g_old)
    elif rule == "HS":
        num, den = torch.dot(g_new, y), torch.dot(d_old, y)
    elif rule == "DY":
        num, den = torch.dot(g_new, g_new), torch.dot(d_old, y)
    else:
        raise ValueError(f"beta must be one of {BETA_RULES}, got {rule!r}")
    if den.abs() <= torch.finfo(g_new.dtype).tiny:
        return 0.0
    beta = (num / den).item()
    return max(beta, 0.0) if rule == "PR+" else beta
