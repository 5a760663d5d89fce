"""The first-order optimizers of the course notes, each a short chain of transforms.

Those torch.optim also has keep its names, signatures, defaults and state keys, so
``torch.optim.Adam(...)`` can be replaced by ``descentlab.optim.Adam(...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from ..transforms import (
    AddDecoupledWeightDecay,
    AddWeightDecay,
    AveragedSGD,
    Maximize,
    Momentum,
    ScaleByAdaDelta,
    ScaleByAdaGrad,
    ScaleByAdam,
    ScaleByAdamax,
    ScaleByLearningRate,
    ScaleByLion,
    ScaleByLocalGains,
    ScaleByNAdam,
    ScaleByRms,
    ScaleByRprop,
    chain,
)
from ..transforms import (
    HeavyBall as HeavyBallRule,
)
from ..transforms.base import Transform
from ..validation import NonFinitePolicy
from .chain_optimizer import ChainOptimizer, constructor_arguments

__all__ = [
    "SGD",
    "SparseAdam",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "Rprop",
    "ASGD",
    "Lion",
    "HeavyBall",
    "DeltaBarDelta",
]

Params = Iterable[Any]


def adaptive_chain(scaling: Transform, decoupled_weight_decay: bool) -> Transform:
    """``Maximize → weight decay → scaling → lr``, or with decoupled weight decay (Loshchilov &
    Hutter 2019) ``Maximize → scaling → decay → lr``: where the decay sits is the only difference."""
    if decoupled_weight_decay:
        return chain(Maximize(), scaling, AddDecoupledWeightDecay(), ScaleByLearningRate())
    return chain(Maximize(), AddWeightDecay(), scaling, ScaleByLearningRate())


class SGD(ChainOptimizer):
    """Gradient descent with optional momentum, dampening, Nesterov and weight decay.

    ``chain(Maximize, AddWeightDecay, Momentum, ScaleByLearningRate)``::

        g ← ∇L(w) + λw;   p ← βp + (1 − d)g;   w ← w − η·(g + βp if nesterov else p)

    Full-batch, online or mini-batch gradient descent depending on the batch the
    gradient was computed on (notes 000, 001). Same API and state as ``torch.optim.SGD``.
    """

    store_step = False

    def sparse_mode(self, group: dict) -> str:
        """Sparse gradients (``nn.Embedding(sparse=True)``) as torch: without momentum or weight
        decay only the rows present move; with them the gradient is densified (the velocity keeps
        moving every row it has seen)."""
        return "rows" if group["momentum"] == 0 and group["weight_decay"] == 0 else "dense"

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), AddWeightDecay(), Momentum(), ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


class Adagrad(ChainOptimizer):
    """AdaGrad: ``t ← t + g²;  w ← w − η_t·g/(√t + ε)``, ``η_t = η/(1 + (k−1)·lr_decay)``.

    ``chain(Maximize, AddWeightDecay, ScaleByAdaGrad, ScaleByLearningRate)``; same API
    and state (``step``, ``sum``) as ``torch.optim.Adagrad``, which, like torch, exists
    for every parameter from construction on.
    """

    store_step = True
    state_for_all_params = True

    def sparse_mode(self, group: dict) -> str:
        """Sparse gradients as torch: the sums and parameters of the rows present only."""
        if group["weight_decay"] != 0:
            raise RuntimeError("Adagrad: weight_decay option is not compatible with sparse gradients")
        return "rows"

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), AddWeightDecay(), ScaleByAdaGrad(), ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


class RMSprop(ChainOptimizer):
    """RMSprop, plain or centred, with optional momentum — or Nesterov momentum.

    ``chain(Maximize, AddWeightDecay, ScaleByRms, Momentum, ScaleByLearningRate)``::

        v ← αv + (1 − α)g²;   s = g/(√v + ε)  (centred: g/(√(v − ḡ²) + ε))
        p ← βp + s;           w ← w − η·p      (nesterov: w ← w − η·(s + βp))

    ``nesterov=True`` (not in torch) follows the notes' advice (file 000, after Hinton):
    the RMS normalisation divides the *correction* (the new gradient), and the momentum
    jump is the accumulation of those corrections. Otherwise the same API and state as
    ``torch.optim.RMSprop``.
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        nesterov: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), AddWeightDecay(), ScaleByRms(), Momentum(), ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


