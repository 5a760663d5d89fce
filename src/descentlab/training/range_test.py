"""The learning-rate range test (Smith 2017, "Cyclical learning rates for training neural networks", §3.3;
the "LR finder" of fastai's ``lr_find``).

"If you have time to tune only one hyperparameter, tune the learning rate" (notes 001, Goodfellow).
The range test trains for a few steps while the learning rate grows from ``start`` to ``end``::

    exp:     η_i = start · (end / start)^(i / (steps − 1))        i = 0, …, steps − 1
    linear:  η_i = start + (end − start) · i / (steps − 1)

and records the loss ℓ_i of each mini-batch, smoothed by a debiased exponential moving average::

    a_i = β a_{i−1} + (1 − β) ℓ_i,   a_{−1} = 0,   s_i = a_i / (1 − β^{i+1})

The sweep ends early when ℓ_i is not finite or ``s_i > diverge · min_{j≤i} s_j``. A rule then reads a
learning rate off the curve s(log η) (see :meth:`RangeTest.suggest`).

The rate is written straight into ``group["lr"]`` of every param group before each step, so any
``torch.optim`` or descentlab optimizer works. With ``restore=True`` (default) the model's parameters,
buffers, gradients and train/eval mode, the optimizer's state and hyperparameters, and the torch
(CPU and CUDA), NumPy and Python RNG states are put back in a ``finally`` block — bit for bit, also
when the sweep raised. That is the defect of the tools this replaces: torch-lr-finder (#11),
Lightning's tuner (#6675) and fastai (#3013) left the model or optimizer changed after the test.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..validation import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_number,
    check_positive,
    check_unit_interval,
)
from ._state import ModelSnapshot, OptimizerSnapshot, rng_state, set_rng_state

__all__ = ["RangeTest", "RangeRun", "lr_range_test", "RULES", "DEFAULT_RULE"]

RULES = ("valley", "minimum/10", "steepest", "combined")
#: the rule :meth:`RangeTest.suggest` uses by default — chosen by measurement
#: (``benchmarks/range_test_rules.py``, numbers in :meth:`RangeTest.suggest`): within a factor of 3
#: of the grid-best rate for SGD + momentum and Adam on digits, then checked on an MSE regression,
#: with the smallest worst-case error.
DEFAULT_RULE = "combined"


@dataclass
class RangeRun:
    """One sweep: the rates tried, the raw and smoothed losses, and why it ended
    (``"end"``: all ``steps`` done; ``"diverged"``: s_i > diverge · best; ``"nonfinite"``;
    ``"data"``: the batches ran out)."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    stopped_by: str

    def suggestion(self, rule: str) -> float:
        return _suggest(np.asarray(self.lrs), np.asarray(self.smoothed), rule)


@dataclass
class RangeTest:
    """The result of :func:`lr_range_test`: one :class:`RangeRun` per seed.

    ``lambda_max`` is the largest Hessian eigenvalue at the starting point when a probe batch was
    given; ``curvature_lr = 2 / λ_max`` is the stability limit of plain gradient descent on the
    local quadratic model (beyond it the step grows along the top eigenvector). With momentum β the
    heavy-ball limit is 2(1 + β)/λ_max, and adaptive methods rescale the curvature, so the line is
    a landmark, not a suggestion.
    """

    runs: list[RangeRun]
    mode: str
    smooth: float
    diverge: float
    lambda_max: float | None = None
    restored: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    # the first seed's curve, for the common single-seed case
    @property
    def lrs(self) -> list[float]:
        return self.runs[0].lrs

    @property
    def losses(self) -> list[float]:
        return self.runs[0].losses

    @property
    def smoothed(self) -> list[float]:
        return self.runs[0].smoothed

    @property
    def curvature_lr(self) -> float | None:
        if self.lambda_max is None or not self.lambda_max > 0:
            return None
        return 2.0 / self.lambda_max

    def suggest(self, rule: str = DEFAULT_RULE) -> float:
        """The suggested learning rate; with several seeds the geometric mean of the seeds' suggestions.

        Rules, on the smoothed loss s against x = log10 η (finite points only):

        * ``"minimum/10"`` — η at the minimum of s, divided by 10 (fastai's ``lr_min``): the minimum
          sits at the edge of divergence, a decade below is usually safe;
        * ``"steepest"`` — η where the slope ds/dx is most negative, before the minimum; the slope is a
          least-squares line over ±½ decade, so the wiggles of a noisy curve do not fool it as the
          two-point difference of torch-lr-finder and Lightning does (torch-lr-finder #106,
          Lightning #14167);
        * ``"valley"`` — the longest stretch over which s keeps decreasing (the longest decreasing
          subsequence of s) and the point halfway along it, in log η (fastai's ``valley``). Measured
          to fail here: a model that trains slowly at tiny rates has a slowly *decreasing* plateau, so
          the valley starts near ``start`` and its middle depends on ``start``;
        * ``"combined"`` (default) — the geometric mean of ``"steepest"`` and ``"minimum/10"``,
          η = √(η_steepest · η_min / 10): the steepest descent sits a little above the best rate, a
          decade below the minimum a little below it.

        Measured by ``benchmarks/range_test_rules.py`` (defaults: 1e-7 → 10 in 100 steps, β = 0.98,
        batch 64; 3 seeds; grid of ¼ decades, training loss after 150 steps), suggestion / grid-best:
        digits MLP, SGD + momentum 0.9: combined 1.07, minimum/10 0.76, steepest 1.51, valley 0.01;
        digits, Adam: 1.15, 0.92, 1.43, 0.02; checked on a second problem, a teacher–student MSE
        regression: SGD + momentum 0.42, 0.52, 0.34, 0.01; Adam 1.08, 1.26, 0.93, 0.02.
        No rule is right everywhere: with batch 32 or 128 "combined" still passed 7 of 8 cases
        (worst 0.28 × on the regression with SGD, batch 128), "minimum/10" 6 of 8 (worst 0.22 ×).
        Look at the plot.
        """
        check_choice("rule", rule, RULES)
        values = [run.suggestion(rule) for run in self.runs]
        return float(math.exp(sum(math.log(v) for v in values) / len(values)))

    def band(self, rule: str = DEFAULT_RULE) -> tuple[float, float]:
        """The smallest and the largest suggestion over the seeds."""
        check_choice("rule", rule, RULES)
        values = [run.suggestion(rule) for run in self.runs]
        return min(values), max(values)

    def suggestions(self) -> dict[str, float]:
        """Every rule's suggestion."""
        return {rule: self.suggest(rule) for rule in RULES}

    def plot(self, path: str | os.PathLike | None = None, *, title: str | None = None):
        """Loss against log η, raw and smoothed (a band over seeds), a marker per rule and, when a probe
        was given, the curvature prediction η = 2/λ_max as a vertical line. Returns the Figure; with
        ``path`` it is also written there (atomically)."""
        from .plots import plot_range_test

        return plot_range_test(self, path, title=title)


