"""Local adaptive gains: the delta-bar-delta rule of the notes (file 000)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_number, check_pair
from .base import Context, Transform


class ScaleByLocalGains(Transform):
    """Separate adaptive gains per weight (Jacobs 1988; Hinton lecture 6d; notes 000)::

        g_ij(t) = g_ij(t−1) + δ          if ∂E/∂w_ij(t) · ∂E/∂w_ij(t−1) > 0   (additive increase)
        g_ij(t) = g_ij(t−1) · (1 − δ)    otherwise                           (multiplicative decrease)
        g_ij(t) = clip(g_ij(t), lo, hi)                                      (bounded gains)
        s_ij    = g_ij(t) · ∂E/∂w_ij(t)

    Gains start at 1 and are left unchanged at the first step (there is no previous
    gradient to compare with). The notes suggest δ = 0.05 and bounds [0.1, 10].
    State: ``gain`` and ``prev_grad``.
    """

    defaults = {"delta": 0.05, "gain_bounds": (0.1, 10.0)}
    state_keys = ("gain", "prev_grad")
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("delta", hp["delta"], low=0.0, high=1.0, low_open=True, high_open=True)
        lo, hi = check_pair("gain_bounds", hp["gain_bounds"], "lo", "hi")
        check_number("gain_bounds[0] (lo)", lo, low=0.0, high=1.0, low_open=True)
        check_number("gain_bounds[1] (hi)", hi, low=1.0)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"gain": torch.ones_like(param), "prev_grad": torch.zeros_like(param)}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        # δ = 0 at the first step (no previous gradient): gains stay at 1 with no branch on the step
        return {"delta": hp["delta"] if step > 1 else 0.0}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        delta = ctx.coef["delta"]
        lo, hi = ctx.hp["gain_bounds"]
        gain, prev = state["gain"], state["prev_grad"]
        persists = (u * prev) > 0
        gain.copy_(torch.where(persists, gain + delta, gain * (1 - delta))).clamp_(lo, hi)
        prev.copy_(u)
        return gain * u
