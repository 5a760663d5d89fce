"""Learning-rate-free steps: Prodigy's estimate of the distance to the solution (D-adaptation).

Mishchenko & Defazio 2023, "Prodigy: an expeditiously adaptive parameter-free learner". The
step of Adam is scaled by an estimate d of ``D = ‖w_0 − w*‖``, which grows from a tiny d₀ as
the run shows how far the weights have to travel; ``lr`` stays a multiplier, left at 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_int, check_number, check_unit_interval
from .adam import check_betas
from .base import Context, Transform


def _bias_correction(hp: Mapping[str, Any], k: int) -> float:
    """Prodigy's optional Adam correction √(1 − β₂ᵏ)/(1 − β₁ᵏ) for step k (1-based)."""
    if not hp["use_bias_correction"]:
        return 1.0
    beta1, beta2 = hp["betas"]
    return math.sqrt(1 - beta2**k) / (1 - beta1**k)


class EstimateDistance(Transform):
    """Prodigy's D estimate, once per step over every parameter (with ``dλ_k = d_k·η·b_k``, b_k
    the optional bias correction, and g the gradient, plus λw with coupled weight decay)::

        r_k   = β₃·r_{k−1} + (d_k/d₀)·dλ_k·⟨g_k, w_0 − w_k⟩          (``d_numerator``)
        s_k   = β₃·s_{k−1} + (d_k/d₀)·dλ_k·g_k                     (``d_k`` instead of dλ_k with
                                                                    ``safeguard_warmup``)
        d̂     = d_coef · r_k / ‖s_k‖₁
        d_{k+1} = min(max(d_max, d̂), growth_rate·d_k),   d_max ← max(d_max, d̂)

    (on the first increase, ``d ← max(d, d̂)`` first). β₃ = ``beta3``, √β₂ by default. The
    sums run over every parameter of every group (``slice_p > 1``: over every slice_p-th
    entry only). The group keeps the authors' running scalars — ``d``, ``d_max``,
    ``d_numerator``, ``d_denom``, ``d_hat``, ``k`` — and ``d_prev``, the d the step's moments
    use. Its :meth:`update` is the identity. Shaped state: ``s`` and ``p0`` (w_0), flattened.
    """

    defaults = {
        "lr": 1.0, "betas": (0.9, 0.999), "beta3": None, "weight_decay": 0.0, "decouple": True,
        "use_bias_correction": False, "safeguard_warmup": False, "d0": 1e-6, "d": 1e-6, "d_prev": 1e-6,
        "d_max": 1e-6, "d_numerator": 0.0, "d_coef": 1.0, "growth_rate": math.inf, "k": 0,
        "fsdp_in_use": False, "slice_p": 1,
    }
    state_keys = ("s", "p0")
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("lr", hp["lr"], low=0.0)
        check_betas(hp)
        if hp["beta3"] is not None:
            check_unit_interval("beta3", hp["beta3"])
        check_number("weight_decay", hp["weight_decay"], low=0.0)
        for flag in ("decouple", "use_bias_correction", "safeguard_warmup", "fsdp_in_use"):
            check_bool(flag, hp[flag])
        if hp["fsdp_in_use"]:
            raise ValueError("fsdp_in_use=True is not supported: descentlab's Prodigy runs in one process")
        check_number("d0", hp["d0"], low=0.0, low_open=True)
        check_number("d_coef", hp["d_coef"], low=0.0, low_open=True)
        growth = hp["growth_rate"]
        if not (isinstance(growth, (int, float)) and not isinstance(growth, bool) and growth == math.inf):
            check_number("growth_rate", growth, low=1.0)
        check_int("slice_p", hp["slice_p"], low=1)

    def init_shaped_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        sliced = param.flatten()[:: hp["slice_p"]]
        # as the authors: a parameter that starts at 0 keeps a 0-d zero as w_0
        p0 = sliced.clone() if param.any() else torch.tensor(0, device=param.device, dtype=param.dtype)
        return {"s": torch.zeros_like(sliced), "p0": p0}

    def before_step(self, param_groups: Sequence[MutableMapping[str, Any]], state: Mapping) -> bool:
        first = param_groups[0]
        beta1, beta2 = first["betas"]
        beta3 = math.sqrt(beta2) if first["beta3"] is None else first["beta3"]
        d, d_max, k = first["d"], first["d_max"], first["k"]
        lr = max(group["lr"] for group in param_groups)
        dlr = d * lr * _bias_correction(first, k + 1)
        d_numerator = first["d_numerator"] * beta3
        delta_numerator, d_denom = 0.0, 0.0
        for group in param_groups:
            if group["lr"] not in (lr, 0.0):
                raise ValueError(
                    f"Prodigy: each group's lr must be the largest lr ({lr}) or 0 (frozen), got {group['lr']}"
                )
            if group["lr"] == 0.0:
                continue
            d0, slice_p = group["d0"], group["slice_p"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] != 0 and not group["decouple"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                s, p0 = state[p]["s"], state[p]["p0"]
                sliced = grad.flatten()[::slice_p]
                delta_numerator += (d / d0) * dlr * torch.dot(sliced, p0 - p.flatten()[::slice_p]).item()
                s.mul_(beta3).add_(sliced, alpha=(d / d0) * (d if group["safeguard_warmup"] else dlr))
                d_denom += s.abs().sum().item()
        if d_denom == 0:  # no progress yet (every gradient so far is 0): no step, as the authors'
            return False
        d_prev = d
        numerator = d_numerator + delta_numerator
        d_hat = first["d_coef"] * numerator / d_denom
        if d == param_groups[-1]["d0"]:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * first["growth_rate"])
        for group in param_groups:
            group.update(d_numerator=numerator, d_denom=d_denom, d_prev=d_prev, d=d, d_max=d_max,
                         d_hat=d_hat, k=group["k"] + 1)
        return True

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        return u


