"""The fused executor: torch's one-pass kernels, for the chains they implement exactly.

torch ships fused kernels for four of the notes' optimizers — ``torch._fused_adam_``,
``_fused_adamw_``, ``_fused_sgd_`` and ``_fused_adagrad_`` — which read and write each
tensor once per step and run the loop over parameter tensors in C++. A bucket whose rule
has *exactly* the structure of one of these chains (the same transforms in the same order
with the same options, compared by :meth:`~descentlab.transforms.Transform.structure`)
and whose hyperparameters the kernel takes may run the kernel instead of the chain
runner. The math is not written again: the transforms define it, and the trajectory tests
pin both to ``torch.optim`` (the kernel and the chain agree to rounding). This executor is
only *how* a step runs — the fastest one torch has for these chains on small and medium
models, with no compilation.

=================================  =========================================
chain                              kernel
=================================  =========================================
Maximize, AddWeightDecay,          ``torch._fused_adam_``
ScaleByAdam, ScaleByLearningRate
Maximize, ScaleByAdam,             ``torch._fused_adamw_``
AddDecoupledWeightDecay, lr
Maximize, AddWeightDecay,          ``torch._fused_sgd_``
Momentum, ScaleByLearningRate
Maximize, AddWeightDecay,          ``torch._fused_adagrad_``
ScaleByAdaGrad, ScaleByLearningRate
=================================  =========================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..transforms import (
    AddDecoupledWeightDecay,
    AddWeightDecay,
    Maximize,
    Momentum,
    ScaleByAdaGrad,
    ScaleByAdam,
    ScaleByLearningRate,
    Transform,
    chain,
)
from .layout import BucketLayout

__all__ = ["FusedKernel", "kernel_for", "run_fused"]

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class FusedKernel:
    """A torch fused kernel and the chain it implements."""

    name: str
    rule: Transform  # the chain, as the named optimizer builds it
    devices: tuple[str, ...]
    call: Callable[..., None]  # (params, grads, state lists, step tensors, group, first_step)
    needs_constant_lr: bool = True  # lr_decay must be 0 (only Adagrad's kernel decays it)

    def takes(self, group: Mapping[str, Any]) -> bool:
        """Whether the kernel implements the group's hyperparameters (Python numbers only)."""
        if any(isinstance(value, Tensor) for value in group.values()):
            return False
        return not (self.needs_constant_lr and group.get("lr_decay", 0) != 0)


def _adam(decoupled: bool):
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_

    def call(params, grads, state, steps, group, first_step) -> None:
        beta1, beta2 = group["betas"]
        kernel(
            params, grads, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq", []), steps,
            amsgrad=group["amsgrad"], lr=group["lr"], beta1=beta1, beta2=beta2,
            weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
            grad_scale=None, found_inf=None,
        )

    return call


def _sgd(params, grads, state, steps, group, first_step) -> None:
    torch._fused_sgd_(
        params, grads, state.get("momentum_buffer", []),
        weight_decay=group["weight_decay"], momentum=group["momentum"], lr=group["lr"],
        dampening=group["dampening"], nesterov=group["nesterov"], maximize=group["maximize"],
        is_first_step=first_step, grad_scale=None, found_inf=None,
    )


def _adagrad(params, grads, state, steps, group, first_step) -> None:
    torch._fused_adagrad_(
        params, grads, state["sum"], steps,
        lr=group["lr"], lr_decay=group["lr_decay"], weight_decay=group["weight_decay"], eps=group["eps"],
        maximize=group["maximize"], grad_scale=None, found_inf=None,
    )


_ALL_DEVICES = ("cpu", "cuda", "mps", "xpu")
KERNELS = [
    FusedKernel("torch._fused_adam_",
                chain(Maximize(), AddWeightDecay(), ScaleByAdam(), ScaleByLearningRate()),
                _ALL_DEVICES, _adam(False)),
    FusedKernel("torch._fused_adamw_",
                chain(Maximize(), ScaleByAdam(), AddDecoupledWeightDecay(), ScaleByLearningRate()),
                _ALL_DEVICES, _adam(True)),
    FusedKernel("torch._fused_sgd_", chain(Maximize(), AddWeightDecay(), Momentum(), ScaleByLearningRate()),
                _ALL_DEVICES, _sgd),
    FusedKernel("torch._fused_adagrad_",
                chain(Maximize(), AddWeightDecay(), ScaleByAdaGrad(), ScaleByLearningRate()),
                ("cpu",), _adagrad, needs_constant_lr=False),
]
_BY_STRUCTURE = {kernel.rule.structure(): kernel for kernel in KERNELS}


def kernel_for(rule: Transform) -> FusedKernel | None:
    """The fused kernel that implements exactly this chain, if torch has one."""
    return _BY_STRUCTURE.get(rule.structure())


def layout_supported(kernel: FusedKernel, layout: BucketLayout) -> bool:
    p = layout.params[0]
    return layout.contiguous and p.device.type in kernel.devices and p.dtype in _DTYPES


def run_fused(kernel: FusedKernel, layout: BucketLayout, group: Mapping[str, Any]) -> None:
    """One step of a bucket (every gradient present, one step count) with the kernel."""
    first_step = layout.step == 0
    layout.advance_all()  # the kernels read the step count after its increment, as torch's
    if layout.owns_storage:
        params, grads = [layout.flat_param], [layout.flat_grad]
        state = {key: [flat] for key, flat in layout.state.items()}
        steps = [layout.steps[0]]
    else:
        params, grads = layout.params, [p.grad for p in layout.params]
        state, steps = layout.state_views, layout.step_views
    kernel.call(params, grads, state, steps, group, first_step)
