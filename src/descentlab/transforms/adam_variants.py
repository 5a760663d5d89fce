"""Adam's relatives that change its second moment: RAdam (rectified), AdaBelief, Yogi."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_number
from .adam import check_betas
from .base import Context, Transform


class ScaleByRAdam(Transform):
    """RAdam: Adam whose adaptive step is switched on once its variance is tractable.

    Liu et al. 2020, "On the variance of the adaptive learning rate and beyond"; torch.optim.RAdam::

        m_k = β₁·m_{k−1} + (1 − β₁)·g_k,      v_k = β₂·v_{k−1} + (1 − β₂)·g_k²
        ρ_∞ = 2/(1 − β₂) − 1,                  ρ_k = ρ_∞ − 2k·β₂ᵏ/(1 − β₂ᵏ)
        r_k = √[(ρ_k − 4)(ρ_k − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_k)]
        s_k = m_k/(1 − β₁ᵏ) · r_k·√(1 − β₂ᵏ)/(√v_k + ε)     if ρ_k > 5
        s_k = m_k/(1 − β₁ᵏ)                                  otherwise (momentum SGD)

    Early on the second moment rests on too few gradients (ρ_k ≤ 5) and the rule is plain
    momentum; the rectification r_k then grows to 1. Followed by ``w ← w − η·s``.
    State: ``exp_avg``, ``exp_avg_sq`` (torch's names).
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8}
    state_keys = ("exp_avg", "exp_avg_sq")
    state_depends_on = ()
    needs_step = True

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_number("eps", hp["eps"], low=0.0, low_open=True)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        beta1, beta2 = hp["betas"]
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho = rho_inf - 2 * step * beta2**step / bias2
        rectified = rho > 5.0
        rect = 0.0
        if rectified:
            rect = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        # s = m·a/(√v + ε) + m·b: a = r√(1 − β₂ᵏ)/(1 − β₁ᵏ), b = 0 once rectified;
        # a = 0, b = 1/(1 − β₁ᵏ) before
        return {"adaptive": rect * math.sqrt(bias2) / bias1, "plain": 0.0 if rectified else 1 / bias1}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        m, v, c = state["exp_avg"], state["exp_avg_sq"], ctx.coef
        m.lerp_(u, 1 - beta1)
        v.mul_(beta2).addcmul_(u, u, value=1 - beta2)
        # one expression for both regimes (no branch on the step: one compiled graph)
        scale = v.sqrt().add_(ctx.hp["eps"]).reciprocal_().mul_(c["adaptive"]).add_(c["plain"])
        return scale.mul_(m)


class ScaleByAdaBelief(Transform):
    """AdaBelief: Adam whose denominator is the spread of the gradient around its mean.

    Zhuang et al. 2020, "AdaBelief optimizer: adapting stepsizes by the belief in observed
    gradients" (as pytorch_optimizer's ``AdaBelief``)::

        m_k = β₁·m_{k−1} + (1 − β₁)·g_k
        s_k = β₂·s_{k−1} + (1 − β₂)·(g_k − m_k)² + ε
        ŝ_k = max(ŝ_{k−1}, s_k)                                  (``ams_bound`` only)
        step_k = m_k/(1 − β₁ᵏ) / (√(s_k/(1 − β₂ᵏ)) + ε)

    A gradient close to its running mean ("believed") gets a large step, a surprising one a
    small step. Followed by ``w ← w − η·step``.
    State: ``exp_avg``, ``exp_avg_var``, ``max_exp_avg_var`` (``ams_bound``; pytorch_optimizer's names).
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-16, "ams_bound": False}
    state_keys = ("exp_avg", "exp_avg_var", "max_exp_avg_var")
    state_depends_on = ("ams_bound",)
    needs_step = True

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_number("eps", hp["eps"], low=0.0, low_open=True)
        check_bool("ams_bound", hp["ams_bound"])

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        state = {"exp_avg": torch.zeros_like(param), "exp_avg_var": torch.zeros_like(param)}
        if hp["ams_bound"]:
            state["max_exp_avg_var"] = torch.zeros_like(param)
        return state

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        beta1, beta2 = hp["betas"]
        return {"inv_bias1": 1 / (1 - beta1**step), "sqrt_bias2": math.sqrt(1 - beta2**step)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        eps, c = ctx.hp["eps"], ctx.coef
        m, s = state["exp_avg"], state["exp_avg_var"]
        m.lerp_(u, 1 - beta1)
        residual = u - m
        s.mul_(beta2).addcmul_(residual, residual, value=1 - beta2).add_(eps)
        if ctx.hp["ams_bound"]:
            torch.maximum(state["max_exp_avg_var"], s, out=state["max_exp_avg_var"])
            s = state["max_exp_avg_var"]
        denom = s.sqrt().div_(c["sqrt_bias2"]).add_(eps)
        return torch.div(m, denom, out=denom).mul_(c["inv_bias1"])


class ScaleByYogi(Transform):
    """Yogi: Adam with an additive, sign-controlled second moment.

    Zaheer et al. 2018, "Adaptive methods for nonconvex optimization" (as pytorch_optimizer's
    ``Yogi``, moments started at ``initial_accumulator``)::

        m_k = β₁·m_{k−1} + (1 − β₁)·g_k
        v_k = v_{k−1} − (1 − β₂)·sign(v_{k−1} − g_k²)·g_k²
        step_k = m_k/(1 − β₁ᵏ) / (√(v_k/(1 − β₂ᵏ)) + ε)

    Adam's ``v_k − v_{k−1} = (1 − β₂)(g_k² − v_{k−1})`` can shrink v by a large factor after one
    small gradient; Yogi's change has the size of g² only, so v (and the step) changes slowly.
    Followed by ``w ← w − η·step``. State: ``exp_avg``, ``exp_avg_sq``.
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-3, "initial_accumulator": 1e-6}
    state_keys = ("exp_avg", "exp_avg_sq")
    state_depends_on = ()
    needs_step = True

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_number("eps", hp["eps"], low=0.0, low_open=True)
        check_number("initial_accumulator", hp["initial_accumulator"], low=0.0)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        start = hp["initial_accumulator"]
        return {"exp_avg": torch.full_like(param, start), "exp_avg_sq": torch.full_like(param, start)}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        beta1, beta2 = hp["betas"]
        return {"inv_bias1": 1 / (1 - beta1**step), "sqrt_bias2": math.sqrt(1 - beta2**step)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        m, v, c = state["exp_avg"], state["exp_avg_sq"], ctx.coef
        m.lerp_(u, 1 - beta1)
        g2 = u * u
        v.addcmul_((v - g2).sign_(), g2, value=-(1 - beta2))
        denom = v.sqrt().div_(c["sqrt_bias2"]).add_(ctx.hp["eps"])
        return torch.div(m, denom, out=denom).mul_(c["inv_bias1"])
