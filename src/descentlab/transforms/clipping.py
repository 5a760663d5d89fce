"""Gradient clipping as transforms: by value, by global norm, by per-parameter norm.

Put clipping first in a chain, so that it sees the raw gradients. With
``error_if_nonfinite=True`` (torch's name), a NaN/inf norm raises
:class:`~descentlab.validation.NonFiniteError` (a ``FloatingPointError``)
before any update is made; to *skip* such steps instead, build the optimizer with
``nonfinite="skip"`` (:class:`~descentlab.optim.ChainOptimizer`), which checks the gradients
before the chain runs. For plain training loops see :mod:`descentlab.clipping`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import NonFiniteError, check_bool, check_number
from .base import Context, Transform


def _check_finite(norm: Tensor, hp: Mapping[str, Any], what: str) -> None:
    if hp["error_if_nonfinite"] and not bool(torch.isfinite(norm).all()):
        raise NonFiniteError(
            f"{what}: the gradient norm is not finite ({norm.max().item()}); "
            "error_if_nonfinite=True stops here (use nonfinite='skip' on the optimizer to skip)"
        )


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

    defaults = {"max_norm": 1.0, "error_if_nonfinite": False}

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("max_norm", hp["max_norm"], low=0.0, low_open=True)
        check_bool("error_if_nonfinite", hp["error_if_nonfinite"])

    def statistic(self, updates: list[Tensor], hp: Mapping[str, Any]) -> Tensor:
        # The norm of the concatenation, in float64: the same bits whether the optimizer
        # passes one flat buffer or one update per parameter (its two execution paths), so a
        # run restored from a checkpoint stays bit-identical whichever path it takes.
        flat = updates[0].reshape(-1) if len(updates) == 1 else torch.cat([u.reshape(-1) for u in updates])
        total = torch.linalg.vector_norm(flat, dtype=torch.float64)
        _check_finite(total, hp, "ClipByGlobalNorm")
        return total

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        total = ctx.statistic
        factor = torch.clamp(ctx.hp["max_norm"] / (total + 1e-6), max=1.0)
        return u * factor.to(u.dtype)


class ClipByParamNorm(Transform):
    """``u_p ← u_p · min(1, c / (‖u_p‖ + 1e-6))`` for each parameter tensor separately."""

    defaults = {"max_param_norm": 1.0, "error_if_nonfinite": False}

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("max_param_norm", hp["max_param_norm"], low=0.0, low_open=True)
        check_bool("error_if_nonfinite", hp["error_if_nonfinite"])

    @property
    def elementwise(self) -> bool:
        return False  # needs each parameter's own norm

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        norm = u.norm()
        _check_finite(norm, ctx.hp, "ClipByParamNorm")
        factor = torch.clamp(ctx.hp["max_param_norm"] / (norm + 1e-6), max=1.0)
        return u * factor
