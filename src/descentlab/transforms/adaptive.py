"""Per-coordinate adaptive scalings: AdaGrad, RMSprop (plain and centred), AdaDelta."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_number, check_unit_interval
from .base import Context, Deferred, Transform


class ScaleByAdaGrad(Transform):
    """AdaGrad accumulation (Duchi et al. 2011; notes files 001, 003, 004)::

        t_k = t_{k−1} + g_k ⊙ g_k
        s_k = g_k / (√t_k + ε)

    ``t`` grows without bound, so the effective learning rate η/√t_k vanishes.
    State: ``sum`` (torch's name), initialised to ``initial_accumulator_value``.
    """

    defaults = {"eps": 1e-10, "initial_accumulator_value": 0.0}
    state_keys = ("sum",)
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("eps", hp["eps"], low=0.0, low_open=True)
        check_number("initial_accumulator_value", hp["initial_accumulator_value"], low=0.0)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"sum": torch.full_like(param, hp["initial_accumulator_value"])}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        t = state["sum"]
        t.addcmul_(u, u)
        denom = t.sqrt().add_(ctx.hp["eps"])
        return Deferred.quotient(u, denom, scratch=True)


class ScaleByRms(Transform):
    """RMSprop's division by a running root-mean-square (Hinton, lecture 6e; notes 000, 001)::

        v_k = α·v_{k−1} + (1 − α)·g_k²                 MeanSquare(w, t)
        ḡ_k = α·ḡ_{k−1} + (1 − α)·g_k                  (centred only)
        s_k = g_k / (√(v_k − ḡ_k²) + ε)                 (centred: divides by the std)
        s_k = g_k / (√v_k + ε)                          (plain)

    State: ``square_avg`` and, when centred, ``grad_avg`` (torch's names).
    """

    defaults = {"alpha": 0.99, "eps": 1e-8, "centered": False}
    state_keys = ("square_avg", "grad_avg")
    state_depends_on = ("centered",)

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_unit_interval("alpha", hp["alpha"])
        check_number("eps", hp["eps"], low=0.0, low_open=True)
        check_bool("centered", hp["centered"])

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        state = {"square_avg": torch.zeros_like(param)}
        if hp["centered"]:
            state["grad_avg"] = torch.zeros_like(param)
        return state

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        alpha, eps = ctx.hp["alpha"], ctx.hp["eps"]
        v = state["square_avg"]
        v.mul_(alpha).addcmul_(u, u, value=1 - alpha)
        if ctx.hp["centered"]:
            g_bar = state["grad_avg"]
            g_bar.lerp_(u, 1 - alpha)
            rms = v.addcmul(g_bar, g_bar, value=-1).sqrt_()
        else:
            rms = v.sqrt()
        rms.add_(eps)
        return Deferred.quotient(u, rms, scratch=True)


class ScaleByAdaDelta(Transform):
    """AdaDelta (Zeiler 2012; notes files 002, 004): the step's units match the weights'::

        E[g²]_k  = ρ·E[g²]_{k−1} + (1 − ρ)·g_k²
        Δ_k      = √(E[Δ²]_{k−1} + ε) / √(E[g²]_k + ε) · g_k
        E[Δ²]_k  = ρ·E[Δ²]_{k−1} + (1 − ρ)·Δ_k²

    followed by ``w ← w − η·Δ`` (torch's ``lr``, 1.0 in the paper).
    State: ``square_avg`` and ``acc_delta`` (torch's names).
    """

    defaults = {"rho": 0.9, "eps": 1e-6}
    state_keys = ("square_avg", "acc_delta")
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("rho", hp["rho"], low=0.0, high=1.0)
        check_number("eps", hp["eps"], low=0.0, low_open=True)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"square_avg": torch.zeros_like(param), "acc_delta": torch.zeros_like(param)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        rho, eps = ctx.hp["rho"], ctx.hp["eps"]
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).addcmul_(u, u, value=1 - rho)
        delta = (acc_delta + eps).sqrt_().div_((square_avg + eps).sqrt_()).mul_(u)
        acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        return delta
