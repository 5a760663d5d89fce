"""Calling the user's closure: both closure styles, and a differentiable gradient without patching torch.

A closure either *returns* the loss (optionally ``(loss, outputs)``) and leaves the
differentiating to the solver, or is torch-style: it zeroes the gradients, calls
``loss.backward()`` and returns the loss. :func:`call_closure` accepts both:

* it runs the closure under :class:`_BackwardCapture`, a ``torch.overrides.TorchFunctionMode``
  that sees every ``Tensor.backward`` call the closure makes. Function modes are thread-local and
  this one is active only for the duration of the call, so other threads (and the closure's
  caller) are untouched;
* when the solver needs curvature (``create_graph=True``) the mode answers ``loss.backward()``
  with ``torch.autograd.grad(loss, params, create_graph=True)``: the gradient keeps its graph for
  Hessian-vector products, and the parameters' ``.grad`` get its detached value, as
  ``backward()`` would have given them (only the solver's parameters are filled);
* a closure that never calls ``backward`` is differentiated here with ``torch.autograd.grad``.

Only ``Tensor.backward`` is seen: a closure that calls ``torch.autograd.backward(loss)`` directly
gets plain gradients (no curvature) and must be written with ``loss.backward()`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

Closure = Callable[[], Any]


def split_closure_output(output: Any) -> tuple[Tensor, Tensor | None]:
    """A closure returns ``loss`` or ``(loss, outputs)``."""
    if isinstance(output, (tuple, list)):
        if len(output) != 2:
            raise ValueError(f"a closure returns loss or (loss, outputs), got a sequence of {len(output)}")
        return output[0], output[1]
    return output, None


class _BackwardCapture(TorchFunctionMode):
    """Counts the ``Tensor.backward`` calls made while active; with ``create_graph`` answers them itself.

    ``loss.backward(gradient, inputs=...)`` becomes
    ``g = torch.autograd.grad(loss, params, gradient, create_graph=True)``: ``g`` is accumulated
    (with its graph) in :attr:`grads`, and ``p.grad += g.detach()`` as ``backward`` would do.
    """

    def __init__(self, params: Sequence[Tensor], create_graph: bool) -> None:
        super().__init__()
        self.params = list(params)
        self.create_graph = create_graph
        self.calls = 0
        self.grads: list[Tensor | None] = [None] * len(self.params)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not Tensor.backward:
            return func(*args, **kwargs)
        self.calls += 1
        if not self.create_graph:
            return func(*args, **kwargs)
        return self._backward_keeping_graph(*args, **kwargs)

    def _backward_keeping_graph(
        self, tensor, gradient=None, retain_graph=None, create_graph=False, inputs=None
    ):
        # retain_graph / create_graph are overridden: the graph must outlive the call.
        wanted = range(len(self.params))
        if inputs is not None:
            chosen = [inputs] if isinstance(inputs, Tensor) else list(inputs)
            wanted = [i for i, p in enumerate(self.params) if any(p is c for c in chosen)]
        targets = [self.params[i] for i in wanted]
        grads = torch.autograd.grad(
            tensor, targets, gradient, retain_graph=True, create_graph=True, allow_unused=True
        )
        for i, g in zip(wanted, grads):
            if g is None:
                continue
            self.grads[i] = g if self.grads[i] is None else self.grads[i] + g
            p, value = self.params[i], g.detach()
            if p.grad is None:
                p.grad = value.clone()
            else:
                p.grad.add_(value)


@dataclass
class ClosureCall:
    """What one closure call gave: the loss, the outputs (if returned) and ``∇f`` per parameter.

    With ``create_graph`` the gradients carry their graph; ``called_backward`` tells the closure's style.
    """

    loss: Tensor
    outputs: Tensor | None
    grads: list[Tensor | None]
    called_backward: bool


def call_closure(
    closure: Closure,
    params: Sequence[Tensor],
    *,
    create_graph: bool = False,
    calls_backward: bool | None = None,
) -> ClosureCall:
    """Call ``closure`` once and return its loss and gradient, whichever style it is written in.

    ``calls_backward`` is the closure's style when already known (from an earlier call this step):
    then a plain evaluation runs without the capturing mode, at no overhead.
    """
    params = list(params)
    with torch.enable_grad():
        if calls_backward is not None and not create_graph:
            loss, outputs = split_closure_output(closure())
            called = calls_backward
            captured = None
        else:
            with _BackwardCapture(params, create_graph) as capture:
                loss, outputs = split_closure_output(closure())
            called, captured = capture.calls > 0, capture.grads
        if called:
            grads = captured if create_graph else [p.grad for p in params]
        else:
            if not (isinstance(loss, Tensor) and loss.requires_grad):
                raise RuntimeError(
                    "the closure neither called loss.backward() nor returned a loss with an autograd graph "
                    "(did it compute the loss under torch.no_grad()?)"
                )
            grads = list(torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True))
    return ClosureCall(loss, outputs, grads, called)
