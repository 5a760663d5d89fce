"""Orthogonalised updates (Muon): momentum as a moving average, Newton–Schulz, shape scaling."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..validation import check_bool, check_choice, check_int, check_number
from .base import Context, Transform

#: torch.optim.Muon's quintic Newton–Schulz coefficients (a, b, c) and its ε
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_EPS = 1e-7


class EmaMomentum(Transform):
    """Momentum as an exponential moving average of the gradients (Muon's form, torch.optim.Muon)::

        b_k = μ·b_{k−1} + (1 − μ)·g_k                     (b_0 = 0)
        s_k = b_k                                          plain
        s_k = (1 − μ)·g_k + μ·b_k                          Nesterov

    The same direction as :class:`~descentlab.transforms.Momentum`'s velocity ``p`` (``b = (1 − μ)p``
    from zero), scaled by ``1 − μ``: it matters for rules that are not scale-free.
    State: ``momentum_buffer`` (torch's name).
    """

    defaults = {"momentum": 0.95, "nesterov": True}
    state_keys = ("momentum_buffer",)
    state_depends_on = ()

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("momentum", hp["momentum"], low=0.0, high=1.0, high_open=True)
        check_bool("nesterov", hp["nesterov"])

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"momentum_buffer": torch.zeros_like(param)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        mu, b = ctx.hp["momentum"], state["momentum_buffer"]
        b.lerp_(u, 1 - mu)
        return u.lerp(b, mu) if ctx.hp["nesterov"] else b


def newton_schulz(g: Tensor, coefficients: tuple[float, float, float], steps: int, eps: float) -> Tensor:
    """``steps`` quintic Newton–Schulz iterations towards ``U·Vᵀ`` of ``g = U·S·Vᵀ`` (bfloat16,
    as torch.optim.Muon and Jordan et al.'s reference): ``X₀ = g/max(‖g‖_F, ε)`` (transposed to be
    wide), ``X ← a·X + (b·A + c·A²)·X`` with ``A = X·Xᵀ``. The singular values end near 1 (in
    about [0.7, 1.2] with these coefficients), not exactly 1."""
    a, b, c = coefficients
    x = g.bfloat16()
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class Orthogonalize(Transform):
    """Replace a matrix update by its orthogonal polar factor, approximately (Muon; Jordan et al.
    2024, torch.optim.Muon)::

        G = U·S·Vᵀ  ↦  O ≈ U·Vᵀ      (``ns_steps`` Newton–Schulz iterations in bfloat16)

    Every singular direction of the update moves by the same amount, however small its
    singular value: an update that is not dominated by a few directions. 2-D parameters only.
    """

    defaults = {"ns_coefficients": NS_COEFFICIENTS, "ns_steps": 5, "eps": NS_EPS}
    state_depends_on = ()

    @property
    def elementwise(self) -> bool:
        return False

    def validate(self, hp: Mapping[str, Any]) -> None:
        coefficients = hp["ns_coefficients"]
        if not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3:
            raise ValueError(f"ns_coefficients must be a triple (a, b, c), got {coefficients!r}")
        for name, value in zip("abc", coefficients):
            check_number(f"ns_coefficients ({name})", value)
        check_int("ns_steps", hp["ns_steps"], low=0, high=99)
        check_number("eps", hp["eps"], low=0.0, low_open=True)

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        if u.dim() != 2:
            raise ValueError(f"Orthogonalize needs 2-D parameters, got one of shape {tuple(u.shape)}")
        hp = ctx.hp
        return newton_schulz(u, tuple(hp["ns_coefficients"]), hp["ns_steps"], hp["eps"]).to(u.dtype)


def shape_ratio(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """torch.optim.Muon's learning-rate factor for an ``A × B`` matrix."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    return 0.2 * math.sqrt(max(rows, cols))  # "match_rms_adamw"


class ScaleByMatrixShape(Transform):
    """``u ← c(A, B)·u`` for an ``A × B`` matrix, torch.optim.Muon's ``adjust_lr_fn``::

        c = √max(1, A/B)           "original" (None; Jordan et al.)
        c = 0.2·√max(A, B)         "match_rms_adamw" (Liu et al. 2025: an orthogonal update with
                                   the RMS of AdamW's, so AdamW's lr and weight decay carry over)
    """

    defaults = {"adjust_lr_fn": None}
    state_depends_on = ()

    @property
    def elementwise(self) -> bool:
        return False

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_choice("adjust_lr_fn", hp["adjust_lr_fn"], (None, "original", "match_rms_adamw"))

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        return u * shape_ratio(ctx.hp["adjust_lr_fn"], u.shape)
