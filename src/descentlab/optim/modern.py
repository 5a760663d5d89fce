"""Optimizers from recent papers, each a short chain of transforms, checked against its authors'
(or the most used) package: schedulefree, prodigyopt, heavyball and pytorch_optimizer.

Argument names and defaults are those packages', so that swapping the import keeps a
training script working; where descentlab differs from the reference, the class says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from ..transforms import (
    AddDecoupledWeightDecay,
    AddWeightDecay,
    EstimateDistance,
    Maximize,
    Momentum,
    ScaleByAdaBelief,
    ScaleByAdam,
    ScaleByDebiasedRms,
    ScaleByDistance,
    ScaleByLarsTrustRatio,
    ScaleByLearningRate,
    ScaleByProdigyAdam,
    ScaleBySoap,
    ScaleByTrustRatio,
    ScaleByUncorrectedAdam,
    ScaleByYogi,
    ScheduleFree,
    SkipFirstStep,
    chain,
)
from ..transforms.base import Transform
from ..validation import NonFinitePolicy, check_bool
from ._extended import ExtendedChainOptimizer
from .chain_optimizer import ChainOptimizer, constructor_arguments

__all__ = [
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "Prodigy",
    "Lamb",
    "Lars",
    "SOAP",
    "AdaBelief",
    "Yogi",
]

Params = Iterable[Any]


def _decay_chain(scaling: Transform, weight_decouple: bool) -> Transform:
    """pytorch_optimizer's ``weight_decouple``: the decay after the scaling (AdamW's) or before it."""
    if weight_decouple:
        return chain(Maximize(), scaling, AddDecoupledWeightDecay(), ScaleByLearningRate())
    return chain(Maximize(), AddWeightDecay(), scaling, ScaleByLearningRate())


# -- schedule-free ------------------------------------------------------------------------------
class _ScheduleFreeModes:
    """``train()`` / ``eval()``: which sequence the model's parameters hold."""

    param_groups: list[dict[str, Any]]
    state: Any

    def _interpolation(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def eval(self) -> _ScheduleFreeModes:
        """Load the average x into the parameters (evaluate, save a checkpoint): ``y ← x``."""
        for group in self.param_groups:
            if group["train_mode"]:
                beta = self._interpolation(group)
                for p in group["params"]:
                    if "z" in self.state.get(p, {}):
                        ScheduleFree.to_eval(p, self.state[p]["z"], beta)
                group["train_mode"] = False
        return self

    @torch.no_grad()
    def train(self, mode: bool = True) -> _ScheduleFreeModes:
        """Back to the training point y (the gradient's): ``x ← y``. ``train(False)`` is ``eval()``."""
        if not check_bool("mode", mode):
            return self.eval()
        for group in self.param_groups:
            if not group["train_mode"]:
                beta = self._interpolation(group)
                for p in group["params"]:
                    if "z" in self.state.get(p, {}):
                        ScheduleFree.to_train(p, self.state[p]["z"], beta)
                group["train_mode"] = True
        return self


class ScheduleFreeAdamW(_ScheduleFreeModes, ExtendedChainOptimizer):
    """Schedule-free AdamW: y ← y − [c(y − z) + γ(1 − β₁(1 − c))·û],  z ← z − γ·û,  û = g/(√v̂ + ε) + λy.

    Defazio et al. 2024 (the core of the winning AlgoPerf 2024 self-tuning entry): no
    learning-rate schedule to choose; the average ``x`` of the base sequence ``z`` is the
    model to evaluate, and the gradient is taken at ``y = (1 − β₁)z + β₁x``. Call
    ``optimizer.train()`` before training steps and ``optimizer.eval()`` before evaluating or
    saving (the parameters then hold x); a linear warm-up over ``warmup_steps`` replaces the
    schedule.

    ``chain(Maximize, ScaleByDebiasedRms, AddDecoupledWeightDecay, ScheduleFree)``; same
    arguments, group entries (``k``, ``weight_sum``, ``lr_max``, ``scheduled_lr``,
    ``train_mode``) and state (``z``, ``exp_avg_sq``) as ``schedulefree.AdamWScheduleFree``.
    Unlike it, a new optimizer starts in train mode (so ``train()`` first is optional).
    """

    store_step = False

    def __init__(
        self,
        params: Params,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), ScaleByDebiasedRms(), AddDecoupledWeightDecay(), ScheduleFree(beta="betas"))
        # the reference reads group["foreach"]: keep it in the group, so checkpoints load there
        super().__init__(params, rule, extra_defaults={"foreach": foreach}, **arguments)

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["betas"][0]


