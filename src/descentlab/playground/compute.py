"""The playground's computations, each run by the real library: races, basin maps, phase maps, curvature.

Basin maps run thousands of starts as *one* batched tensor: the landscape functions work on ``(..., 2)``
tensors, so ``f(W).sum()`` of a batch ``W`` of shape ``(N, 2)`` has the per-start gradients as its
gradient, and an elementwise optimizer (every coordinate updated on its own: SGD, Adam, RMSprop, ...)
stepping ``W`` takes exactly the steps it would take on each start alone. Optimizers with a global
statistic (clipping by the global norm, line searches, L-BFGS) would mix the starts, so they are refused.

A phase map races one optimizer over a grid of two hyperparameters (log learning rate × β) as one
optimizer with one parameter group per cell — again the library's own update, every cell independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..lab import optimizer_registry
from ..landscapes import Landscape, _polish, get_landscape
from ..optim.chain_optimizer import ChainOptimizer
from ..specs import build_from_spec, parse_spec, resolve_name
from .formula import formula_function

__all__ = [
    "landscape_from_request",
    "landscape_grid",
    "basin_map",
    "phase_map",
    "curvature_along",
    "custom_landscape",
]


def custom_landscape(formula: str, domain: list[list[float]] | None = None) -> Landscape:
    """A :class:`Landscape` from a typed formula (see :mod:`.formula`): minima found on a 61 × 61 grid and
    polished with SciPy; those that stay finite and inside the domain are kept (the grid's lowest point
    if none does)."""
    fn = formula_function(formula)
    box = tuple(tuple(float(v) for v in pair) for pair in (domain or [[-2.0, 2.0], [-2.0, 2.0]]))
    (x0, x1), (y0, y1) = box
    if not (x0 < x1 and y0 < y1) or not all(math.isfinite(v) for pair in box for v in pair):
        raise ValueError(f"domain must be [[x0, x1], [y0, y1]] with x0 < x1 and y0 < y1, got {domain!r}")
    xs, ys = np.linspace(x0, x1, 61), np.linspace(y0, y1, 61)
    grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys), -1))
    with torch.no_grad():
        z = fn(grid).numpy()
    if not np.isfinite(z).any():
        raise ValueError("formula: it is not finite anywhere in the domain")
    z = np.where(np.isfinite(z), z, np.inf)
    padded = np.pad(z, 1, constant_values=np.inf)
    local = np.ones_like(z, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dx or dy:
                local &= z <= padded[1 + dy : 62 + dy, 1 + dx : 62 + dx]
    order = np.argsort(z[local])[:4]
    guesses = [(float(xs[j]), float(ys[i])) for i, j in np.argwhere(local)[order]]
    minima, values = [], []
    try:
        positions, found = _polish(fn, guesses)
    except Exception:  # SciPy wandered off to a non-finite region: keep the grid points
        positions, found = (
            tuple(guesses),
            tuple(float(fn(torch.tensor(g, dtype=torch.float64))) for g in guesses),
        )
    for point, value in zip(positions, found):
        inside = x0 <= point[0] <= x1 and y0 <= point[1] <= y1
        if (
            inside
            and math.isfinite(value)
            and all(np.hypot(point[0] - m[0], point[1] - m[1]) > 1e-3 for m in minima)
        ):
            minima.append(point)
            values.append(value)
    if not minima:
        i, j = np.unravel_index(np.argmin(z), z.shape)
        minima, values = [(float(xs[j]), float(ys[i]))], [float(z[i, j])]
    order = np.argsort(values)
    return Landscape(
        name="custom",
        fn=fn,
        dim=2,
        domain=box,
        minima=tuple(tuple(minima[i]) for i in order),
        minimum_values=tuple(values[i] for i in order),
        start=(x0 + 0.8 * (x1 - x0), y0 + 0.8 * (y1 - y0)),
        formula=f"z = {formula}",
    )


def landscape_from_request(name: str | None, formula: str | None, domain=None) -> Landscape:
    """The built-in landscape ``name`` (a spec such as ``quadratic(kappa=100)``) or a typed formula."""
    if formula:
        return custom_landscape(formula, domain)
    landscape = get_landscape(name or "two-minima")
    if landscape.dim != 2:
        raise ValueError(
            f"landscape: the playground draws 2-D landscapes; {landscape.name} has {landscape.dim}"
        )
    return landscape


def landscape_grid(landscape: Landscape, resolution: int) -> dict[str, Any]:
    """``f`` on a ``resolution × resolution`` grid over the domain (rows: y, columns: x), for drawing."""
    (x0, x1), (y0, y1) = landscape.domain
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    points = torch.from_numpy(np.stack(np.meshgrid(xs, ys), -1))
    with torch.no_grad():
        z = landscape(points).numpy()
    return {
        "x": [x0, x1],
        "y": [y0, y1],
        "resolution": resolution,
        "z": z.tolist(),
        "minima": [list(m) for m in landscape.minima],
        "minimum_values": list(landscape.minimum_values),
        "start": list(landscape.start),
        "formula": landscape.formula,
        "name": landscape.name,
    }


def _elementwise_optimizer(spec: str) -> tuple[type, dict[str, Any]]:
    registry = optimizer_registry()
    name, kwargs = parse_spec(spec, "optimizer")
    key = resolve_name(name, registry, "optimizer", spec)
    build_from_spec(spec, registry, "optimizer", [torch.zeros(2, dtype=torch.float64, requires_grad=True)])
    cls = registry[key]
    probe = cls([torch.zeros(2, dtype=torch.float64, requires_grad=True)], **kwargs)
    if (
        not isinstance(probe, ChainOptimizer)
        or not probe.transform.elementwise
        or any(t.has_statistic for t in probe.transform.leaves)
    ):
        raise ValueError(
            f"optimizer spec {spec!r}: a basin or phase map runs every start in one batched tensor, "
            "which needs an elementwise optimizer (each coordinate updated on its own: sgd, adam, "
            "rmsprop, adagrad, ...); this one is not"
        )
    return cls, kwargs


def _tolerance(landscape: Landscape) -> float:
    return 1e-3 * landscape.diagonal


def _basins_of(landscape: Landscape, history: Tensor, tol: float, hold: int) -> tuple[np.ndarray, np.ndarray]:
    """Per start: the minimum it converged to (−1: none, −2: diverged) and the step it converged at."""
    minima = torch.tensor(landscape.minima, dtype=torch.float64)
    distance = torch.cdist(history.reshape(-1, 2), minima).reshape(history.shape[0], history.shape[1], -1)
    nearest = distance.argmin(-1)
    inside = distance.min(-1).values <= tol  # (steps + 1, N)
    steps1, n = inside.shape
    window = min(hold, steps1)
    counts = torch.nn.functional.conv1d(
        inside.T.double()[:, None, :], torch.ones(1, 1, window, dtype=torch.float64)
    )
    held = counts[:, 0, :] >= window - 0.5  # (N, steps + 2 - window)
    same = torch.ones_like(held)
    for k in range(window):  # the same minimum throughout the window
        same &= nearest[k : k + held.shape[1]].T == nearest[: held.shape[1]].T
    held &= same
    any_held = held.any(1)
    first = torch.where(any_held, held.float().argmax(1), torch.full((n,), -1))
    which = torch.where(any_held, nearest[first.clamp(min=0), torch.arange(n)], torch.full((n,), -1))
    finite = torch.isfinite(history).all(-1).all(0)
    which = torch.where(finite, which, torch.full((n,), -2))
    return which.numpy(), first.numpy()


def basin_map(
    landscape: Landscape,
    spec: str,
    resolution: int,
    steps: int,
    hold: int = 10,
    deadline: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Which minimum each of ``resolution²`` starts reaches with ``spec``, and the step it converges at.

    All starts are one ``(N, 2)`` parameter tensor stepped by one optimizer (see the module docstring).
    """
    cls, kwargs = _elementwise_optimizer(spec)
    (x0, x1), (y0, y1) = landscape.domain
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    starts = torch.from_numpy(np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).copy())
    param = starts.clone().requires_grad_(True)
    optimizer = cls([param], **kwargs)
    history = [param.detach().clone()]
    done = steps
    for k in range(steps):
        optimizer.zero_grad()
        landscape(param).sum().backward()
        optimizer.step()
        history.append(param.detach().clone())
        if deadline is not None and deadline():
            done = k + 1
            break
    path = torch.stack(history)
    which, first = _basins_of(landscape, path, _tolerance(landscape), hold)
    return {
        "resolution": resolution,
        "steps": done,
        "x": [x0, x1],
        "y": [y0, y1],
        "minimum": which.reshape(resolution, resolution).tolist(),
        "converged_at": first.reshape(resolution, resolution).tolist(),
        "minima": [list(m) for m in landscape.minima],
        "optimizer": spec,
        "starts": int(len(starts)),
    }


