"""torch.optim keyword arguments that descentlab accepts for drop-in compatibility."""

from __future__ import annotations


def check_torch_flags(
    optimizer: str,
    *,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
) -> None:
    """``foreach`` and ``fused`` are accepted and ignored (descentlab picks its own
    execution path); ``capturable`` and ``differentiable`` are not supported."""
    del foreach, fused
    if capturable:
        raise ValueError(f"{optimizer}: capturable=True (CUDA graphs) is not supported")
    if differentiable:
        raise ValueError(f"{optimizer}: differentiable=True is not supported")
