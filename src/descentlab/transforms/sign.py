"""Sign-based rules: Rprop (step sizes adapted by sign agreement) and Lion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_number, check_pair
from .adam import check_betas
from .base import Context, Transform


class ScaleByRprop(Transform):
    """Rprop (Riedmiller & Braun 1993; notes file 000): only the sign of the gradient counts::

        if g_k·g_{k−1} > 0:  Δ_k = min(Δ_{k−1}·η₊, Δ_max)
        if g_k·g_{k−1} < 0:  Δ_k = max(Δ_{k−1}·η₋, Δ_min),  and g_k is taken as 0
        otherwise:           Δ_k = Δ_{k−1}
        s_k = sign(g_k)·Δ_k

    Includes its own step sizes (initialised to ``lr``): do not add a learning-rate
    scaling after it. Works with full batches; the notes warn it fails on mini-batches.
    State: ``prev`` and ``step_size`` (torch's names).
    """

    defaults = {"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50.0)}
    state_keys = ("prev", "step_size")
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("lr", hp["lr"], low=0.0)
        eta_minus, eta_plus = check_pair("etas", hp["etas"], "eta_minus", "eta_plus")
        check_number("etas[0] (eta_minus)", eta_minus, low=0.0, high=1.0, low_open=True, high_open=True)
        check_number("etas[1] (eta_plus)", eta_plus, low=1.0, low_open=True)
        smallest, largest = check_pair("step_sizes", hp["step_sizes"], "min", "max")
        lo = check_number("step_sizes[0] (minimum step)", smallest, low=0.0)
        check_number("step_sizes[1] (maximum step)", largest, low=lo)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"prev": torch.zeros_like(param), "step_size": torch.full_like(param, hp["lr"])}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        eta_minus, eta_plus = ctx.hp["etas"]
        step_min, step_max = ctx.hp["step_sizes"]
        prev, step_size = state["prev"], state["step_size"]
        agreement = (u * prev).sign_()
        # The 0-d ``one`` makes the factors take the updates' dtype: with Python scalars only,
        # torch.where would round η₋, η₊ to the default dtype (float32) first.
        one = agreement.new_ones(())
        factor = torch.where(agreement > 0, eta_plus, torch.where(agreement < 0, eta_minus, one))
        step_size.mul_(factor.to(step_size.dtype)).clamp_(step_min, step_max)
        g = torch.where(agreement < 0, 0.0, u)  # after a sign change, pause this coordinate
        prev.copy_(g)
        return g.sign_().mul_(step_size)


class ScaleByLion(Transform):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms")::

        c_k = β₁·m_{k−1} + (1 − β₁)·g_k
        s_k = sign(c_k)
        m_k = β₂·m_{k−1} + (1 − β₂)·g_k

    followed by decoupled weight decay and ``w ← w − η(s_k + λw)``. State: ``exp_avg``.
    """

    defaults = {"betas": (0.9, 0.99)}
    state_keys = ("exp_avg",)
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"exp_avg": torch.zeros_like(param)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        m = state["exp_avg"]
        step = torch.lerp(m, u, 1 - beta1).sign_()
        m.lerp_(u, 1 - beta2)
        return step
