"""Asynchronous SGD's two corrections for stale gradients, as transforms (notes 002).

In asynchronous SGD a worker reads the parameters ``w_read`` (version ``k − τ``), computes a
gradient there and pushes it while other workers have already moved the parameters to ``w_k``:
the gradient is ``τ`` updates out of date, "more severe the more workers there are" (notes 002).

Both transforms read what the engine's step context does not carry from the param group and the
transform's own state, which the parameter server writes before each step with
:func:`set_read_point` (the server, the simulator and the replay of :mod:`descentlab.distributed`
all use it):

* ``group["staleness"]`` — τ of the push being applied (a hyperparameter like ``lr``: read at every
  step, so the compiled path does not recompile when it changes);
* ``state[p]["read_param"]`` — ``w_read``, the parameters the gradient was computed at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..validation import check_number
from .base import Context, Transform

__all__ = ["ScaleByStaleness", "DelayCompensation", "set_read_point"]


class ScaleByStaleness(Transform):
    """Staleness-aware learning rate (Zhang, Gupta, Lian & Liu 2016, "Staleness-aware async-SGD")::

        s = u / max(τ, 1)          so that   w_{k+1} = w_k − (η/τ)·g(w_{k−τ})

    τ is ``group["staleness"]``, written by the server before each step (0 for a fresh gradient:
    then the rate is η unchanged). Put it last in a chain, after the learning rate, so that it
    scales the step whatever the rest of the chain (momentum, Adam) made of the gradient.
    """

    defaults = {"staleness": 0}

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("staleness", hp["staleness"], low=0.0)

    def scale_factor(self, ctx: Context) -> float:
        return 1.0 / max(float(ctx.hp["staleness"]), 1.0)

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        return u * self.scale_factor(ctx)


class DelayCompensation(Transform):
    """Delay-compensated gradient (Zheng et al. 2017, DC-ASGD)::

        g̃ = g + λ · g ⊙ g ⊙ (w_now − w_read)

    a first-order Taylor correction of the stale gradient ``g = ∇L(w_read)`` towards
    ``∇L(w_now)``, with the Hessian approximated by ``λ·g⊙g`` (the diagonal of the gradient's outer
    product). λ is ``group["delay_compensation"]``; ``w_read`` is the state ``read_param`` written by
    :func:`set_read_point` (initialised to the parameters, so a first, fresh gradient is unchanged).

    ``hessian_diagonal`` replaces ``λ·g⊙g`` by an exact curvature, ``hessian_diagonal(w_read)`` (the
    Hessian's diagonal of a separable objective, shaped like the parameter): then on a quadratic
    ``g̃ = ∇L(w_now)`` exactly — the reference the tests use. Put it first in a chain: it corrects
    the gradient itself.
    """

    defaults = {"delay_compensation": 0.04}
    state_keys = ("read_param",)
    state_depends_on = ()
    options = ("hessian_diagonal",)

    def __init__(self, hessian_diagonal: Callable[[Tensor], Tensor] | None = None, **defaults: Any) -> None:
        if hessian_diagonal is not None and not callable(hessian_diagonal):
            raise ValueError(
                f"hessian_diagonal must be None or a callable w -> diag H(w), got {hessian_diagonal!r}"
            )
        self.hessian_diagonal = hessian_diagonal
        super().__init__(**defaults)

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("delay_compensation", hp["delay_compensation"], low=0.0)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"read_param": param.detach().clone()}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        w_read = state["read_param"]
        delta = ctx.param - w_read
        if self.hessian_diagonal is not None:
            return u + self.hessian_diagonal(w_read) * delta
        return u + ctx.hp["delay_compensation"] * u * u * delta


def set_read_point(
    optimizer: torch.optim.Optimizer,
    staleness: int,
    read_params: Sequence[Tensor] | None = None,
) -> None:
    """Tell ``optimizer``'s staleness transforms about the push it is about to apply.

    Writes ``staleness`` (τ) into every param group that has the key, and, when ``read_params`` is
    given (one tensor per parameter of the optimizer, in param-group order), ``w_read`` into the
    ``read_param`` state of every parameter that has one. A parameter without state yet (before its
    first step) is initialised by :class:`DelayCompensation` to its current value, which is
    ``w_read`` for a first push (τ = 0).
    """
    check_number("staleness", staleness, low=0.0)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for group in optimizer.param_groups:
        if "staleness" in group:
            group["staleness"] = staleness
    if read_params is None:
        return
    read_params = list(read_params)
    if len(read_params) != len(params):
        raise ValueError(
            f"read_params must hold one tensor per parameter ({len(params)}), got {len(read_params)}"
        )
    for p, w in zip(params, read_params):
        target = optimizer.state.get(p, {}).get("read_param")
        if target is not None:
            target.copy_(w.reshape(target.shape))

