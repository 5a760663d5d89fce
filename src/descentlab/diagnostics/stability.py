"""When is a step locally stable? The optimizer's bound on the sharpness.

On the quadratic model of the loss around ``w``, ``L(w + δ) ≈ L(w) + gᵀδ + ½ δᵀHδ``, an optimizer whose
step is ``δ = −S m`` (``S`` a positive diagonal scaling, ``m`` the gradient or a momentum average of
it) is stable along every direction iff the largest eigenvalue of the *effective Hessian*
``S^{1/2} (H + λ_wd I) S^{1/2}`` stays below a constant ``c`` of the method:

====================================  ================================  ====================================
optimizer                             ``S`` (per parameter)             bound ``c``
====================================  ================================  ====================================
gradient descent (SGD, β = 0)         η                                 2
SGD momentum (heavy ball, torch       η (1 − d)  (dampening d)          2 (1 + β)
form ``p ← βp + (1−d)g, w ← w − ηp``)
SGD Nesterov (torch form)             η                                 2 (1 + β) / (1 + 2β)
``HeavyBall`` (Polyak)                γ                                 2 (1 + β)
RMSprop (momentum μ)                  η / (√v + ε)                      2 (1 + μ)   (Nesterov: ÷ (1 + 2μ))
Adam / AdamW                          η (1 − β₁) / (√v̂ + ε)             2 (1 + β₁)
====================================  ================================  ====================================

For one parameter group and plain gradient descent this is the familiar ``η·λ_max < 2``, i.e.
``λ_max < 2/η``; for momentum ``λ_max < 2(1+β)/η``. The momentum bounds come from the recurrence on
one eigen-direction of curvature λ, ``w_{k+1} = (1 − a)w_k + β(w_k − w_{k−1})`` with ``a = ηλ``,
which is stable iff ``0 < a < 2(1 + β)`` (Jury's criterion on ``z² − (1 + β − a)z + β``); torch's
Nesterov form gives ``z² − (1 + β − a(1+β))z + β(1 − a)``, stable iff ``a < 2(1+β)/(1+2β)``.

Adam and RMSprop: the *preconditioned sharpness* ``λ_max(P^{-1/2} H P^{-1/2})`` with
``P = diag(√v̂ + ε)`` read from the optimizer's second-moment state (``exp_avg_sq`` bias-corrected by
``1 − β₂^t``, or ``max_exp_avg_sq`` with AMSGrad; ``square_avg`` for RMSprop), treating ``P`` as
frozen; Adam's first moment ``m ← β₁m + (1 − β₁)g`` is a dampened heavy ball, hence
``η λ_max(P^{-1}H) < 2(1 + β₁)/(1 − β₁)`` = 38/η for β₁ = 0.9 (Cohen et al. 2022, "Adaptive gradient
methods at the edge of stability"). Adam's first-moment bias correction (→ 1 after a few dozen
steps) and AdamW's decoupled weight decay (a contraction, which only stabilises) are not included.

Crossing the bound means the *step is locally unstable* on the quadratic model — not that training
will diverge: large-rate "catapults" (Lewkowycz et al. 2020) and the edge of stability (Cohen et al.
2021) are common and often benign.

Other optimizers (Adagrad, Adadelta, Rprop, Lion, ...) are not covered: :func:`stability_rule` returns
``None`` and the sharpness is reported without a bound. Add one with :func:`register_stability_rule`.
Rules are keyed by optimizer class (looked up along the class's MRO), never by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import optim as dl_optim

__all__ = ["StabilityRule", "GroupRule", "stability_rule", "register_stability_rule", "STABILITY_RULES"]


@dataclass(frozen=True)
class GroupRule:
    """What one parameter group contributes: ``bound`` c, ``scale(p)`` (S for parameter p: a float or
    a tensor shaped like p), the coupled weight decay and a formula for messages."""

    bound: float
    scale: Callable[[Tensor], float | Tensor]
    weight_decay: float
    formula: str


@dataclass(frozen=True)
class StabilityRule:
    """The stability rule of an optimizer: ``λ_max(S^{1/2}(H + diag(λ_wd))S^{1/2}) < bound``."""

    bound: float
    scales: dict[int, float | Tensor]  # id(parameter) → S
    weight_decays: dict[int, float]
    formula: str
    preconditioned: bool

    def flat_scale(self, params: list[Tensor]) -> tuple[Tensor, Tensor]:
        """``(S, λ_wd)`` as flat vectors in the order of ``params`` (0 for parameters not optimised)."""
        pieces, decays = [], []
        for p in params:
            s = self.scales.get(id(p), 0.0)
            s = s.reshape(-1) if isinstance(s, Tensor) else torch.full((p.numel(),), float(s))
            pieces.append(s.to(dtype=p.dtype, device=p.device))
            decays.append(
                torch.full((p.numel(),), self.weight_decays.get(id(p), 0.0), dtype=p.dtype, device=p.device)
            )
        return torch.cat(pieces), torch.cat(decays)

    @property
    def uniform(self) -> bool:
        values = {float(s) if not isinstance(s, Tensor) else None for s in self.scales.values()}
        return None not in values and len(values) == 1 and len(set(self.weight_decays.values())) <= 1


GroupRuleFn = Callable[[dict[str, Any], dict[Tensor, dict[str, Any]]], "GroupRule | None"]
STABILITY_RULES: dict[type, GroupRuleFn] = {}


def register_stability_rule(optimizer_class: type, rule: GroupRuleFn) -> None:
    """Teach :func:`stability_rule` an optimizer: ``rule(group, state) -> GroupRule | None``."""
    STABILITY_RULES[optimizer_class] = rule


def _lr(group: dict[str, Any]) -> float:
    return float(group["lr"])


def _plain(group: dict[str, Any]) -> bool:
    """Settings outside every rule: ascent (``maximize``) or an lr decaying with the step count."""
    return not group.get("maximize", False) and float(group.get("lr_decay", 0.0)) == 0.0


def _sgd_rule(group, state) -> GroupRule | None:
    if not _plain(group):
        return None
    lr, beta = _lr(group), float(group.get("momentum", 0.0))
    wd = float(group.get("weight_decay", 0.0))
    if beta == 0.0:
        return GroupRule(2.0, lambda p: lr, wd, "η·λ_max < 2 (gradient descent)")
    if group.get("nesterov", False):
        bound = 2 * (1 + beta) / (1 + 2 * beta)
        return GroupRule(
            bound, lambda p: lr, wd, f"η·λ_max < 2(1+β)/(1+2β) = {bound:.4g} (Nesterov, β={beta:g})"
        )
    damp = float(group.get("dampening", 0.0))
    return GroupRule(
        2 * (1 + beta),
        lambda p: lr * (1 - damp),
        wd,
        f"η(1−d)·λ_max < 2(1+β) = {2 * (1 + beta):.4g} (heavy ball, β={beta:g})",
    )


def _heavy_ball_rule(group, state) -> GroupRule | None:
    if not _plain(group):
        return None
    lr, beta = _lr(group), float(group["momentum"])
    return GroupRule(
        2 * (1 + beta),
        lambda p: lr,
        float(group.get("weight_decay", 0.0)),
        f"γ·λ_max < 2(1+β) = {2 * (1 + beta):.4g} (heavy ball, β={beta:g})",
    )


def _adam_rule(decoupled: bool) -> GroupRuleFn:
    def rule(group, state) -> GroupRule | None:
        if not _plain(group):
            return None
        lr, (beta1, beta2), eps = _lr(group), group["betas"], float(group["eps"])
        beta1, beta2 = float(beta1), float(beta2)
        amsgrad = bool(group.get("amsgrad", False))

        def scale(p: Tensor) -> Tensor:
            s = state.get(p, {})
            key = "max_exp_avg_sq" if amsgrad else "exp_avg_sq"
            if key not in s or "step" not in s:
                raise _NoState
            step = float(s["step"])
            v_hat = s[key].detach() / (1 - beta2**step)
            return lr * (1 - beta1) / (v_hat.sqrt() + eps)

        wd = 0.0 if group.get("decoupled_weight_decay", decoupled) else float(group.get("weight_decay", 0.0))
        bound = 2 * (1 + beta1)
        return GroupRule(
            bound,
            scale,
            wd,
            f"η(1−β₁)·λ_max(P⁻¹H) < 2(1+β₁) = {bound:.4g}, P = √v̂ + ε (preconditioned, Adam)",
        )

    return rule


def _rmsprop_rule(group, state) -> GroupRule | None:
    if not _plain(group):
        return None
    lr, eps, mu = _lr(group), float(group["eps"]), float(group.get("momentum", 0.0))
    damp = float(group.get("dampening", 0.0)) if mu > 0 else 0.0
    centered = bool(group.get("centered", False))

    def scale(p: Tensor) -> Tensor:
        s = state.get(p, {})
        if "square_avg" not in s:
            raise _NoState
        v = s["square_avg"].detach()
        if centered:
            v = v - s["grad_avg"].detach() ** 2
        return lr * (1 - damp) / (v.clamp_min(0).sqrt() + eps)

    bound = 2 * (1 + mu)
    if group.get("nesterov", False) and mu > 0:
        bound /= 1 + 2 * mu
    return GroupRule(
        bound,
        scale,
        float(group.get("weight_decay", 0.0)),
        f"η·λ_max(P⁻¹H) < {bound:.4g}, P = √v + ε (preconditioned, RMSprop, μ={mu:g})",
    )


class _NoState(Exception):
    """The optimizer has no second-moment state yet (before its first step)."""


for _cls in (torch.optim.SGD, dl_optim.SGD):
    register_stability_rule(_cls, _sgd_rule)
register_stability_rule(dl_optim.HeavyBall, _heavy_ball_rule)
for _cls in (torch.optim.Adam, dl_optim.Adam):
    register_stability_rule(_cls, _adam_rule(decoupled=False))
for _cls in (torch.optim.AdamW, dl_optim.AdamW):
    register_stability_rule(_cls, _adam_rule(decoupled=True))
for _cls in (torch.optim.RMSprop, dl_optim.RMSprop):
    register_stability_rule(_cls, _rmsprop_rule)


def _lookup(optimizer: torch.optim.Optimizer) -> GroupRuleFn | None:
    for cls in type(optimizer).__mro__:
        if cls in STABILITY_RULES:
            return STABILITY_RULES[cls]
    return None


def stability_rule(optimizer: torch.optim.Optimizer) -> tuple[StabilityRule | None, str]:
    """The optimizer's :class:`StabilityRule` and a note; ``(None, why)`` when it is not covered.

    Not covered: an optimizer class without a registered rule, ``maximize=True`` or ``lr_decay``, groups with
    different bounds (different momenta), or an adaptive method before its first step.
    """
    fn = _lookup(optimizer)
    name = type(optimizer).__name__
    if fn is None:
        return None, f"no stability rule for {name}: sharpness reported without a bound"
    scales: dict[int, float | Tensor] = {}
    decays: dict[int, float] = {}
    bounds, formulas, preconditioned = set(), [], False
    try:
        for group in optimizer.param_groups:
            rule = fn(group, optimizer.state)
            if rule is None:
                return None, f"{name} with these settings (e.g. maximize=True) is not covered"
            bounds.add(round(rule.bound, 12))
            formulas.append(rule.formula)
            for p in group["params"]:
                s = rule.scale(p)
                preconditioned |= isinstance(s, Tensor)
                scales[id(p)] = s
                decays[id(p)] = rule.weight_decay
    except _NoState:
        return None, f"{name} has no second-moment state before its first step: no bound yet"
    if len(bounds) != 1:
        return None, f"{name}: parameter groups with different stability bounds are not covered"
    return StabilityRule(bounds.pop(), scales, decays, formulas[0], preconditioned), ""
