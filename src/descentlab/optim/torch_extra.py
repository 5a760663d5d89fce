"""The rest of torch.optim: RAdam, Adafactor and Muon, each a short chain of transforms.

Same names, signatures, defaults, state keys and ``state_dict`` layout as torch 2.13's, so a
checkpoint moves between ``torch.optim.RAdam`` and ``descentlab.optim.RAdam`` either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from ..transforms import (
    AddDecoupledWeightDecay,
    EmaMomentum,
    Maximize,
    Orthogonalize,
    ScaleByAdafactor,
    ScaleByLearningRate,
    ScaleByMatrixShape,
    ScaleByRAdam,
    chain,
)
from ..transforms.orthogonal import NS_COEFFICIENTS, NS_EPS
from ..validation import NonFinitePolicy
from ._extended import ExtendedChainOptimizer
from .chain_optimizer import ChainOptimizer, constructor_arguments
from .first_order import adaptive_chain

__all__ = ["RAdam", "Adafactor", "Muon"]

Params = Iterable[Any]


class RAdam(ChainOptimizer):
    """RAdam: w ← w − η·m̂·r_k·√(1 − β₂ᵏ)/(√v + ε) once ρ_k > 5, else w ← w − η·m̂ (Liu et al. 2020).

    Adam with its adaptive step *rectified*: while the second moment rests on too few
    gradients to be trusted (ρ_k ≤ 5, the first few steps) the update is momentum SGD, and the
    factor r_k then brings the adaptive step in gradually — a built-in warm-up.

    ``chain(Maximize, AddWeightDecay, ScaleByRAdam, ScaleByLearningRate)``, the decay after the
    scaling (``AddDecoupledWeightDecay``) when ``decoupled_weight_decay`` (RAdamW). Same API and
    state (``step``, ``exp_avg``, ``exp_avg_sq``) as ``torch.optim.RAdam``.
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
        rule = adaptive_chain(ScaleByRAdam(), decoupled_weight_decay)
        super().__init__(params, rule, **arguments)


class Adafactor(ExtendedChainOptimizer):
    """Adafactor: w ← w(1 − ηλ) − max(ε₂, RMS(w))·min(η, 1/√k)·U/max(1, RMS(U)/d), U = g/√V̂.

    The second moment of a matrix kept as row and column factors (r + c numbers instead of
    r·c, Shazeer & Stern 2018), ``β₂ = 1 − k^{β₂ decay}`` growing towards 1, and a step relative
    to the scale of the weights — torch's variant of the algorithm.

    ``chain(Maximize, ScaleByAdafactor, AddDecoupledWeightDecay, ScaleByLearningRate)``. Same API
    and state (``step``, ``row_var``/``col_var`` for matrices, ``variance`` otherwise) as
    ``torch.optim.Adafactor``. Runs each parameter on its own (the factors are per matrix).
    """

    store_step = True

    def __init__(
        self,
        params: Params,
        lr: float = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(Maximize(), ScaleByAdafactor(), AddDecoupledWeightDecay(), ScaleByLearningRate(lr=1e-2))
        super().__init__(params, rule, **arguments)


class Muon(ChainOptimizer):
    """Muon: w ← w(1 − ηλ) − η·c(A, B)·NS(b), b ← μb + (1 − μ)g (Nesterov: NS((1 − μ)g + μb)).

    MomentUm Orthogonalized by Newton–Schulz (Jordan et al. 2024): the momentum of a weight
    matrix is replaced by (approximately) its orthogonal polar factor ``U·Vᵀ``, so every
    singular direction moves by the same amount, and scaled by ``c(A, B)`` (``adjust_lr_fn``).

    ``chain(EmaMomentum, Orthogonalize, ScaleByMatrixShape, AddDecoupledWeightDecay,
    ScaleByLearningRate)``; same API, defaults and state (``momentum_buffer``) as
    ``torch.optim.Muon``. For **2-D parameters only** (the hidden layers' weight matrices).
    As torch's documentation recommends, optimise the others — biases, norm layers,
    embeddings and the output layer — with AdamW, for instance as one optimizer through
    :mod:`descentlab.optim.grouping`::

        from descentlab.optim.grouping import MultiOptimizer, module_type, name, ndim, partition
        hidden = ndim(2) & ~module_type(nn.Embedding) & ~name("head.*")
        groups = partition(model, {"muon": hidden, "adamw": ~hidden})
        opt = MultiOptimizer({"muon": Muon(groups["muon"], lr=0.02),
                              "adamw": AdamW(groups["adamw"], lr=3e-4, weight_decay=0.01)})
    """

    store_step = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = NS_EPS,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        *,
        nonfinite: NonFinitePolicy = None,
        fast: bool | None = None,
    ) -> None:
        arguments = constructor_arguments(locals())
        rule = chain(EmaMomentum(), Orthogonalize(), ScaleByMatrixShape(), AddDecoupledWeightDecay(),
                     ScaleByLearningRate())
        super().__init__(params, rule, **arguments)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            p = p[1] if isinstance(p, tuple) else p
            if isinstance(p, Tensor) and p.ndim != 2:
                raise ValueError(
                    f"Muon only supports 2-D parameters; parameter #{i} of this group has shape "
                    f"{tuple(p.shape)} (optimise it with AdamW, see the Muon docstring)"
                )
        super().add_param_group({**param_group, "params": params})