def phase_map(
    landscape: Landscape,
    name: str,
    start,
    lrs: list[float],
    betas: list[float],
    beta_key: str,
    steps: int,
    deadline: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Final loss gap and steps to converge of optimizer ``name`` for every (learning rate, β) pair, from
    ``start``: one parameter group per cell, so each cell is its own run of the library's update."""
    registry = optimizer_registry()
    key = resolve_name(name, registry, "optimizer", name)
    cls = registry[key]
    if beta_key.startswith("betas["):
        index = int(beta_key[6])

        def options(beta: float) -> dict[str, Any]:
            pair = [0.9, 0.999]
            pair[index] = beta
            return {"betas": tuple(pair)}
    else:

        def options(beta: float) -> dict[str, Any]:
            return {beta_key: beta}

    start_t = torch.tensor(start, dtype=torch.float64)
    params, groups = [], []
    for beta in betas:
        for lr in lrs:
            p = start_t.clone().requires_grad_(True)
            params.append(p)
            groups.append({"params": [p], "lr": lr, **options(beta)})
    spec = f"{key}(lr={lrs[0]!r}, {beta_key.split('[')[0]}={options(betas[0])[beta_key.split('[')[0]]!r})"
    build_from_spec(spec, registry, "optimizer", [torch.zeros(2, dtype=torch.float64, requires_grad=True)])
    optimizer = cls(groups)
    best = min(landscape.minimum_values)
    history = [torch.stack([p.detach().clone() for p in params])]
    done = steps
    for k in range(steps):
        optimizer.zero_grad()
        stacked = torch.stack(params)
        landscape(stacked).sum().backward()
        optimizer.step()
        history.append(torch.stack([p.detach().clone() for p in params]))
        if deadline is not None and deadline():
            done = k + 1
            break
    path = torch.stack(history)
    which, first = _basins_of(landscape, path, _tolerance(landscape), 10)
    with torch.no_grad():
        gap = (landscape(path[-1]) - best).numpy()
    shape = (len(betas), len(lrs))
    return {
        "lrs": lrs,
        "betas": betas,
        "beta_key": beta_key,
        "optimizer": key,
        "steps": done,
        "gap": [[v if math.isfinite(v) else None for v in row] for row in gap.reshape(shape).tolist()],
        "minimum": which.reshape(shape).tolist(),
        "converged_at": first.reshape(shape).tolist(),
    }


def curvature_along(landscape: Landscape, points: np.ndarray) -> dict[str, list[float]]:
    """Hessian eigenvalues (λ_min, λ_max) and κ = |λ_max|/|λ_min| at every point of a path, batched.

    Reverse-over-reverse on the whole path at once (the points are independent, so the gradient of
    ``Σ_i ∂f/∂x_j (w_i)`` is row ``j`` of every point's Hessian): plain autograd, which, unlike
    ``torch.func``'s forward mode, is safe in the server's worker threads.
    """
    w = torch.as_tensor(points, dtype=torch.float64)
    finite = torch.isfinite(w).all(-1)
    w = torch.where(finite[:, None], w, torch.zeros_like(w)).clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(landscape(w).sum(), w, create_graph=True)
        rows = [torch.autograd.grad(grad[:, j].sum(), w, retain_graph=j == 0)[0] for j in range(w.shape[1])]
    hessians = torch.stack(rows, dim=1).detach()
    hessians = 0.5 * (hessians + hessians.transpose(1, 2))
    values = torch.linalg.eigvalsh(hessians)
    low, high = values[:, 0], values[:, -1]
    kappa = high.abs() / low.abs().clamp(min=1e-300)
    return {"lambda_min": low.tolist(), "lambda_max": high.tolist(), "kappa": kappa.tolist()}
