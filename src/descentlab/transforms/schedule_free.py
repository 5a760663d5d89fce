"""Schedule-free learning (Defazio et al. 2024, "The road less scheduled").

No learning-rate schedule: the iterate that is evaluated is an *average* ``x`` of a base
sequence ``z`` of plain steps, and the gradient is taken at an interpolation ``y`` of the two.
The averaging weights play the role of the schedule; only a warm-up remains.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_int, check_number
from .adam import check_betas
from .base import Context, Transform


class ScaleByDebiasedRms(Transform):
    """``u ← g/(√(v/(1 − β₂ᵏ)) + ε)``, ``v ← β₂·v + (1 − β₂)·g²`` — Adam's denominator alone
    (schedule-free AdamW's; β₂ = ``betas[1]``), with k the group's step count ``k`` that
    :class:`ScheduleFree` keeps (so that it survives a checkpoint of the authors' format,
    which has no per-parameter step). State: ``exp_avg_sq``."""

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "k": 0}
    state_keys = ("exp_avg_sq",)
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_betas(hp)
        check_number("eps", hp["eps"], low=0.0, low_open=True)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"exp_avg_sq": torch.zeros_like(param)}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        return {"bias2": 1 - hp["betas"][1] ** max(hp["k"], 1)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta2 = ctx.hp["betas"][1]
        v = state["exp_avg_sq"]
        v.mul_(beta2).addcmul_(u, u, value=1 - beta2)
        denom = v.div(ctx.coef["bias2"]).sqrt_().add_(ctx.hp["eps"])
        return torch.div(u, denom, out=denom)


class ScheduleFree(Transform):
    """Schedule-free averaging of a base sequence of steps (Defazio et al. 2024, Algorithm 1)::

        z_{k+1} = z_k − γ_k·u_k                          base sequence (u: the step direction)
        x_{k+1} = (1 − c_{k+1})·x_k + c_{k+1}·z_{k+1}     the average (what to evaluate)
        y_{k+1} = (1 − β)·z_{k+1} + β·x_{k+1}             where the next gradient is taken
        c_{k+1} = w_k / Σ_{i≤k} w_i,   w_k = k^r·(max_{i≤k} γ_i)^p

    with γ_k = η·min(1, k/warm-up) (``lr``, ``warmup_steps``), ``r`` and ``p`` =
    ``weight_lr_power``. The model's parameters hold y during training; x is not stored but
    recovered from y and z (``x = (y − (1 − β)·z)/β``, the optimizer's ``eval()``). As in
    the authors' code, the step is written on y directly::

        y ← y − [c·(y − z) + γ·(1 − β·(1 − c))·u],     z ← z − γ·u

    Includes its step size: nothing may follow it. β is ``momentum``, or ``betas[0]`` when
    built with ``beta="betas"`` (schedule-free AdamW). The group holds the averaging's
    running scalars under the authors' names — ``k``, ``weight_sum``, ``lr_max``,
    ``scheduled_lr``, ``train_mode`` — advanced once per step by :meth:`before_step`
    (an :class:`~descentlab.optim._extended.ExtendedChainOptimizer` calls it).
    State: ``z``.
    """

    defaults = {
        "lr": 1.0, "momentum": 0.9, "warmup_steps": 0, "r": 0.0, "weight_lr_power": 2.0,
        "k": 0, "train_mode": True, "weight_sum": 0.0, "lr_max": -1.0, "scheduled_lr": 0.0,
    }
    state_keys = ("z",)
    state_depends_on = ()
    options = ("beta",)

    def __init__(self, beta: str = "momentum", **defaults: Any) -> None:
        if beta not in ("momentum", "betas"):
            raise ValueError(f"beta must be 'momentum' or 'betas', got {beta!r}")
        self.beta = beta
        if beta == "betas":  # read β from betas[0]: no ``momentum`` key
            own = {k: v for k, v in type(self).defaults.items() if k != "momentum"}
            own["betas"] = (0.9, 0.999)
            unknown = set(defaults) - set(own)
            if unknown:
                raise TypeError(f"ScheduleFree got unknown hyperparameter(s) {sorted(unknown)}")
            self.defaults = {**own, **defaults}
            self.validate(self.defaults)
        else:
            super().__init__(**defaults)

    def interpolation(self, hp: Mapping[str, Any]) -> float:
        """β, the weight of the average x in y."""
        return hp["betas"][0] if self.beta == "betas" else hp["momentum"]

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("lr", hp["lr"], low=0.0)
        if self.beta == "betas":
            check_betas(hp)
            if hp["betas"][0] == 0:
                raise ValueError("betas[0] must be in (0, 1) for schedule-free averaging, got 0.0")
        else:
            check_number("momentum", hp["momentum"], low=0.0, high=1.0, low_open=True, high_open=True)
        check_int("warmup_steps", hp["warmup_steps"], low=0)
        check_number("r", hp["r"], low=0.0)
        check_number("weight_lr_power", hp["weight_lr_power"], low=0.0)
        check_bool("train_mode", hp["train_mode"])

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"z": param.clone()}

    def before_step(self, param_groups: Sequence[MutableMapping[str, Any]], state: Mapping) -> bool:
        """Advance every group's averaging scalars: ``k``, γ_k, ``lr_max`` and ``weight_sum``."""
        for group in param_groups:
            if not group["train_mode"]:
                raise RuntimeError(
                    "schedule-free optimizer: step() in eval mode; call optimizer.train() before "
                    "training and optimizer.eval() before evaluating or saving a checkpoint"
                )
            k, warmup = group["k"], group["warmup_steps"]
            lr = group["lr"] * ((k + 1) / warmup if k < warmup else 1.0)
            group["scheduled_lr"] = lr
            group["lr_max"] = lr_max = max(lr, group["lr_max"])
            weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
            group["weight_sum"] = group["weight_sum"] + weight
            group["k"] = k + 1
        return True

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        weight = (hp["k"] ** hp["r"]) * (hp["lr_max"] ** hp["weight_lr_power"])
        weight_sum = hp["weight_sum"]
        c = weight / weight_sum if weight_sum else 0.0
        lr = hp["scheduled_lr"]
        return {"c": c, "lr": lr, "y_lr": lr * (1 - self.interpolation(hp) * (1 - c))}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        # products, not ``alpha=``: a compiled step keeps these per-step scalars as inputs
        coef, z = ctx.coef, state["z"]
        step = torch.sub(ctx.param, z).mul_(coef["c"]).add_(u * coef["y_lr"])
        z.sub_(u * coef["lr"])
        return step

    @staticmethod
    def to_eval(y: Tensor, z: Tensor, beta: float) -> None:
        """``y ← x = y + (1 − 1/β)(z − y)`` in place (the authors' ``eval()``)."""
        y.lerp_(z, 1 - 1 / beta)

    @staticmethod
    def to_train(x: Tensor, z: Tensor, beta: float) -> None:
        """``x ← y = x + (1 − β)(z − x)`` in place (the authors' ``train()``)."""
        x.lerp_(z, 1 - beta)
