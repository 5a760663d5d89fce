"""Adafactor: a second moment stored as row and column factors, a step relative to the weights."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_number, check_pair
from .base import Context, Transform


class ScaleByAdafactor(Transform):
    """Adafactor as torch.optim.Adafactor computes it (Shazeer & Stern 2018, with torch's ``d``
    clipping and ``β₂`` schedule), for a matrix ``G = g_k`` of shape ``[…, r, c]``::

        β̂₂ₖ  = 1 − k^{β₂ decay}                        (``beta2_decay`` ≤ 0)
        R_k  = β̂₂ₖ·R_{k−1} + (1 − β̂₂ₖ)·mean_c(G²)       row factor,    [… , r, 1]
        C_k  = β̂₂ₖ·C_{k−1} + (1 − β̂₂ₖ)·mean_r(G²)       column factor, [… , 1, c]
        V̂_k  = R_k·C_k / max(mean_r(R_k), ε₁)            rank-1 estimate of E[G²]
        U_k  = G / √max(V̂_k, ε₁²)
        ρ_k  = min(η, 1/√k),   α_k = max(ε₂, RMS(w))·ρ_k
        s_k  = α_k · U_k / max(1, RMS(U_k)/d)

    Vectors and scalars keep the full second moment ``v_k`` (``variance``) instead of R and C.
    Memory is r + c numbers per matrix instead of r·c. The step size is relative to the scale
    RMS(w) of the weights; ε₁ (``eps[0]``, ``None``: the dtype's machine epsilon) floors the
    second moment, ε₂ (``eps[1]``) the weight scale.

    Written as the chain's ``η``-relative step: this transform returns ``s_k/η`` (using
    ``ρ_k/η = min(1, 1/(η√k))``), so that ``AddDecoupledWeightDecay`` and ``ScaleByLearningRate``
    after it give torch's ``w ← w(1 − ηλ) − s_k``. Needs each parameter on its own.
    State: ``row_var`` and ``col_var`` (matrices) or ``variance`` (torch's names).
    """

    defaults = {"lr": 1e-2, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0}
    state_keys = ("row_var", "col_var", "variance")
    state_depends_on = ()
    needs_step = True

    @property
    def elementwise(self) -> bool:
        return False

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("lr", hp["lr"], low=0.0)
        check_number("beta2_decay", hp["beta2_decay"], high=0.0)
        eps1, eps2 = check_pair("eps", hp["eps"], "eps1 or None", "eps2")
        if eps1 is not None:
            check_number("eps[0] (eps1)", eps1, low=0.0)
        check_number("eps[1] (eps2)", eps2, low=0.0)
        check_number("d", hp["d"], low=1.0)

    def init_shaped_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        if param.dim() > 1:
            rows, cols = list(param.shape), list(param.shape)
            rows[-1], cols[-2] = 1, 1
            return {"row_var": param.new_zeros(rows), "col_var": param.new_zeros(cols)}
        return {"variance": torch.zeros_like(param)}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        lr = hp["lr"]
        reach = lr * math.sqrt(step)
        return {"new_weight": step ** hp["beta2_decay"], "rho_over_lr": 1.0 if reach <= 1.0 else 1.0 / reach}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        eps1, eps2 = ctx.hp["eps"]
        w, new = ctx.param, ctx.coef["new_weight"]
        if eps1 is None:
            eps1 = torch.finfo(w.dtype).eps
        if u.dim() > 1:
            row_var, col_var = state["row_var"], state["col_var"]
            row_var.lerp_(torch.norm(u, dim=-1, keepdim=True).square_().div_(u.size(-1)), new)
            col_var.lerp_(torch.norm(u, dim=-2, keepdim=True).square_().div_(u.size(-2)), new)
            estimate = row_var @ col_var
            estimate.div_(row_var.mean(dim=-2, keepdim=True).clamp_(min=eps1))
        else:
            variance = state["variance"]
            variance.lerp_(u * u, new)
            estimate = variance.clone()
        step = estimate.clamp_(min=eps1 * eps1).rsqrt_().mul_(u)
        numel_sqrt = u.numel() ** 0.5
        clip = max(1.0, step.norm(2).item() / (numel_sqrt * ctx.hp["d"]))
        scale = max(eps2, w.norm(2).item() / numel_sqrt) * ctx.coef["rho_over_lr"]
        return step.mul_(scale / clip)
