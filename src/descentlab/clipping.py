"""Gradient clipping for plain training loops (notes 002; Pascanu et al. 2013).

Call between ``loss.backward()`` and ``optimizer.step()``; each function works on any
torch optimizer and returns the **pre-clip** norm, which is worth logging::

    loss.backward()
    norm = clip_by_global_norm(model.parameters(), max_norm=1.0)
    optimizer.step()

The same rules exist as transforms for chains (:class:`~descentlab.transforms.ClipByValue`,
:class:`~descentlab.transforms.ClipByGlobalNorm`, :class:`~descentlab.transforms.ClipByParamNorm`).

A non-finite total norm (a NaN/inf gradient, or an overflowing norm) is handled by
``nonfinite``: ``"raise"`` (default) raises :class:`~descentlab.validation.NonFiniteError`;
``"skip"`` drops the gradients (sets every ``.grad`` to ``None``) so that the next
``optimizer.step()`` changes neither parameters nor optimizer state — the step is skipped
— and returns the non-finite norm so the caller can count it; ``None`` clips anyway, as
``torch.nn.utils`` does by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.nn.utils import clip_grad_value_, clip_grads_with_norm_, get_total_norm

from .validation import NonFiniteError, NonFinitePolicy, check_nonfinite_policy, check_positive

__all__ = ["clip_by_value", "clip_by_global_norm", "clip_by_param_norm", "NonFiniteError"]

Params = Tensor | Iterable[Tensor]


def _with_grads(parameters: Params) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise ValueError(f"parameters[{i}] must be a tensor, got {type(p).__name__}")
    return [p for p in params if p.grad is not None]


def _norm_type(value: float) -> float:
    """``q`` of the ``q``-norm: a finite number > 0, or ``inf`` (the max-norm)."""
    return math.inf if value == math.inf else check_positive("norm_type", value)


def _handle_nonfinite(params: list[Tensor], total: Tensor, policy: NonFinitePolicy, what: str) -> bool:
    """True when the caller should stop (gradients dropped)."""
    if policy is None or bool(torch.isfinite(total)):
        return False
    if policy == "raise":
        raise NonFiniteError(
            f"{what}: the total gradient norm is {total.item()} (a NaN/inf gradient or an overflow); "
            "pass nonfinite='skip' to skip such steps"
        )
    for p in params:
        p.grad = None
    return True


def _clip_with_total_norm(
    parameters: Params, norm_type: float, nonfinite: NonFinitePolicy, what: str,
    clip: Callable[[list[Tensor], Tensor], object],
) -> Tensor:
    """Check the options, take the total norm of the gradients, apply the non-finite policy, then
    ``clip(params, total)``; return the total norm from before clipping."""
    q = _norm_type(norm_type)
    policy = check_nonfinite_policy(nonfinite)
    params = _with_grads(parameters)
    if not params:
        return torch.tensor(0.0)
    total = get_total_norm([p.grad for p in params], q)
    if not _handle_nonfinite(params, total, policy, what):
        clip(params, total)
    return total


@torch.no_grad()
def clip_by_value(
    parameters: Params, clip_value: float, *, norm_type: float = 2.0, nonfinite: NonFinitePolicy = "raise"
) -> Tensor:
    """Clip every gradient entry to ``[−c, c]`` (``torch.nn.utils.clip_grad_value_``).

    Returns the total ``norm_type``-norm of the gradients *before* clipping.
    """
    clip_value = check_positive("clip_value", clip_value)
    return _clip_with_total_norm(parameters, norm_type, nonfinite, "clip_by_value",
                                 lambda params, total: clip_grad_value_(params, clip_value))


@torch.no_grad()
def clip_by_global_norm(
    parameters: Params, max_norm: float, *, norm_type: float = 2.0, nonfinite: NonFinitePolicy = "raise"
) -> Tensor:
    """Clipping by norm (Pascanu et al. 2013) over all gradients together::

        ‖g‖ = (Σ_p ‖g_p‖^q)^{1/q}          (q = norm_type)
        g  ← g · min(1, c / (‖g‖ + 1e-6))

    (``torch.nn.utils.clip_grad_norm_``: the direction is kept, only the length is capped).
    Returns ``‖g‖`` before clipping.
    """
    max_norm = check_positive("max_norm", max_norm)
    return _clip_with_total_norm(parameters, norm_type, nonfinite, "clip_by_global_norm",
                                 lambda params, total: clip_grads_with_norm_(params, max_norm, total))


@torch.no_grad()
def clip_by_param_norm(
    parameters: Params, max_norm: float, *, norm_type: float = 2.0, nonfinite: NonFinitePolicy = "raise"
) -> Tensor:
    """Clip each parameter's gradient on its own: ``g_p ← g_p · min(1, c / (‖g_p‖ + 1e-6))``.

    Returns the vector of per-parameter norms before clipping (one entry per parameter that
    has a gradient, in order).
    """
    max_norm = check_positive("max_norm", max_norm)
    q = _norm_type(norm_type)
    policy = check_nonfinite_policy(nonfinite)
    params = _with_grads(parameters)
    if not params:
        return torch.zeros(0)
    norms = [get_total_norm([p.grad], q) for p in params]
    before = torch.stack([n.to(torch.float64) for n in norms])
    if _handle_nonfinite(params, before.sum(), policy, "clip_by_param_norm"):
        return before
    for p, norm in zip(params, norms):
        clip_grads_with_norm_([p], max_norm, norm)
    return before