class Adadelta(ChainOptimizer):
    """AdaDelta: ``Δ = √(E[Δ²] + ε)/√(E[g²] + ε)·g;  w ← w − η·Δ``.

    ``chain(Maximize, AddWeightDecay, ScaleByAdaDelta, ScaleByLearningRate)``; same API
    and state as ``torch.optim.Adadelta``.
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), AddWeightDecay(), ScaleByAdaDelta(), ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


class Adam(ChainOptimizer):
    """Adam with bias correction, optional AMSGrad and coupled or decoupled weight decay.

    ``chain(Maximize, AddWeightDecay, ScaleByAdam, ScaleByLearningRate)``::

        m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  w ← w − η·m̂/(√v̂ + ε)

    Same API and state as ``torch.optim.Adam``.
    """

    store_step = True
    group_extras = ("decoupled_weight_decay",)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = adaptive_chain(ScaleByAdam(), decoupled_weight_decay)
        super().__init__(params, rule, **arguments)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019)::

        w ← w − η·(m̂/(√v̂ + ε) + λw)

    ``chain(Maximize, ScaleByAdam, AddDecoupledWeightDecay, ScaleByLearningRate)``;
    same API and state as ``torch.optim.AdamW``.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
            capturable=capturable, differentiable=differentiable, fused=fused,
            decoupled_weight_decay=True, nonfinite=nonfinite, fast=fast,
        )


class SparseAdam(ChainOptimizer):
    """SparseAdam: Adam on the rows a sparse gradient holds, w_I ← w_I − η·b_k·m_I/(√v_I + ε) ("lazy").

    For the rows ``I`` present in the gradient (an ``nn.Embedding(sparse=True)``'s looked-up rows)::

        m_I ← β₁m_I + (1 − β₁)g_I;  v_I ← β₂v_I + (1 − β₂)g_I²;  w_I ← w_I − η·b_k·m_I/(√v_I + ε)

    with ``b_k = √(1 − β₂ᵏ)/(1 − β₁ᵏ)`` (Adam's efficient form, notes 001); the other rows and their
    moments do not move. ``chain(Maximize, ScaleByAdam(efficient=True), ScaleByLearningRate)`` on the
    rows. Same API and state (``step``, ``exp_avg``, ``exp_avg_sq``) as ``torch.optim.SparseAdam``;
    dense gradients are refused, as there.
    """

    store_step = True
    sparse_gradients = "rows"
    refuses_dense = "SparseAdam does not support dense gradients, please consider Adam instead"

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        maximize: bool = False,
        *,
        nonfinite: NonFinitePolicy = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), ScaleByAdam(efficient=True), ScaleByLearningRate())
        super().__init__(params, rule, fast=False, **arguments)


class Adamax(ChainOptimizer):
    """Adamax, Adam with the infinity norm: ``u ← max(β₂u, |g| + ε);  w ← w − η·m̂/u``.

    ``chain(Maximize, AddWeightDecay, ScaleByAdamax, ScaleByLearningRate)``; same API and
    state as ``torch.optim.Adamax``.
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), AddWeightDecay(), ScaleByAdamax(), ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


class NAdam(ChainOptimizer):
    """NAdam: w ← w − η·[(1 − μ_k)ĝ + μ_{k+1}m̂]/(√v̂ + ε)  (Adam with Nesterov momentum).

    μ_k follows torch's momentum-decay schedule μ_k = β₁(1 − ½·0.96^{kψ}).

    ``chain(Maximize, AddWeightDecay, ScaleByNAdam, ScaleByLearningRate)`` (decoupled
    weight decay after the scaling when ``decoupled_weight_decay``); same API and state
    (``step``, ``mu_product``, ``exp_avg``, ``exp_avg_sq``) as ``torch.optim.NAdam``.
    """

    store_step = True
    group_extras = ("decoupled_weight_decay",)

    def __init__(
        self,
        params: Params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = adaptive_chain(ScaleByNAdam(), decoupled_weight_decay)
        super().__init__(params, rule, **arguments)


class Rprop(ChainOptimizer):
    """Rprop: Δ ← clip(Δ·η±, Δ_min, Δ_max);  w ← w − sign(g)·Δ  (resilient backpropagation).

    Per-weight step sizes grown by η₊ while the gradient's sign persists and shrunk by η₋
    when it flips, bounded by ``step_sizes``.

    ``chain(Maximize, ScaleByRprop)``; same API and state as ``torch.optim.Rprop``.
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), ScaleByRprop())
        super().__init__(params, rule, **arguments)


class ASGD(ChainOptimizer):
    """Averaged SGD: w ← w − η_k(g + λw);  a ← a + μ_k(w − a)  (Polyak averaging).

    Decaying-step SGD plus the running average ``ax`` of the iterates, which usually
    generalises better than the last iterate.

    ``chain(Maximize, AddWeightDecay, AveragedSGD)``; same API and state as
    ``torch.optim.ASGD``. The averaged parameters are available through
    :meth:`averaged_parameters` and :meth:`swap_averaged`.
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        lambd: float = 1e-4,
        alpha: float = 0.75,
        t0: float = 1e6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        *,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), AddWeightDecay(), AveragedSGD())
        super().__init__(params, rule, **arguments)

    def averaged_parameters(self) -> list[Tensor]:
        """The Polyak averages ``ax`` of every parameter (the parameter itself before its
        first step)."""
        return [self._average_of(p) for group in self.param_groups for p in group["params"]]

    def _average_of(self, p: Tensor) -> Tensor:
        # State may exist before a parameter's first step (it is allocated for a whole
        # bucket at once); ``ax`` is all zeros until then, so use the parameter itself.
        state = self.state.get(p, {})
        if "ax" in state and float(state.get("step", 1)) > 0:
            return state["ax"]
        return p.detach()

    @contextmanager
    @torch.no_grad()
    def swap_averaged(self) -> Iterator[None]:
        """Temporarily load the averaged parameters into the model (e.g. to evaluate)."""
        params = [p for group in self.param_groups for p in group["params"]]
        saved = [p.detach().clone() for p in params]
        for p, avg in zip(params, self.averaged_parameters()):
            p.copy_(avg)
        try:
            yield
        finally:
            for p, old in zip(params, saved):
                p.copy_(old)