class ScaleByProdigyAdam(Transform):
    """Adam's direction with moments weighted by the D estimate (Prodigy, Algorithm 4)::

        m_k = β₁·m_{k−1} + d_k·(1 − β₁)·g_k,    v_k = β₂·v_{k−1} + d_k²·(1 − β₂)·g_k²
        u_k = m_k/(√v_k + d_{k+1}·ε)            (β₁ = 0: u_k = d_{k+1}·g_k/(√v_k + d_{k+1}·ε))

    with d_k the estimate before this step's update (``d_prev``) and d_{k+1} the new one
    (``d``), both from :class:`EstimateDistance`. State: ``exp_avg`` (β₁ > 0), ``exp_avg_sq``.
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "d": 1e-6, "d_prev": 1e-6}
    state_keys = ("exp_avg", "exp_avg_sq")
    state_depends_on = ("betas",)

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_number("eps", hp["eps"], low=0.0, low_open=True)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        state = {"exp_avg_sq": torch.zeros_like(param)}
        if hp["betas"][0] > 0:
            state["exp_avg"] = torch.zeros_like(param)
        return state

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        beta1, beta2 = hp["betas"]
        d, d_prev = hp["d"], hp["d_prev"]
        return {"m_weight": d_prev * (1 - beta1), "v_weight": d_prev * d_prev * (1 - beta2),
                "eps": d * hp["eps"], "d": d}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        # products, not ``alpha=``/``value=``: a compiled step keeps the d-dependent weights as inputs
        c, v = ctx.coef, state["exp_avg_sq"]
        v.mul_(beta2).add_(u * u * c["v_weight"])
        denom = v.sqrt().add_(c["eps"])
        if beta1 > 0:
            m = state["exp_avg"]
            m.mul_(beta1).add_(u * c["m_weight"])
            return torch.div(m, denom, out=denom)
        return torch.div(u, denom, out=denom).mul_(c["d"])


class ScaleByDistance(Transform):
    """``u ← d_k·b_k·u``: Prodigy's step size before the learning-rate multiplier, with d_k the
    D estimate this step's moments used (``d_prev``) and b_k the optional bias correction."""

    defaults = {"d_prev": 1e-6, "k": 0, "betas": (0.9, 0.999), "use_bias_correction": False}
    state_depends_on = ()

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        return {"scale": hp["d_prev"] * _bias_correction(hp, hp["k"])}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        return u * ctx.coef["scale"]
