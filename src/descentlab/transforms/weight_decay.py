"""Weight decay: coupled (an L2 penalty in the gradient) and decoupled (Loshchilov & Hutter)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..validation import check_number
from .base import Context, Transform


class AddWeightDecay(Transform):
    """Coupled L2 weight decay: ``u ← u + λ·w``.

    The gradient of ``L(w) + ½λ‖w‖²``; placed *before* an adaptive scaling it is scaled
    with the gradient (torch's ``weight_decay`` in SGD, Adam, RMSprop, ...).
    """

    defaults = {"weight_decay": 0.0}

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("weight_decay", hp["weight_decay"], low=0.0)

    def is_identity(self, hp: Mapping[str, Any]) -> bool:
        return hp["weight_decay"] == 0

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        wd = ctx.hp["weight_decay"]
        return u + wd * ctx.param if wd != 0 else u


class AddDecoupledWeightDecay(AddWeightDecay):
    """Decoupled weight decay (AdamW, Lion): ``u ← u + λ·w`` *after* the adaptive scaling.

    Followed by :class:`ScaleByLearningRate` it gives ``w ← w − η(u + λw)``, i.e. torch
    AdamW's ``w ← w(1 − ηλ) − η·u``. Same arithmetic as :class:`AddWeightDecay`; what
    differs is its place in the chain (Loshchilov & Hutter 2019).
    """