class ScheduleFreeSGD(_ScheduleFreeModes, ExtendedChainOptimizer):
    """Schedule-free SGD: y ← y − [c(y − z) + γ(1 − β(1 − c))·g],  z ← z − γ·g  (g: gradient + λy).

    Defazio et al. 2024: SGD whose evaluated point is the (warm-up weighted) average of the
    iterates, with the gradient taken at an interpolation between the average and the latest
    iterate — momentum without a schedule. ``train()``/``eval()`` as for
    :class:`ScheduleFreeAdamW`.

    ``chain(Maximize, AddWeightDecay, ScheduleFree)``; same arguments, group entries and
    state (``z``) as ``schedulefree.SGDScheduleFree`` (which starts in eval mode; this one
    starts in train mode).
    """

    store_step = False

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), AddWeightDecay(), ScheduleFree())
        # the reference reads group["foreach"]: keep it in the group, so checkpoints load there
        super().__init__(params, rule, extra_defaults={"foreach": foreach}, **arguments)

    def _interpolation(self, group: dict[str, Any]) -> float:
        return group["momentum"]


# -- Prodigy --------------------------------------------------------------------------------------
class Prodigy(ExtendedChainOptimizer):
    """Prodigy: w ← w − η·d_k·m/(√v + d_{k+1}·ε), moments weighted by the D estimate d (no lr to tune).

    Mishchenko & Defazio 2023: Adam whose step size is learnt — d estimates the distance
    ``‖w_0 − w*‖`` from the correlation of the gradients with the distance travelled
    (:class:`~descentlab.transforms.distance.EstimateDistance`) and only grows. Leave
    ``lr`` at 1 (a multiplier of the learnt step); ``d_coef`` is the knob to turn.

    ``chain(EstimateDistance, [AddWeightDecay], ScaleByProdigyAdam, [AddDecoupledWeightDecay],
    ScaleByDistance, ScaleByLearningRate)``; same arguments, group entries (``d``, ``d_max``,
    ``d_numerator``, ``k``, …; plus ``d_prev``) and state (``s``, ``p0``, ``exp_avg``,
    ``exp_avg_sq``) as ``prodigyopt.Prodigy``. Differences: groups with ``lr = 0`` are frozen
    (the reference still applies its decoupled weight decay to them, at the other groups'
    learning rate), the gradients are not modified in place, and ``fsdp_in_use`` is refused.
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = float("inf"),
        fsdp_in_use: bool = False,
        slice_p: int = 1,
        *,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        arguments.update(d=d0, d_prev=d0, d_max=d0)
        if check_bool("decouple", decouple):
            middle = [ScaleByProdigyAdam(), AddDecoupledWeightDecay()]
        else:
            middle = [AddWeightDecay(), ScaleByProdigyAdam()]
        rule = chain(EstimateDistance(), *middle, ScaleByDistance(), ScaleByLearningRate(lr=1.0))
        super().__init__(params, rule, **arguments)


# -- layer-wise trust ratios -------------------------------------------------------------------------
class Lamb(ChainOptimizer):
    """LAMB: w ← w − η·φ(‖w‖)/‖r + λw‖·(r + λw),  r = m̂/(√v̂ + ε)  (You et al. 2020, Algorithm 2).

    Adam's direction plus weight decay, rescaled per parameter tensor by the trust ratio so
    that each layer moves by about ``η·‖w‖`` (φ clamps ‖w‖ at ``clamp_value``): large-batch
    training (BERT in 76 minutes) with one learning rate for every layer.

    ``chain(Maximize, ScaleByAdam, AddDecoupledWeightDecay, ScaleByTrustRatio,
    ScaleByLearningRate)`` — with ``bias_correction=False``, ``ScaleByUncorrectedAdam``
    (r = m/(√v + ε)), which is pytorch_optimizer's ``Lamb(weight_decouple=False,
    adam_debias=True)``. pytorch_optimizer's default differs twice: its weight decay is
    decoupled outside the trust ratio, and it divides the step by ``1 − β₁ᵏ`` after the
    trust ratio. Needs each parameter on its own.
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        eps: float = 1e-6,
        *,
        bias_correction: bool = True,
        clamp_value: float = 10.0,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        del arguments["bias_correction"]
        if check_bool("bias_correction", bias_correction):
            direction: Transform = ScaleByAdam(eps=1e-6)
        else:
            direction = ScaleByUncorrectedAdam()
        rule = chain(Maximize(), direction, AddDecoupledWeightDecay(), ScaleByTrustRatio(),
                     ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


class Lars(ChainOptimizer):
    """LARS: w ← w − η·p,  p ← βp + τ·(g + λw),  τ = c·‖w‖/(‖g‖ + λ‖w‖) per weight matrix.

    You et al. 2017: momentum SGD whose step of every layer is rescaled to a fraction ``c``
    (``trust_coefficient``) of the layer's weight norm — large-batch ImageNet training.
    Vectors and scalars (biases, norm layers) take plain momentum SGD, without weight decay.

    ``chain(Maximize, ScaleByLarsTrustRatio, Momentum, ScaleByLearningRate)``; the same
    arguments as pytorch_optimizer's ``LARS``. Its momentum buffer starts at 0 (so its first
    step is dampened), descentlab's at the first update, as torch's SGD; they agree
    whenever ``dampening = 0``. State: ``momentum_buffer`` (when β > 0).
    """

    store_step = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        dampening: float = 0.0,
        trust_coefficient: float = 1e-3,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), ScaleByLarsTrustRatio(), Momentum(), ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


