"""What every closure-driven solver shares: flat parameters, counted evaluations, curvature products.

The solvers follow ``torch.optim.LBFGS``: one parameter group, parameters handled as one flat
vector, and ``step(closure)`` where the closure zeroes the gradients, computes the loss, calls
``backward()`` and returns the loss. A closure may also return ``(loss, outputs)`` — the network's
outputs — which lets Gauss–Newton / Fisher solvers form ``Jᵀ H_L J v`` products.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from ..transforms.base import check_number

Closure = Callable[[], Any]


def split_closure_output(output: Any) -> tuple[Tensor, Tensor | None]:
    """A closure returns ``loss`` or ``(loss, outputs)``."""
    if isinstance(output, (tuple, list)):
        if len(output) != 2:
            raise ValueError(f"a closure returns loss or (loss, outputs), got a sequence of {len(output)}")
        return output[0], output[1]
    return output, None


@contextlib.contextmanager
def backward_creates_graph() -> Iterator[None]:
    """Within this context ``Tensor.backward`` keeps the graph of the gradient (``create_graph=True``).

    This is how an ordinary closure (which calls ``loss.backward()``) yields gradients that can be
    differentiated again — double backward — for Hessian-vector products. Not thread-safe: it
    swaps ``torch.Tensor.backward`` for the duration of one closure call.
    """
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        return original(self, gradient, retain_graph, True, inputs)

    torch.Tensor.backward = backward
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*create_graph=True.*reference cycle.*")
            yield
    finally:
        torch.Tensor.backward = original


def _flatten(tensors: list[Tensor | None], params: list[Tensor]) -> Tensor:
    return torch.cat([(torch.zeros_like(p) if t is None else t).reshape(-1) for t, p in zip(tensors, params)])


class ClosureGraph:
    """One evaluation of a closure whose gradient keeps its graph, for curvature-vector products.

    ``hvp(v) = ∇(∇f · v)`` (double backward); ``ggn(v) = Jᵀ H_L J v`` when the closure returned
    the network's outputs ``z`` (``J v`` by the double-vjp trick: ``J v = ∂(Jᵀu)/∂u · v``).
    """

    def __init__(self, closure: Closure, params: list[Tensor]) -> None:
        self.params = params
        with backward_creates_graph(), torch.enable_grad():
            self.loss, self.outputs = split_closure_output(closure())
        grads = [p.grad for p in params]
        if all(g is None for g in grads):
            raise RuntimeError("the closure left no gradients: it must call loss.backward()")
        with torch.enable_grad():
            self.flat_grad_graph = _flatten(grads, params)
        for p in params:
            if p.grad is not None:
                p.grad = p.grad.detach()
        self.value = float(self.loss.detach())
        self.grad = self.flat_grad_graph.detach()
        self._loss_output_grad: Tensor | None = None

    def _unflatten(self, v: Tensor) -> list[Tensor]:
        return [
            piece.view_as(p)
            for piece, p in zip(torch.split(v, [p.numel() for p in self.params]), self.params)
        ]

    @torch.enable_grad()
    def hvp(self, v: Tensor) -> Tensor:
        if not self.flat_grad_graph.requires_grad:
            return torch.zeros_like(v)
        products = torch.autograd.grad(
            self.flat_grad_graph, self.params, v, retain_graph=True, allow_unused=True
        )
        return _flatten(list(products), self.params)

    @torch.enable_grad()
    def jvp_outputs(self, v: Tensor) -> Tensor:
        """``J v`` for the outputs z: ``Jᵀu`` is linear in a dummy ``u``, so ``J v = ∂(vᵀ Jᵀ u)/∂u``."""
        z = self._require_outputs()
        u = torch.zeros_like(z, requires_grad=True)
        jt_u = torch.autograd.grad(z, self.params, u, create_graph=True, allow_unused=True)
        dot = sum((piece * t).sum() for piece, t in zip(self._unflatten(v), jt_u) if t is not None)
        return torch.autograd.grad(dot, u)[0]

    def vjp_outputs(self, w: Tensor) -> Tensor:
        z = self._require_outputs()
        return _flatten(
            list(torch.autograd.grad(z, self.params, w, retain_graph=True, allow_unused=True)), self.params
        )

    @torch.enable_grad()
    def ggn(self, v: Tensor) -> Tensor:
        z = self._require_outputs()
        if self._loss_output_grad is None:
            self._loss_output_grad = torch.autograd.grad(self.loss, z, create_graph=True)[0]
        jv = self.jvp_outputs(v)
        h_jv = torch.autograd.grad(self._loss_output_grad, z, jv, retain_graph=True)[0]
        return self.vjp_outputs(h_jv)

    def _require_outputs(self) -> Tensor:
        if self.outputs is None:
            raise RuntimeError("Gauss–Newton products need a closure that returns (loss, outputs)")
        return self.outputs


class ClosureSolver(torch.optim.Optimizer):
    """Base of the closure-driven solvers (one param group, flat parameter vector, counted evaluations).

    Solver state (``self.state[first parameter]``, as torch's LBFGS keeps it): ``func_evals``
    (closure calls), ``n_iter`` (iterations), ``line_search_failures`` and ``line_search_failed``
    (did the last search fail — then the parameters were left at the best point it found).
    """

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(
                f"{type(self).__name__} doesn't support per-parameter options (parameter groups)"
            )
        self._params: list[Tensor] = self.param_groups[0]["params"]
        self._numel = sum(p.numel() for p in self._params)

    # -- bookkeeping ---------------------------------------------------------------------
    @property
    def group(self) -> dict[str, Any]:
        return self.param_groups[0]

    @property
    def solver_state(self) -> dict[str, Any]:
        state = self.state[self._params[0]]
        for key in ("func_evals", "n_iter", "line_search_failures"):
            state.setdefault(key, 0)
        state.setdefault("line_search_failed", False)
        return state

    def _require_closure(self, closure: Closure | None) -> Closure:
        if closure is None:
            raise RuntimeError(
                f"{type(self).__name__}.step() requires a closure that zeroes the gradients, computes the "
                "loss, calls loss.backward() and returns the loss (as torch.optim.LBFGS does)"
            )
        return closure

    # -- flat parameters -----------------------------------------------------------------
    def _flat_params(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self._params]).clone()

    @torch.no_grad()
    def _set_flat_params(self, x: Tensor) -> None:
        offset = 0
        for p in self._params:
            p.copy_(x[offset : offset + p.numel()].view_as(p))
            offset += p.numel()

    def _flat_grad(self) -> Tensor:
        return _flatten([p.grad for p in self._params], self._params)

    # -- evaluations ---------------------------------------------------------------------
    def _evaluate(self, closure: Closure) -> tuple[float, Tensor]:
        """Call the closure at the current parameters: ``(f, ∇f)`` as a float and a flat tensor."""
        with torch.enable_grad():
            loss, _ = split_closure_output(closure())
        self.solver_state["func_evals"] += 1
        return float(loss), self._flat_grad().clone()

    def _evaluate_graph(self, closure: Closure) -> ClosureGraph:
        """Call the closure keeping the gradient's graph, for curvature products."""
        graph = ClosureGraph(closure, self._params)
        self.solver_state["func_evals"] += 1
        return graph

    def _evaluate_at(self, closure: Closure, x: Tensor) -> tuple[float, Tensor]:
        self._set_flat_params(x)
        return self._evaluate(closure)


def check_hyper(
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    high: float = float("inf"),
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``ValueError`` naming the hyperparameter unless it is a finite number in the interval."""
    return check_number(name, value, low=low, high=high, low_open=low_open, high_open=high_open)


def check_choice(name: str, value: Any, allowed: tuple) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_int(name: str, value: Any, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer in [{low}, inf), got {value!r}")
    return value
