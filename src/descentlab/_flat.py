"""Parameters as one flat vector ``x``: the one place that flattens, splits and writes them back.

The closure-driven solvers, the curvature operators and the SciPy bridge all see a list of
parameter tensors as a single vector ``x ∈ ℝⁿ`` (``n`` = the total number of elements, in the
order of the list), as ``torch.optim.LBFGS`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["flatten", "unflatten", "trainable_parameters", "unflatten_named", "FlatParameters"]


def flatten(tensors: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    """One vector from tensors shaped like ``like``; a ``None`` (no gradient) counts as zeros."""
    return torch.cat([(torch.zeros_like(p) if t is None else t).reshape(-1) for t, p in zip(tensors, like)])


def unflatten(x: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Views of ``x`` shaped like the tensors of ``like`` (differentiable: no copy)."""
    return [piece.view_as(p) for piece, p in zip(torch.split(x, [p.numel() for p in like]), like)]


def trainable_parameters(model: nn.Module) -> list[tuple[str, Tensor]]:
    """``(name, parameter)`` for the parameters with ``requires_grad``, in ``named_parameters`` order."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def unflatten_named(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """``x`` split into ``{name: tensor}`` for ``torch.func.functional_call(model, ...)``."""
    named = trainable_parameters(model)
    return dict(zip((name for name, _ in named), unflatten(x, [p for _, p in named])))


class FlatParameters:
    """A list of parameter tensors read and written as one flat vector.

    ``get()`` copies the parameters out, ``set(x)`` copies ``x`` in (converting dtype and device),
    ``grad()`` gathers their ``.grad`` (zeros where it is ``None``).
    """

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
        self.numel = sum(p.numel() for p in self.params)

    @property
    def dtype(self) -> torch.dtype:
        return self.params[0].dtype

    @property
    def device(self) -> torch.device:
        return self.params[0].device

    def get(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    @torch.no_grad()
    def set(self, x: Tensor) -> None:
        for p, piece in zip(self.params, unflatten(x, self.params)):
            p.copy_(piece)

    def grad(self) -> Tensor:
        return flatten([p.grad for p in self.params], self.params)

    def split(self, x: Tensor) -> list[Tensor]:
        """``x`` as tensors shaped like the parameters (views)."""
        return unflatten(x, self.params)
