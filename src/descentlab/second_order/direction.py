"""The *direction* half of a solver: which way to step, from the gradient and some curvature model.

A direction is a small object with the solver's hyperparameters; its own state lives in the
solver's ``state`` dict (so ``state_dict`` saves it) and is passed in::

    d = direction(objective, point, state)      # a descent direction at point (x, f, g)
    direction.update(state, s, y, old, new, d)  # learn from the step s = x₊ − x, y = g₊ − g
    direction.reset(state)                      # forget the model (d was not a descent direction)
    t0 = direction.first_step(state, point, d, lr)

* :class:`NewtonDirection` — ``(∇²f + μ I) d = −g`` by :func:`damped_newton_direction`;
* :class:`BFGSDirection` — ``d = −Hinv g``, :class:`BFGSInverseHessian` (dense);
* :class:`LBFGSDirection` — :func:`lbfgs_direction`, the two-loop recursion over the last m pairs;
* :class:`ConjugateDirection` — nonlinear CG, ``d = −g + β d_prev`` with :func:`conjugate_beta`
  (Fletcher–Reeves, Polak–Ribière+, Hestenes–Stiefel, Dai–Yuan) and restarts.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

import torch
from torch import Tensor

from .objective import ClosureObjective, Point

State = MutableMapping[str, Any]

BETA_RULES = ("FR", "PR+", "HS", "DY")


def damped_newton_direction(hessian: Tensor, g: Tensor, damping: float = 0.0) -> tuple[Tensor, float]:
    """Levenberg–Marquardt / regularised Newton step: ``d = −(H + μ I)⁻¹ g``.

    μ = ``damping`` while ``H + μ I`` is positive definite (its Cholesky factorisation succeeds) —
    with ``damping=0`` the pure Newton step. Otherwise (an indefinite or singular Hessian) μ is
    the regularisation of Ueda & Yamashita ("Convergence properties of the regularized Newton
    method for the unconstrained nonconvex optimization", Appl. Math. Optim. 62:27–46, 2010),
    ``μ = c₁ Λ + c₂ ‖g‖^δ`` with ``Λ = max(0, −λ_min(H))``, here with ``c₁ = 2``, ``c₂ = δ = 1``:
    ``μ = 2 Λ + max(‖g‖, damping, 10⁻⁶ max(1, |λ|_max))`` — applied, unlike theirs, only where it
    is needed, so that a convex quadratic is still solved in one step. Twice the shift that would make
    ``H + μI`` singular, plus a term that vanishes with the gradient: the step never points uphill,
    never divides by zero, and is short where the negative curvature is large or the point far from
    stationary. (The smallest shift, ``Λ`` plus a tiny margin, left ``H + μI`` nearly singular and
    its step so long that a line search spent most of its evaluations shortening it.) Returns
    ``(d, μ used)``; ``−g`` if the Hessian is not finite.
    """
    n = g.numel()
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    mu = damping
    if not torch.isfinite(hessian).all():
        return -g, mu
    factor, info = torch.linalg.cholesky_ex(hessian + mu * eye)
    if info.item() != 0 or not torch.isfinite(factor).all():
        eigenvalues = torch.linalg.eigvalsh(hessian)
        floor = 1e-6 * max(1.0, eigenvalues.abs().max().item())
        shift = max(0.0, -eigenvalues.min().item())
        mu = 2.0 * shift + max(damping, torch.linalg.vector_norm(g).item(), floor)
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


def scipy_first_step(state: State, point: Point, d: Tensor, lr: float) -> float:
    """SciPy's first trial step: ``min(lr, 1.01 · 2 (f_{k−1} − f_k) / gᵀd)`` (N&W eq. 3.60).

    Before the first iteration ``f_{k−1} = f + ‖g‖/2``, as in ``scipy.optimize.minimize(method="BFGS")``.
    """
    f, g = point.f, point.g
    prev = state.get("prev_loss")
    if prev is None:
        prev = f + torch.linalg.vector_norm(g).item() / 2
    t = 1.01 * 2 * (f - prev) / torch.dot(g, d).item()
    return lr if not (math.isfinite(t) and t > 0) else min(lr, t)


# -- directions as solver parts ----------------------------------------------------------------
class Direction:
    """What a direction provides (see the module docstring); by default no model and first step ``lr``.

    ``needs_curvature``: the first point of a step is evaluated with its gradient's graph.
    """

    needs_curvature = False

    def __call__(self, objective: ClosureObjective, point: Point, state: State) -> Tensor:
        raise NotImplementedError

    def update(self, state: State, s: Tensor, y: Tensor, old: Point, new: Point, d: Tensor) -> None:
        """Learn from the step ``s`` and the gradient change ``y``."""

    def reset(self, state: State) -> None:
        """Forget the curvature model."""

    def first_step(self, state: State, point: Point, d: Tensor, lr: float) -> float:
        return lr


class NewtonDirection(Direction):
    """``d = −(∇²f(x) + μ I)⁻¹ g``, the Hessian formed from the gradient's graph at x (n products).

    ``state["damping"]``: the μ used (raised above −λ_min when the Hessian is indefinite).
    """

    needs_curvature = True

    def __init__(self, damping: float) -> None:
        self.damping = damping

    def __call__(self, objective: ClosureObjective, point: Point, state: State) -> Tensor:
        graph = point.graph if point.graph is not None else objective.linearise(point.x)
        d, mu = damped_newton_direction(graph.hessian_matrix(), point.g, self.damping)
        state["damping"] = mu
        return d


class BFGSDirection(Direction):
    """``d = −Hinv g`` with ``state["inverse_hessian"]`` (``I`` at first) updated from each (s, y).

    ``first_step``: SciPy's rule (:func:`scipy_first_step`), or ``lr`` with ``scipy_step=False``.
    """

    def __init__(self, scipy_step: bool = True) -> None:
        self.scipy_step = scipy_step

    def _model(self, state: State, g: Tensor) -> BFGSInverseHessian:
        if "inverse_hessian" not in state:
            state["inverse_hessian"] = torch.eye(g.numel(), dtype=g.dtype, device=g.device)
        model = BFGSInverseHessian(0, g.dtype, g.device)
        model.matrix = state["inverse_hessian"]
        return model

    def __call__(self, objective: ClosureObjective, point: Point, state: State) -> Tensor:
        return self._model(state, point.g).direction(point.g)

    def update(self, state: State, s: Tensor, y: Tensor, old: Point, new: Point, d: Tensor) -> None:
        model = self._model(state, old.g)
        model.update(s, y)
        state["inverse_hessian"] = model.matrix

    def reset(self, state: State) -> None:
        state.pop("inverse_hessian", None)

    def first_step(self, state: State, point: Point, d: Tensor, lr: float) -> float:
        return scipy_first_step(state, point, d, lr) if self.scipy_step else lr


class LBFGSDirection(Direction):
    """The two-loop recursion over ``state["old_stps"]`` (s's) and ``state["old_dirs"]`` (y's), torch's keys.

    Keeps the last ``history_size`` pairs, skipping those with ``yᵀs ≤ 10⁻¹⁰``; the first step of a
    run (no pairs yet) has length ``lr · min(1, 1/‖g‖)``.
    """

    def __init__(self, history_size: int) -> None:
        self.history_size = history_size

    @staticmethod
    def _history(state: State) -> tuple[list[Tensor], list[Tensor]]:
        return state.setdefault("old_stps", []), state.setdefault("old_dirs", [])

    def __call__(self, objective: ClosureObjective, point: Point, state: State) -> Tensor:
        return lbfgs_direction(point.g, *self._history(state))

    def update(self, state: State, s: Tensor, y: Tensor, old: Point, new: Point, d: Tensor) -> None:
        if torch.dot(y, s) <= 1e-10:
            return
        s_history, y_history = self._history(state)
        if len(s_history) == self.history_size:
            s_history.pop(0)
            y_history.pop(0)
        s_history.append(s)
        y_history.append(y)

    def reset(self, state: State) -> None:
        for history in self._history(state):
            history.clear()

    def first_step(self, state: State, point: Point, d: Tensor, lr: float) -> float:
        if self._history(state)[0]:
            return lr
        return lr * min(1.0, 1.0 / torch.linalg.vector_norm(point.g).item())


class ConjugateDirection(Direction):
    """Nonlinear CG: ``d = −g + β d_prev``, restarting with ``d = −g`` (Powell 1977).

    Restarts when there is no previous pair, every ``period`` iterations, and when consecutive
    gradients are far from orthogonal (``|gᵀg_prev| ≥ threshold ‖g‖²``). State: ``d`` and
    ``prev_flat_grad`` (the last direction taken and the gradient it was taken from, stored
    together after a step), ``since_restart``, ``restarts``.
    """

    def __init__(self, beta: str, period: int, threshold: float) -> None:
        self.beta, self.period, self.threshold = beta, period, threshold

    def __call__(self, objective: ClosureObjective, point: Point, state: State) -> Tensor:
        g = point.g
        d_old, g_old = state.get("d"), state.get("prev_flat_grad")
        restart = (
            d_old is None
            or g_old is None
            or state.get("since_restart", 0) >= self.period
            or torch.dot(g, g_old).abs() >= self.threshold * torch.dot(g, g)
        )
        if restart:
            if d_old is not None:
                state["restarts"] = state.get("restarts", 0) + 1
            d = -g
            state["since_restart"] = 0
        else:
            d = -g + conjugate_beta(self.beta, g, g_old, d_old) * d_old
            state["since_restart"] = state.get("since_restart", 0) + 1
        if torch.dot(g, d) >= 0:
            d = -g
            state["since_restart"] = 0
        return d

    def update(self, state: State, s: Tensor, y: Tensor, old: Point, new: Point, d: Tensor) -> None:
        state["d"], state["prev_flat_grad"] = d, old.g

    def reset(self, state: State) -> None:
        state.pop("d", None)
        state.pop("prev_flat_grad", None)

    def first_step(self, state: State, point: Point, d: Tensor, lr: float) -> float:
        return scipy_first_step(state, point, d, lr)
