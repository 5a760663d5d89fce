"""Run ``scipy.optimize.minimize`` on a torch model's parameters (``descentlab.scipy``).

SciPy already has careful implementations of L-BFGS-B, BFGS, CG, Newton-CG, trust-region Krylov
methods and more; this bridge only supplies what they need from autograd:

* ``fun`` and ``jac`` together: the loss and its gradient over the flattened parameters (float64);
* ``hessp(x, p)``: a Hessian-vector product by double backward, for the methods that take one
  (Newton-CG, trust-ncg, trust-krylov, trust-constr);
* ``hess(x)``: the full Hessian (n Hessian-vector products) for dogleg and trust-exact.

The solution is written back into the model.

Example::

    import torch
    from descentlab.scipy import minimize
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    result = minimize(model, lambda m: torch.nn.functional.mse_loss(m(x), y), method="L-BFGS-B")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import Tensor, nn

__all__ = ["minimize", "HESSP_METHODS", "HESS_METHODS"]

HESSP_METHODS = ("newton-cg", "trust-ncg", "trust-krylov", "trust-constr")
HESS_METHODS = ("dogleg", "trust-exact")


class _FlatProblem:
    """The loss as a function of one float64 vector holding all trainable parameters."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module], Tensor]) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("model has no trainable parameters (requires_grad=True)")
        self.numels = [p.numel() for p in self.params]

    def get(self) -> np.ndarray:
        return torch.cat([p.detach().reshape(-1) for p in self.params]).cpu().double().numpy()

    @torch.no_grad()
    def set(self, x: np.ndarray) -> None:
        flat = torch.from_numpy(np.asarray(x, dtype=np.float64))
        for p, piece in zip(self.params, torch.split(flat, self.numels)):
            p.copy_(piece.view_as(p).to(dtype=p.dtype, device=p.device))

    def _flatten(self, tensors) -> np.ndarray:
        parts = [torch.zeros_like(p) if t is None else t for t, p in zip(tensors, self.params)]
        return torch.cat([t.detach().reshape(-1) for t in parts]).cpu().double().numpy()

    def fun_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.set(x)
        with torch.enable_grad():
            loss = self.loss_fn(self.model)
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return float(loss.detach()), self._flatten(grads)

    def hessp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``∇²f(x) v = ∇(∇f(x) · v)`` by double backward."""
        self.set(x)
        pieces = torch.split(torch.from_numpy(np.asarray(v, dtype=np.float64)), self.numels)
        with torch.enable_grad():
            loss = self.loss_fn(self.model)
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
            dot = sum(
                (g * piece.view_as(p).to(g)).sum()
                for g, piece, p in zip(grads, pieces, self.params)
                if g is not None
            )
            if not isinstance(dot, Tensor) or not dot.requires_grad:
                return np.zeros_like(v, dtype=np.float64)
            products = torch.autograd.grad(dot, self.params, allow_unused=True)
        return self._flatten(products)

    def hess(self, x: np.ndarray) -> np.ndarray:
        eye = np.eye(x.size)
        hessian = np.stack([self.hessp(x, e) for e in eye])
        return 0.5 * (hessian + hessian.T)


def minimize(
    model: nn.Module,
    loss_fn: Callable[[nn.Module], Tensor],
    method: str = "L-BFGS-B",
    *,
    tol: float | None = None,
    options: dict[str, Any] | None = None,
    callback: Callable[..., Any] | None = None,
    **kwargs: Any,
) -> scipy.optimize.OptimizeResult:
    """Minimise ``loss_fn(model)`` over the model's trainable parameters with ``scipy.optimize.minimize``.

    Args:
        model: its parameters (``requires_grad=True``) are the variables; the result is written back.
        loss_fn: ``model ↦ scalar loss tensor`` (e.g. ``lambda m: F.mse_loss(m(x), y)``).
        method: any ``scipy.optimize.minimize`` method; gradient-free ones ignore the gradient.
        tol, options, callback, **kwargs: passed on to SciPy (e.g. ``bounds``, ``constraints``).

    Returns:
        SciPy's ``OptimizeResult`` (``x`` is the float64 solution vector).
    """
    if not isinstance(method, str):
        raise ValueError(f"method must be a scipy.optimize.minimize method name (a string), got {method!r}")
    problem = _FlatProblem(model, loss_fn)
    extra: dict[str, Any] = {}
    name = method.lower()
    if name in HESSP_METHODS:
        extra["hessp"] = problem.hessp
    elif name in HESS_METHODS:
        extra["hess"] = problem.hess
    gradient_free = name in ("nelder-mead", "powell", "cobyla", "cobyqa")
    if gradient_free:
        fun, jac = (lambda x: problem.fun_and_grad(x)[0]), None
    else:
        fun, jac = problem.fun_and_grad, True
    result = scipy.optimize.minimize(
        fun,
        problem.get(),
        jac=jac,
        method=method,
        tol=tol,
        options=options,
        callback=callback,
        **extra,
        **kwargs,
    )
    problem.set(result.x)
    return result
