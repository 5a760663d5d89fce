"""Gradient noise against batch size: "[a large batch] decreases the variance of the updates … increasing
the batch size has very similar effects to decreasing the learning rate" (notes 002, also 001) — measured.

With per-example gradients g_i = ∇θ ℓ(x_i, y_i) (``torch.func.vmap`` of ``torch.func.grad``) over the
N examples given, their mean ḡ and covariance Σ = (1/N) Σ_i (g_i − ḡ)(g_i − ḡ)ᵀ, the mean gradient
g_B of a batch of B examples drawn *without replacement* has::

    E[g_B] = ḡ,      E‖g_B − ḡ‖² = tr Σ / B · (N − B) / (N − 1)

(the finite-population correction; ≈ tr Σ / B when B ≪ N). An SGD step −η g_B has noise of size
η² tr Σ / B: halving B costs what doubling η² costs. McCandlish et al. 2018 ("An empirical model of
large-batch training") call B_simple = tr Σ / ‖ḡ‖² the *critical batch size* (their "simple noise
scale"): below it the noise dominates a step and doubling B nearly halves the steps needed, above it
a larger batch buys little.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from ..validation import check_callable, check_int

__all__ = ["GradientNoise", "gradient_noise", "per_example_gradients", "batch_gradient_variance"]


@dataclass(frozen=True)
class GradientNoise:
    """``trace_cov`` = tr Σ, ``grad_norm_sq`` = ‖ḡ‖², ``critical_batch`` = tr Σ / ‖ḡ‖² (McCandlish et al.'s
    B_simple), ``n`` = N, the number of examples."""

    trace_cov: float
    grad_norm_sq: float
    critical_batch: float
    n: int

    def batch_variance(self, batch_size: int) -> float:
        """E‖g_B − ḡ‖² = tr Σ / B · (N − B)/(N − 1) for a batch drawn without replacement."""
        b = check_int("batch_size", batch_size, low=1, high=self.n)
        return self.trace_cov / b * (self.n - b) / max(self.n - 1, 1)


def _check_data(inputs: Tensor, targets: Tensor) -> None:
    if not isinstance(inputs, Tensor) or not isinstance(targets, Tensor) or len(inputs) != len(targets):
        raise ValueError("inputs and targets must be tensors with one row per example")
    if len(inputs) < 2:
        raise ValueError(f"the gradient noise needs at least 2 examples, got {len(inputs)}")


def per_example_gradients(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    chunk_size: int | None = None,
) -> Tensor:
    """``[N, P]``: row i is ∇θ loss_fn(model(x_i), y_i), flattened over the trainable parameters (in
    ``model.parameters()`` order), each example run as a batch of one (the model's current train/eval
    mode applies: batch norm needs eval mode). ``chunk_size`` limits how many examples ``vmap`` runs at
    once."""
    check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> loss")
    _check_data(inputs, targets)
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, low=1)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def loss_one(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(model, {**p, **frozen, **buffers}, (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    grads = vmap(grad(loss_one), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, inputs, targets)
    return torch.cat([grads[name].reshape(len(inputs), -1) for name in names], dim=1)


def gradient_noise(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    chunk_size: int | None = None,
) -> GradientNoise:
    """tr Σ, ‖ḡ‖² and the critical batch tr Σ / ‖ḡ‖² over the N examples given (see the module docstring);
    sums in float64."""
    g = per_example_gradients(model, loss_fn, inputs, targets, chunk_size=chunk_size).double()
    mean = g.mean(0)
    trace = float(((g - mean) ** 2).sum(1).mean())
    norm_sq = float(mean.pow(2).sum())
    critical = trace / norm_sq if norm_sq > 0 else float("inf")
    return GradientNoise(trace, norm_sq, critical, len(g))


def batch_gradient_variance(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    batch_sizes: Sequence[int],
    *,
    draws: int = 200,
    generator: torch.Generator | None = None,
) -> dict[int, float]:
    """Monte-Carlo E‖g_B − ḡ‖² for each B: ``draws`` batches drawn without replacement, each g_B taken
    by an ordinary backward of the batch's mean loss (independent of :func:`per_example_gradients`);
    ḡ by a backward over all N. Gradients are taken with ``torch.autograd.grad``; ``.grad`` is left
    untouched."""
    check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> loss")
    _check_data(inputs, targets)
    draws = check_int("draws", draws, low=1)
    n = len(inputs)
    sizes = [check_int("batch_sizes[]", b, low=1, high=n) for b in batch_sizes]
    params = [p for p in model.parameters() if p.requires_grad]

    def flat_grad(x: Tensor, y: Tensor) -> Tensor:
        grads = torch.autograd.grad(loss_fn(model(x), y), params)
        return torch.cat([g.reshape(-1) for g in grads]).double()

    full = flat_grad(inputs, targets)
    result = {}
    for b in sizes:
        total = 0.0
        for _ in range(draws):
            index = torch.randperm(n, generator=generator)[:b]
            total += float((flat_grad(inputs[index], targets[index]) - full).pow(2).sum())
        result[b] = total / draws
    return result
