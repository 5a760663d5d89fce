"""Momentum in the notes' forms: velocity, heavy ball, Nesterov (reformulated and look-ahead)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_number
from .base import Context, Transform, overwrite_


class Momentum(Transform):
    """Velocity form of momentum, with dampening and torch's Nesterov reformulation.

    Notes file 000 (velocity / "SGD momentum" form), with ``p`` the velocity::

        p_{k+1} = β·p_k + (1 − d)·u_k          (p_1 = u_1, as torch.optim.SGD)
        s_k     = p_{k+1}                       plain momentum
        s_k     = u_k + β·p_{k+1}               Nesterov, reformulated (Sutskever 2013 / torch)

    Followed by :class:`ScaleByLearningRate`, ``w_{k+1} = w_k − η·s_k``. With ``β = 0``
    this is plain gradient descent. The reformulated Nesterov step equals the look-ahead
    form (:class:`NesterovLookahead`) under the change of variables ``θ = w − βp``.
    State: ``momentum_buffer`` (torch's name).
    """

    defaults = {"momentum": 0.0, "dampening": 0.0, "nesterov": False}
    state_keys = ("momentum_buffer",)
    state_depends_on = ("momentum",)

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("momentum", hp["momentum"], low=0.0, high=1.0, high_open=True)
        check_number("dampening", hp["dampening"], low=0.0, high=1.0)
        check_bool("nesterov", hp["nesterov"])
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(
                "nesterov=True requires momentum in (0, 1) and dampening = 0, got "
                f"momentum={hp['momentum']}, dampening={hp['dampening']}"
            )

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        # Like torch, no buffer (and no memory) while momentum is 0.
        return {"momentum_buffer": torch.zeros_like(param)} if hp["momentum"] != 0 else {}

    def is_identity(self, hp: Mapping[str, Any]) -> bool:
        return hp["momentum"] == 0

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        # p_1 = u_1 written as 0·p + 1·u: no branch on the step, so a compiled step has one graph
        first = step == 1
        return {"keep": 0.0 if first else hp["momentum"], "new": 1.0 if first else 1.0 - hp["dampening"]}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta = ctx.hp["momentum"]
        if beta == 0:
            return u
        if "momentum_buffer" not in state:
            raise RuntimeError(
                "momentum was 0 when this optimizer's state was created, so it has no "
                "momentum_buffer; create the optimizer with the momentum you will use"
            )
        p = state["momentum_buffer"]
        p.mul_(ctx.coef["keep"]).add_(u, alpha=ctx.coef["new"])
        return u + beta * p if ctx.hp["nesterov"] else p


class HeavyBall(Transform):
    """Polyak's stochastic heavy-ball method, in the notes' one-line form (file 000)::

        w_{k+1} = w_k − γ·∇L(w_k) + β·(w_k − w_{k−1})

    so the step is ``s = γ·u − β·(w_k − w_{k−1})``. It includes the learning rate ``γ``
    (``lr``): do not follow it with :class:`ScaleByLearningRate`. Equivalent to
    :class:`Momentum` + learning rate for the same ``β`` and ``γ = η``.
    State: ``previous_param`` (``w_{k−1}``; equal to ``w_0`` before the first step).
    """

    defaults = {"lr": 1e-3, "momentum": 0.9}
    state_keys = ("previous_param",)
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        _check_lr_and_momentum(hp)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"previous_param": param.detach().clone()}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        w, w_prev = ctx.param, state["previous_param"]
        step = ctx.hp["lr"] * u - ctx.hp["momentum"] * (w - w_prev)
        overwrite_(w_prev, w)
        return step


class NesterovLookahead(Transform):
    """Nesterov's accelerated gradient in Sutskever's look-ahead form (notes file 000)::

        ŵ_k     = w_k − β·p_k
        p_{k+1} = β·p_k + η·∇L(ŵ_k)
        w_{k+1} = w_k − p_{k+1}

    The gradient must be taken at the look-ahead point ``ŵ``, so the optimizer keeps the
    *stored* parameters at ``ŵ`` and the step between two look-ahead points is
    ``ŵ_k − ŵ_{k+1} = (1 + β)·p_{k+1} − β·p_k``. The true iterate is
    ``w = ŵ + β·p`` (see :meth:`true_params`). Includes the learning rate η.
    State: ``velocity`` (``p``).
    """

    defaults = {"lr": 1e-3, "momentum": 0.9}
    state_keys = ("velocity",)
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        _check_lr_and_momentum(hp)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"velocity": torch.zeros_like(param)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta, p = ctx.hp["momentum"], state["velocity"]
        p_old = p.clone()
        p.mul_(beta).add_(ctx.hp["lr"] * u)
        return (1 + beta) * p - beta * p_old

    @staticmethod
    def true_params(lookahead_param: Tensor, state: Mapping[str, Tensor], beta: float) -> Tensor:
        """``w = ŵ + β·p``: the iterate of the look-ahead form behind the stored ``ŵ``."""
        return lookahead_param + beta * state["velocity"]


def _check_lr_and_momentum(hp: Mapping[str, Any]) -> None:
    """The two hyperparameters of the forms that include their learning rate."""
    check_number("lr", hp["lr"], low=0.0)
    check_number("momentum", hp["momentum"], low=0.0, high=1.0, high_open=True)