# -- SOAP -----------------------------------------------------------------------------------------------
class SOAP(ExtendedChainOptimizer):
    """SOAP: w ← w(1 − ηλ) − η·Q·Adam(Qᵀ g)  with Q the eigenbases of Shampoo's factors E[GGᵀ], E[GᵀG].

    Vyas et al. 2024: Adam run in the eigenbasis of Shampoo's Kronecker-factored
    preconditioner, the bases refreshed every ``precondition_frequency`` steps by one QR step
    (:class:`~descentlab.transforms.soap.ScaleBySoap`). Vectors (biases, norm layers) get
    plain Adam unless ``precondition_1d``; dimensions above ``max_precond_dim`` are left
    unrotated. Its memory per ``r × c`` matrix is ``2rc + 2r² + 2c²``.

    ``chain(Maximize, ScaleBySoap, AddDecoupledWeightDecay, SkipFirstStep, ScaleByLearningRate)``;
    the arguments and defaults of ``heavyball.SOAP`` that define the algorithm (its first step
    only initialises the preconditioner). Not offered: heavyball's warm-up (use a torch LR
    scheduler), caution, MARS, PaLM's β₂ schedule and storage dtypes. Needs each parameter on
    its own.
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.9, 0.95),
        shampoo_beta: float = 0.95,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 2,
        max_precond_dim: int = 2048,
        merge_dims: bool = True,
        precondition_1d: bool = False,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), ScaleBySoap(), AddDecoupledWeightDecay(), SkipFirstStep(),
                     ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


# -- Adam variants ----------------------------------------------------------------------------------------
class AdaBelief(ChainOptimizer):
    """AdaBelief: w ← w − η·m̂/(√ŝ + ε),  s ← β₂s + (1 − β₂)(g − m)² + ε  (Zhuang et al. 2020).

    Adam with the variance of the gradient around its running mean in place of its second
    moment: a step as large as Adam's where gradients are consistent, smaller where they
    are noisy.

    ``chain(Maximize, ScaleByAdaBelief, AddDecoupledWeightDecay, ScaleByLearningRate)`` (the
    decay before the scaling with ``weight_decouple=False``); the arguments, defaults and
    state names of pytorch_optimizer's ``AdaBelief`` (without its rectification options).
    """

    store_step = True
    group_extras = ("weight_decouple",)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        weight_decouple: bool = True,
        ams_bound: bool = False,
        eps: float = 1e-16,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = _decay_chain(ScaleByAdaBelief(), check_bool("weight_decouple", weight_decouple))
        super().__init__(params, rule, **arguments)


class Yogi(ChainOptimizer):
    """Yogi: w ← w − η·m̂/(√v̂ + ε),  v ← v − (1 − β₂)·sign(v − g²)·g²  (Zaheer et al. 2018).

    Adam whose second moment changes additively, by at most (1 − β₂)·g² per step, so one
    small gradient cannot make the step explode. Moments start at ``initial_accumulator``.

    ``chain(Maximize, ScaleByYogi, AddDecoupledWeightDecay, ScaleByLearningRate)`` (the decay
    before the scaling with ``weight_decouple=False``); the arguments, defaults and state
    names of pytorch_optimizer's ``Yogi``.
    """

    store_step = True
    group_extras = ("weight_decouple",)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        initial_accumulator: float = 1e-6,
        weight_decay: float = 0.0,
        weight_decouple: bool = True,
        eps: float = 1e-3,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = _decay_chain(ScaleByYogi(), check_bool("weight_decouple", weight_decouple))
        super().__init__(params, rule, **arguments)

