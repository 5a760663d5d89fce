"""Run ``scipy.optimize.minimize`` on a torch model's parameters (``descentlab.scipy``).

SciPy already has careful implementations of L-BFGS-B, BFGS, CG, Newton-CG, trust-region Krylov
methods and more; this bridge only supplies what they need from autograd:

* ``fun`` and ``jac`` together: the loss and its gradient over the flattened parameters (float64);
* ``hessp(x, p)``: a Hessian-vector product by double backward, for the methods that take one
  (Newton-CG, trust-ncg, trust-krylov, trust-constr);
* ``hess(x)``: the full Hessian (n Hessian-vector products) for dogleg and trust-exact.

Flattening is :mod:`descentlab._flat`'s and the products are :mod:`descentlab.operators`' — the
same code the second-order solvers and :mod:`descentlab.curvature` use.

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

from ._flat import FlatParameters, flatten
from .operators import GradientGraph
from .validation import check_callable

__all__ = ["minimize", "HESSP_METHODS", "HESS_METHODS"]

HESSP_METHODS = ("newton-cg", "trust-ncg", "trust-krylov", "trust-constr")
HESS_METHODS = ("dogleg", "trust-exact")


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().cpu().double().numpy()


class _FlatProblem:
    """The loss as a function of one float64 vector holding all trainable parameters."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module], Tensor]) -> None:
        self.model = model
        self.loss_fn = loss_fn
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no trainable parameters (requires_grad=True)")
        self.flat = FlatParameters(params)

    def get(self) -> np.ndarray:
        return _numpy(self.flat.get())

    def set(self, x: np.ndarray) -> None:
        self.flat.set(torch.from_numpy(np.asarray(x, dtype=np.float64)))

    def _vector(self, v: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(v, dtype=np.float64)).to(
            dtype=self.flat.dtype, device=self.flat.device
        )

    def fun_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.set(x)
        with torch.enable_grad():
            loss = self.loss_fn(self.model)
            grads = torch.autograd.grad(loss, self.flat.params, allow_unused=True)
        return float(loss.detach()), _numpy(flatten(grads, self.flat.params))

    def _graph(self, x: np.ndarray) -> GradientGraph:
        self.set(x)
        with torch.enable_grad():
            return GradientGraph(self.loss_fn(self.model), self.flat.params)

    def hessp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``∇²f(x) v`` (:meth:`descentlab.operators.GradientGraph.hvp`)."""
        return _numpy(self._graph(x).hvp(self._vector(v)))

    def hess(self, x: np.ndarray) -> np.ndarray:
        """The dense Hessian (:meth:`descentlab.operators.GradientGraph.hessian_matrix`)."""
        return _numpy(self._graph(x).hessian_matrix())


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
        tol: passed on to SciPy.
        options: passed on to SciPy.
        callback: passed on to SciPy.
        **kwargs: passed on to SciPy (e.g. ``bounds``, ``constraints``).

    Returns:
        SciPy's ``OptimizeResult`` (``x`` is the float64 solution vector).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    check_callable("loss_fn", loss_fn, "model -> scalar loss tensor")
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
