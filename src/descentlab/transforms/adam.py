"""Adam and its relatives: bias-corrected moments, AMSGrad, Adamax (L∞), NAdam."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_number, check_pair, check_unit_interval
from .base import Context, Deferred, Transform


def check_betas(hp: Mapping[str, Any]) -> tuple[float, float]:
    beta1, beta2 = check_pair("betas", hp["betas"], "beta1 in [0, 1)", "beta2 in [0, 1)")
    return check_unit_interval("betas[0]", beta1), check_unit_interval("betas[1]", beta2)


class ScaleByAdam(Transform):
    """Adam's moments with bias correction (Kingma & Ba 2015; notes 001, 003, 004)::

        m_k = β₁·m_{k−1} + (1 − β₁)·g_k
        v_k = β₂·v_{k−1} + (1 − β₂)·g_k²
        v̂_k = max(v̂_{k−1}, v_k)                         (amsgrad only)
        s_k = m_k/(1 − β₁ᵏ) / (√(v_k/(1 − β₂ᵏ)) + ε)      standard form
        s_k = b_k · m_k / (√v_k + ε),  b_k = √(1 − β₂ᵏ)/(1 − β₁ᵏ)   "efficient" form (file 001)

    The efficient form moves ε inside the correction (it equals the standard form with
    ``ε̂ = ε·√(1 − β₂ᵏ)``), saving one pass. Followed by ``w ← w − η·s``.
    State: ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad) — torch's names.
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False}
    state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    state_depends_on = ("amsgrad",)
    options = ("efficient",)
    needs_step = True

    def __init__(self, efficient: bool = False, **defaults: Any) -> None:
        self.efficient = check_bool("efficient", efficient)
        super().__init__(**defaults)

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        # ε > 0 in both forms: with ε = 0 a coordinate whose gradients are all 0 gives 0/0.
        check_number("eps", hp["eps"], low=0.0, low_open=True)
        check_bool("amsgrad", hp["amsgrad"])

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        state = {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
        if hp["amsgrad"]:
            state["max_exp_avg_sq"] = torch.zeros_like(param)
        return state

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        beta1, beta2 = hp["betas"]
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        return {"bias1": bias1, "bias1_over_sqrt_bias2": bias1 / math.sqrt(bias2),
                "b_k": math.sqrt(bias2) / bias1}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        eps, c = ctx.hp["eps"], ctx.coef
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(u, 1 - beta1)
        v.mul_(beta2).addcmul_(u, u, value=1 - beta2)
        if ctx.hp["amsgrad"]:
            torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        if self.efficient:
            denom = v.sqrt().add_(eps)
            return Deferred.quotient(m, denom, c["b_k"], scratch=True)
        # m̂/(√v̂ + ε) written as m/((1 − β₁ᵏ)(√v/√(1 − β₂ᵏ) + ε)): one temporary, four passes
        denom = v.sqrt().mul_(c["bias1_over_sqrt_bias2"]).add_(eps * c["bias1"])
        return Deferred.quotient(m, denom, scratch=True)


class ScaleByAdamax(Transform):
    """Adamax: Adam with the L∞ norm in place of L2 (Kingma & Ba 2015, §7; notes 004)::

        m_k = β₁·m_{k−1} + (1 − β₁)·g_k
        u_k = max(β₂·u_{k−1}, |g_k| + ε)
        s_k = m_k / ((1 − β₁ᵏ)·u_k)

    State: ``exp_avg``, ``exp_inf`` (torch's names).
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8}
    state_keys = ("exp_avg", "exp_inf")
    state_depends_on = ()
    needs_step = True

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_number("eps", hp["eps"], low=0.0, low_open=True)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"exp_avg": torch.zeros_like(param), "exp_inf": torch.zeros_like(param)}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        return {"inv_bias1": 1 / (1 - hp["betas"][0] ** step)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        m, u_inf = state["exp_avg"], state["exp_inf"]
        m.lerp_(u, 1 - beta1)
        torch.maximum(u_inf.mul_(beta2), u.abs().add_(ctx.hp["eps"]), out=u_inf)
        return Deferred.quotient(m, u_inf, ctx.coef["inv_bias1"])  # (u_inf is state: not scratch)


class ScaleByNAdam(Transform):
    """NAdam: Adam with Nesterov momentum (Dozat 2016), torch's momentum-decay schedule::

        μ_k    = β₁·(1 − ½·0.96^{k·ψ})          ψ = momentum_decay
        Π_k    = Π_{k−1}·μ_k                     (``mu_product``)
        m_k, v_k as in Adam
        s_k    = [ (1 − μ_k)/(1 − Π_k) · g_k + μ_{k+1}/(1 − Π_k·μ_{k+1}) · m_k ]
                 / (√(v_k/(1 − β₂ᵏ)) + ε)

    State: ``exp_avg``, ``exp_avg_sq`` and the scalar ``mu_product`` (torch's names).
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "momentum_decay": 4e-3}
    state_keys = ("exp_avg", "exp_avg_sq", "mu_product")
    state_depends_on = ()
    needs_step = True

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_number("eps", hp["eps"], low=0.0, low_open=True)
        check_number("momentum_decay", hp["momentum_decay"], low=0.0)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def init_scalars(self, hp: Mapping[str, Any]) -> dict[str, float]:
        return {"mu_product": 1.0}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = hp["betas"]
        psi = hp["momentum_decay"]
        # μ_k and μ_{k+1} meet the tensor Π_k, so they are 0-d float64 tensors (the doubles torch
        # computes with): a compiled step then never specialises on their changing values
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        return {
            "mu": torch.tensor(mu, dtype=torch.float64),
            "one_minus_mu": torch.tensor(1.0 - mu, dtype=torch.float64),  # (1 − μ in Python, as torch)
            "mu_next": torch.tensor(mu_next, dtype=torch.float64),
            "bias2": 1 - beta2**step,
        }

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        eps, mu, mu_next = ctx.hp["eps"], ctx.coef["mu"], ctx.coef["mu_next"]
        m, v, mu_product = state["exp_avg"], state["exp_avg_sq"], state["mu_product"]
        mu_product.mul_(mu.to(mu_product.dtype))  # in torch's scalar dtype, as torch does
        pi_k = mu_product.double()  # torch reads it back as a Python float (a double)
        m.lerp_(u, 1 - beta1)
        v.mul_(beta2).addcmul_(u, u, value=1 - beta2)
        denom = v.div(ctx.coef["bias2"]).sqrt_().add_(eps)
        grad_coef = (ctx.coef["one_minus_mu"] / (1.0 - pi_k)).to(u.dtype)
        momentum_coef = (mu_next / (1.0 - pi_k * mu_next)).to(u.dtype)
        return Deferred(((grad_coef, u, denom, False), (momentum_coef, m, denom, False)))
