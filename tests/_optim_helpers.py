"""Shared helpers for the optimizer tests: a small MLP, a data set and comparisons."""

from __future__ import annotations

import copy

import torch
from torch import nn

FLOAT64_RTOL = 1e-10


def make_mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """5 → 8 → 3 tanh MLP (91 parameters in four tensors)."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.5)
    return model


def make_data(seed: int = 1, n: int = 32, dtype: torch.dtype = torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen, dtype=dtype)
    y = torch.randn(n, 3, generator=gen, dtype=dtype)
    return x, y


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def batch(step: int, x: torch.Tensor, y: torch.Tensor, size: int = 8):
    """A deterministic mini-batch for ``step`` (different batches → noisy gradients)."""
    start = (step * size) % len(x)
    return x[start : start + size], y[start : start + size]


def twin(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def set_grads_from(reference: nn.Module, *others: nn.Module, x, y) -> torch.Tensor:
    """Compute the loss gradient at ``reference`` and give every model the same gradients."""
    for p in reference.parameters():
        p.grad = None
    loss = loss_fn(reference, x, y)
    loss.backward()
    for other in others:
        for p, q in zip(reference.parameters(), other.parameters()):
            q.grad = None if p.grad is None else p.grad.clone()
    return loss.detach()


def max_relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max|a − b| / max(max|b|, tiny)`` — a per-tensor relative error."""
    scale = max(float(b.abs().max()), 1e-300)
    return float((a - b).abs().max()) / scale


def assert_params_close(model_a: nn.Module, model_b: nn.Module, rtol: float = FLOAT64_RTOL, what=""):
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.isfinite(a).all(), f"{what}: {name} is not finite"
        err = max_relative_error(a.detach(), b.detach())
        assert err <= rtol, f"{what}: parameter {name} differs, relative error {err:.3g} > {rtol:g}"


def assert_params_equal(model_a: nn.Module, model_b: nn.Module, what=""):
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.equal(a, b), f"{what}: parameter {name} not bit-identical"


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the distinct storages behind the optimizer's state tensors."""
    seen: dict[int, int] = {}
    for entry in optimizer.state.values():
        for value in entry.values():
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())
