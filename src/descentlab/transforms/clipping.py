"""Gradient clipping as transforms: by value, by global norm, by per-parameter norm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .base import Context, Transform, check_number


class ClipByValue(Transform):
    """``u ← clamp(u, −c, c)`` elementwise (notes 002, "clipping by value")."""

    defaults = {"clip_value": 1.0}

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("clip_value", hp["clip_value"], low=0.0, low_open=True)

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        c = ctx.hp["clip_value"]
        return u.clamp(-c, c)


class ClipByGlobalNorm(Transform):
    """Clipping by norm (Pascanu et al. 2013; notes 002)::

        ‖u‖ = √(Σ_params ‖u_p‖²)                 over every parameter of the optimizer
        u  ← u · min(1, c / (‖u‖ + 1e-6))

    the same factor as ``torch.nn.utils.clip_grad_norm_``.
    """

    defaults = {"max_norm": 1.0}

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("max_norm", hp["max_norm"], low=0.0, low_open=True)

    def statistic(self, updates: list[Tensor], hp: Mapping[str, Any]) -> Tensor:
        norms = torch._foreach_norm(updates) if len(updates) > 1 else [updates[0].norm()]
        return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]).double())

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        total = ctx.stats[self]
        factor = torch.clamp(ctx.hp["max_norm"] / (total + 1e-6), max=1.0)
        return u * factor.to(u.dtype)


class ClipByParamNorm(Transform):
    """``u_p ← u_p · min(1, c / (‖u_p‖ + 1e-6))`` for each parameter tensor separately."""

    defaults = {"max_param_norm": 1.0}

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("max_param_norm", hp["max_param_norm"], low=0.0, low_open=True)

    @property
    def elementwise(self) -> bool:
        return False  # needs each parameter's own norm

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        factor = torch.clamp(ctx.hp["max_param_norm"] / (u.norm() + 1e-6), max=1.0)
        return u * factor