# -- the rules ----------------------------------------------------------------------------------
def _finite(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The finite points after a burn-in of the first 10 %, where the debiased average still rests on a
    handful of batches and its wiggles fool slope-based rules (Lightning #1767)."""
    keep = np.isfinite(smoothed)
    lrs, smoothed = lrs[keep], smoothed[keep]
    burn_in = len(lrs) // 10
    lrs, smoothed = lrs[burn_in:], smoothed[burn_in:]
    if len(lrs) < 3:
        raise ValueError(
            f"the range test recorded {len(lrs)} finite losses; a suggestion needs at least 3 "
            "(lower start, raise diverge or check the loss)"
        )
    return lrs, smoothed


def _minimum(lrs: np.ndarray, s: np.ndarray) -> float:
    return float(lrs[int(np.argmin(s))])


def _steepest(lrs: np.ndarray, s: np.ndarray, window: float = 0.5) -> float:
    """η of the most negative slope ds/dx before the minimum, the slope at x_i being the least-squares
    line through the points with |x_j − x_i| ≤ ``window`` decades (not a two-point difference, which
    the wiggles of a noisy curve fool: torch-lr-finder #106, Lightning #14167)."""
    x = np.log10(lrs)
    stop = int(np.argmin(s)) + 1
    best_slope, best_index = math.inf, 0
    for i in range(stop):
        near = np.nonzero(np.abs(x[:stop] - x[i]) <= window)[0]
        if len(near) < 3:
            continue
        xs, ys = x[near] - x[near].mean(), s[near] - s[near].mean()
        slope = float((xs * ys).sum() / (xs * xs).sum())
        if slope < best_slope:
            best_slope, best_index = slope, i
    return float(lrs[best_index])


def _valley(lrs: np.ndarray, s: np.ndarray) -> float:
    """Halfway (by index, i.e. in log η for the exp schedule) along the longest decreasing subsequence."""
    n = len(s)
    length = np.ones(n, dtype=np.int64)
    first = np.arange(n)
    for i in range(1, n):
        earlier = np.nonzero(s[:i] > s[i])[0]
        if len(earlier):
            j = earlier[np.argmax(length[earlier])]
            if length[j] + 1 > length[i]:
                length[i], first[i] = length[j] + 1, first[j]
    end = int(np.argmax(length))
    start = int(first[end])
    return float(lrs[start + (end - start) // 2])


def _suggest(lrs: np.ndarray, smoothed: np.ndarray, rule: str) -> float:
    lrs, s = _finite(lrs, smoothed)
    if rule == "minimum/10":
        return _minimum(lrs, s) / 10
    if rule == "steepest":
        return _steepest(lrs, s)
    if rule == "valley":
        return _valley(lrs, s)
    if rule == "combined":
        return math.sqrt(_steepest(lrs, s) * _minimum(lrs, s) / 10)
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


# -- the sweep ----------------------------------------------------------------------------------
def _schedule(start: float, end: float, steps: int, mode: str) -> list[float]:
    if mode == "exp":
        return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]
    return [start + (end - start) * i / (steps - 1) for i in range(steps)]


def _batches_forever(batches: Iterable) -> Iterator:
    """The batches, re-iterated when they run out (a one-shot iterator ends the sweep instead)."""
    while True:
        count = 0
        for batch in batches:
            count += 1
            yield batch
        if count == 0 or iter(batches) is batches:
            return


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def _sweep(model, optimizer, loss_fn, batches, rates, smooth, diverge) -> RangeRun:
    lrs, losses, smoothed = [], [], []
    average, best, stopped_by = 0.0, math.inf, "data"
    data = _batches_forever(batches)
    for i, lr in enumerate(rates):
        try:
            inputs, targets = next(data)
        except StopIteration:
            break
        _set_lr(optimizer, lr)
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        value = float(loss.detach())
        lrs.append(lr)
        losses.append(value)
        if not math.isfinite(value):
            smoothed.append(math.nan)
            stopped_by = "nonfinite"
            break
        average = smooth * average + (1 - smooth) * value
        s = average / (1 - smooth ** (i + 1))
        smoothed.append(s)
        if s > diverge * best:
            stopped_by = "diverged"
            break
        best = min(best, s)
        loss.backward()
        optimizer.step()
    else:
        stopped_by = "end"
    return RangeRun(lrs, losses, smoothed, stopped_by)


def _lambda_max(model: nn.Module, loss_fn, probe) -> float:
    from ..curvature import hessian_operator, top_eigenpairs

    inputs, targets = probe
    operator = hessian_operator(model, loss_fn, inputs, targets)
    values, _ = top_eigenpairs(operator, 1, generator=torch.Generator().manual_seed(0))
    return float(values[0])


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Iterable,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    mode: str = "exp",
    smooth: float = 0.98,
    diverge: float = 4.0,
    seeds: int = 1,
    restore: bool = True,
    probe: tuple[Tensor, Tensor] | None = None,
) -> RangeTest:
    """Sweep the learning rate from ``start`` to ``end`` over ``steps`` optimizer steps (Smith 2017).

    ``batches`` yields ``(inputs, targets)``; the loss is ``loss_fn(model(inputs), targets)``. It is
    iterated again when it runs out (a DataLoader, a list), so ``steps`` may exceed its length.

    ``seeds > 1`` repeats the sweep from the same starting state with torch, NumPy and Python seeded
    ``0, 1, …`` (a shuffling loader, dropout and augmentation then differ); the result holds one run
    per seed and :meth:`RangeTest.plot` draws the band. ``probe=(inputs, targets)`` also computes the
    top Hessian eigenvalue at the start (Lanczos, :mod:`descentlab.curvature`) for the 2/λ_max line.

    ``restore=True`` puts the model, the optimizer (state *and* hyperparameters) and the RNGs back
    exactly as they were, in a ``finally`` block; ``restore=False`` leaves them as the (last) sweep
    left them. Every argument is checked before any work: a bad one raises ``ValueError``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(optimizer, "param_groups") or not hasattr(optimizer, "state_dict"):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> loss")
    if not isinstance(batches, Iterable):
        raise ValueError(f"batches must be an iterable of (inputs, targets), got {type(batches).__name__}")
    start = check_positive("start", start)
    end = check_number("end", end, low=start, low_open=True)
    steps = check_int("steps", steps, low=3)
    mode = check_choice("mode", mode, ("exp", "linear"))
    smooth = check_unit_interval("smooth", smooth)
    diverge = check_number("diverge", diverge, low=1.0, low_open=True)
    seeds = check_int("seeds", seeds, low=1)
    restore = check_bool("restore", restore)
    if probe is not None and (not isinstance(probe, (tuple, list)) or len(probe) != 2):
        raise ValueError(f"probe must be a pair (inputs, targets) or None, got {type(probe).__name__}")

    rates = _schedule(start, end, steps, mode)
    model_before, optimizer_before = ModelSnapshot(model), OptimizerSnapshot(optimizer)
    rng_before = rng_state()
    runs: list[RangeRun] = []
    lambda_max = None
    try:
        if probe is not None:
            lambda_max = _lambda_max(model, loss_fn, probe)
        model.train()
        for seed in range(seeds):
            if seed > 0:
                model_before.restore(model)
                optimizer_before.restore(optimizer)
            if seeds > 1:
                _seed_everything(seed)
            runs.append(_sweep(model, optimizer, loss_fn, batches, rates, smooth, diverge))
    finally:
        if restore:
            model_before.restore(model)
            optimizer_before.restore(optimizer)
            set_rng_state(rng_before)
    return RangeTest(
        runs,
        mode,
        smooth,
        diverge,
        lambda_max,
        restore,
        meta={"start": start, "end": end, "steps": steps, "seeds": seeds},
    )


def _seed_everything(seed: int) -> None:
    import random

    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeding the global RNG is the point (restored afterwards)
    random.seed(seed)
