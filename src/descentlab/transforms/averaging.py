"""Averaged SGD (Polyak & Juditsky 1992), with torch.optim.ASGD's step-size schedule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_number
from .base import Context, Transform, overwrite_


class AveragedSGD(Transform):
    """ASGD: a decaying-step SGD whose iterates are averaged (notes 002, Polyak averaging)::

        w_{k+1} = w_k − η_k·(g_k + λ·w_k)              λ = ``lambd``
        a_{k+1} = a_k + μ_k·(w_{k+1} − a_k)             the Polyak average (``ax``)
        η_{k+1} = η / (1 + λ·η·k)^α
        μ_{k+1} = 1 / max(1, k − t₀)                     averaging starts after t₀ steps

    Includes its step size (``eta``): do not add a learning-rate scaling after it.
    State: ``ax`` and the scalars ``eta``, ``mu`` (torch's names, in torch's scalar dtype).
    """

    defaults = {"lr": 1e-2, "lambd": 1e-4, "alpha": 0.75, "t0": 1e6}
    state_keys = ("ax", "eta", "mu")
    state_depends_on = ()
    needs_step = True

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("lr", hp["lr"], low=0.0)
        check_number("lambd", hp["lambd"], low=0.0)
        check_number("alpha", hp["alpha"], low=0.0)
        check_number("t0", hp["t0"], low=0.0)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"ax": param.new_zeros(param.shape)}

    def init_scalars(self, hp: Mapping[str, Any]) -> dict[str, float]:
        return {"eta": hp["lr"], "mu": 1.0}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        lr, lambd, alpha, t0 = (hp[k] for k in ("lr", "lambd", "alpha", "t0"))
        return {
            "next_eta": lr / ((1 + lambd * lr * step) ** alpha),
            "next_mu": 1 / max(1, step - t0),
            "averaging": step - 1 - t0 > 1,  # whether this step's μ (set last step) is below 1
        }

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        lambd = ctx.hp["lambd"]
        w, ax = ctx.param, state["ax"]
        eta, mu = state["eta"], state["mu"]  # 0-d tensors, in torch's scalar dtype
        step = torch.add(u, w, alpha=lambd).mul_(eta)
        if ctx.coef["averaging"]:
            ax.add_(torch.sub(w, step).sub_(ax).mul_(mu))
        else:  # μ = 1 until t₀: the "average" is the iterate itself, a ← w_{k+1}
            torch.sub(w, step, out=ax)
        overwrite_(eta, ctx.coef["next_eta"])
        overwrite_(mu, ctx.coef["next_mu"])
        return step
