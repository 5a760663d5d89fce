"""Layer-wise trust ratios for large batches: LAMB and LARS (You et al. 2017, 2020).

A very large batch allows a large learning rate, but one global rate is too large for some
layers and too small for others: the trust ratio rescales each parameter tensor's update
so that its size is proportional to the size of the weights, ``‖Δw‖ ≈ η·‖w‖``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_number
from .adam import check_betas
from .base import Context, Transform


class ScaleByUncorrectedAdam(Transform):
    """Adam's direction without bias correction (LAMB's, pytorch_optimizer's ``Lamb``)::

        m_k = β₁·m_{k−1} + (1 − β₁)·g_k,   v_k = β₂·v_{k−1} + (1 − β₂)·g_k²,   r_k = m_k/(√v_k + ε)

    Before a trust ratio the overall scale of r is irrelevant, so the bias corrections of
    :class:`~descentlab.transforms.ScaleByAdam` only matter through ε and the weight decay
    added to r. State: ``exp_avg``, ``exp_avg_sq``.
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-6}
    state_keys = ("exp_avg", "exp_avg_sq")
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_number("eps", hp["eps"], low=0.0, low_open=True)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(u, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(u, u, value=1 - beta2)
        denom = v.sqrt().add_(ctx.hp["eps"])
        return torch.div(m, denom, out=denom)


class ScaleByTrustRatio(Transform):
    """LAMB's layer-wise trust ratio (You et al. 2020, Algorithm 2), per parameter tensor::

        u ← φ(‖w‖)/(‖u‖ + ε) · u,      φ(z) = min(z, clamp_value)

    (the ratio is 1 when ‖w‖ = 0 or ‖u‖ = 0). Placed after Adam's direction plus the weight
    decay, ``u = r + λw``, and followed by ``w ← w − η·u``: every tensor moves by about
    ``η·φ(‖w‖)``. Needs each parameter on its own.
    """

    defaults = {"eps": 1e-6, "clamp_value": 10.0}
    state_depends_on = ()

    @property
    def elementwise(self) -> bool:
        return False

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("eps", hp["eps"], low=0.0, low_open=True)
        check_number("clamp_value", hp["clamp_value"], low=0.0, low_open=True)

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        weight_norm = torch.linalg.norm(ctx.param).clamp_(min=0, max=ctx.hp["clamp_value"])
        update_norm = torch.linalg.norm(u)
        if weight_norm == 0 or update_norm == 0:
            return u
        return u * (weight_norm / (update_norm + ctx.hp["eps"]))


class ScaleByLarsTrustRatio(Transform):
    """LARS's layer-wise trust ratio with its weight decay (You et al. 2017), for matrices and
    higher-dimensional tensors; vectors and scalars (biases, norm layers) pass unchanged::

        u ← τ · (g + λw),     τ = c·‖w‖/(‖g‖ + λ‖w‖)      (τ = 1 when ‖w‖ = 0 or the denominator is)

    ``c`` is ``trust_coefficient``, λ ``weight_decay``. Followed by momentum and ``w ← w − η·u``.
    Needs each parameter on its own.
    """

    defaults = {"weight_decay": 0.0, "trust_coefficient": 1e-3}
    state_depends_on = ()

    @property
    def elementwise(self) -> bool:
        return False

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("weight_decay", hp["weight_decay"], low=0.0)
        check_number("trust_coefficient", hp["trust_coefficient"], low=0.0)

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        if u.dim() <= 1:
            return u
        w, wd = ctx.param, ctx.hp["weight_decay"]
        param_norm, grad_norm = torch.linalg.norm(w), torch.linalg.norm(u)
        denominator = grad_norm + wd * param_norm
        one = torch.ones_like(param_norm)
        ratio = torch.where(
            param_norm > 0.0,
            torch.where(denominator > 0.0, ctx.hp["trust_coefficient"] * param_norm / denominator, one),
            one,
        )
        return u.add(w, alpha=wd).mul_(ratio)