class Lion(ChainOptimizer):
    """Lion (Chen et al. 2023): ``w ← w − η·(sign(β₁m + (1 − β₁)g) + λw)``,
    ``m ← β₂m + (1 − β₂)g``.

    ``chain(Maximize, ScaleByLion, AddDecoupledWeightDecay, ScaleByLearningRate)``.
    Use a learning rate 3–10× smaller than AdamW's, and a larger weight decay.
    State: ``exp_avg``.
    """

    store_step = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), ScaleByLion(), AddDecoupledWeightDecay(), ScaleByLearningRate())
        super().__init__(params, rule, **arguments)


class HeavyBall(ChainOptimizer):
    """Heavy ball: w ← w − γ∇L(w) + β(w − w_prev)  (Polyak; the notes' one-line form, file 000)::

        w_{k+1} = w_k − γ·∇L(w_k) + β·(w_k − w_{k−1})

    ``chain(Maximize, AddWeightDecay, HeavyBall)``. Same iterates as ``SGD`` with
    momentum β and learning rate γ. State: ``previous_param``.
    """

    store_step = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), AddWeightDecay(), HeavyBallRule())
        super().__init__(params, rule, **arguments)


class DeltaBarDelta(ChainOptimizer):
    """Local gains: gain ← gain + δ or gain·(1 − δ);  w ← w − η·gain ⊙ g  (delta-bar-delta).

    Optionally with momentum (notes 000)::

        gain ← gain + δ       if the gradient's sign persists
        gain ← gain·(1 − δ)   otherwise;      gain ← clip(gain, lo, hi)
        p ← βp + gain ⊙ g;    w ← w − η·p

    ``chain(Maximize, ScaleByLocalGains, Momentum, ScaleByLearningRate)``. The notes
    recommend full or large batches (sampling noise flips signs) and combining it with
    momentum. State: ``gain``, ``prev_grad`` (and ``momentum_buffer`` when β > 0).
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        delta: float = 0.05,
        gain_bounds: tuple[float, float] = (0.1, 10.0),
        momentum: float = 0.0,
        *,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), ScaleByLocalGains(), Momentum(), ScaleByLearningRate())
        super().__init__(params, rule, **arguments)
