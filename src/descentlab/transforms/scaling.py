"""Scaling by the learning rate, and the sign flip of ``maximize``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..validation import check_bool, check_number
from .base import Context, Transform


class ScaleByLearningRate(Transform):
    """``s = η_t · u`` with ``η_t = η / (1 + (t − 1)·lr_decay)``.

    The plain gradient-descent step of the notes (file 001): ``w_{k+1} = w_k − η g_k``.
    ``lr_decay`` is AdaGrad's optional 1/t decay of torch's ``Adagrad``; it is 0 by
    default, leaving ``η`` untouched.
    """

    defaults = {"lr": 1e-3, "lr_decay": 0.0}
    needs_step = False

    def __init__(self, **defaults: Any) -> None:
        super().__init__(**defaults)
        # The step count is only needed when lr decays with t.
        self.needs_step = self.defaults["lr_decay"] != 0

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_number("lr", hp["lr"], low=0.0)
        check_number("lr_decay", hp["lr_decay"], low=0.0)

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        lr, lr_decay = hp["lr"], hp["lr_decay"]
        return {"lr": lr / (1 + (step - 1) * lr_decay) if lr_decay else lr}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        return u * ctx.coef["lr"]

    def scale_factor(self, ctx: Context) -> float:
        return ctx.coef["lr"]


class Maximize(Transform):
    """``u ← −u`` when the group's ``maximize`` flag is set (gradient *ascent*)."""

    defaults = {"maximize": False}

    def validate(self, hp: Mapping[str, Any]) -> None:
        check_bool("maximize", hp["maximize"])

    def is_identity(self, hp: Mapping[str, Any]) -> bool:
        return not hp["maximize"]

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        return -u if ctx.hp["maximize"] else u
