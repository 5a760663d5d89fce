"""Seeing staleness: synchronous against asynchronous SGD for 2 … 512 simulated workers, and its figure.

Shared by the ``descentlab distributed`` command and the demo report. On the noisy quadratic
(:class:`~descentlab.distributed.simulate.NoisyQuadratic`) at the learning rate 1/L, for each number of
workers M it runs

* synchronous SGD (one update per round with the mean of M gradients; a round waits for the slowest
  worker), and with ``backup`` workers dropped when there are stragglers;
* asynchronous SGD with a constant rate (diverges once the staleness is large enough), with η/τ
  (Zhang et al. 2016) and with delay compensation (Zheng et al. 2017; here with the exact curvature of
  the quadratic, the best a compensation can do),

with the same number of gradients for each (``updates``), so that loss against wall time compares
what M workers buy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..optim import SGD
from ..validation import check_int, check_number
from .result import Result
from .simulate import COMPUTE_TIMES, NoisyQuadratic, simulate_async, simulate_sync

__all__ = ["Run", "staleness_study", "plot_staleness_study", "ASYNC_VARIANTS"]

#: the asynchronous variants: label → server options
ASYNC_VARIANTS = {
    "async, constant η": {"lr_policy": "constant"},
    "async, η/τ": {"lr_policy": "staleness_aware"},
    "async, delay-compensated": {"exact_dc": True},
}


@dataclass
class Run:
    """One simulated run of the study."""

    label: str
    workers: int
    result: Result
    updates_per_time: float = field(default=math.nan)

    @property
    def final_loss(self) -> float:
        return self.result.losses[-1] if self.result.losses else math.nan

    @property
    def diverged(self) -> bool:
        start = max(self.result.losses[0], 1e-300)
        return not math.isfinite(self.final_loss) or self.final_loss > 1e6 * start

    @property
    def mean_staleness(self) -> float:
        tau = self.result.staleness()
        return float(tau.mean()) if len(tau) else 0.0

    @property
    def time(self) -> float:
        return self.result.times[-1] if self.result.times else math.nan


def staleness_study(
    workers: Sequence[int] = (2, 8, 64),
    *,
    updates: int = 2000,
    dim: int = 50,
    noise: float = 0.05,
    compute_time: str = "exponential",
    stragglers: int = 0,
    slowdown: float = 10.0,
    lr: float | None = None,
    seed: int = 0,
) -> list[Run]:
    """The runs described in the module docstring, for each M in ``workers``; ``lr`` defaults to 1/L."""
    for m in workers:
        check_int("workers", m, low=1, high=4096)
    check_int("updates", updates, low=1)
    check_int("dim", dim, low=1)
    if compute_time not in COMPUTE_TIMES:
        raise ValueError(f"compute_time must be one of {tuple(COMPUTE_TIMES)}, got {compute_time!r}")
    problem = NoisyQuadratic(dim, L=1.0, condition=10.0, noise=noise, seed=seed)
    lr = 1.0 / problem.L if lr is None else check_number("lr", lr, low=0.0, low_open=True)
    clock = COMPUTE_TIMES[compute_time]()

    def optimizer(params):
        return SGD(params, lr=lr)

    runs = []
    for m in workers:
        straggling = min(stragglers, m - 1) if m > 1 else 0
        common = {"compute_time": clock, "stragglers": straggling, "slowdown": slowdown, "seed": seed,
                  "loss_fn": problem.loss}
        rounds = max(1, updates // m)
        for backup in sorted({0, straggling}):
            label = f"sync, {backup} backup" if backup else "sync"
            result = simulate_sync(problem.gradient, problem.initial(), optimizer, num_workers=m,
                                   rounds=rounds, backup=backup, **common)
            runs.append(Run(label, m, result))
        for label, options in ASYNC_VARIANTS.items():
            options = dict(options)
            if options.pop("exact_dc", False):
                options["hessian_diagonal"] = problem.hessian_diagonal
            result = simulate_async(problem.gradient, problem.initial(), optimizer, num_workers=m,
                                    updates=updates, **common, **options)
            runs.append(Run(label, m, result))
    for run in runs:
        run.updates_per_time = len(run.result.times) / run.time if run.time and run.time > 0 else math.nan
    return runs


def plot_staleness_study(runs: Sequence[Run]):
    """Loss against updates and against (simulated) time for the largest M, and the staleness histograms."""
    from ..plots import COLORS, new_figure

    figure = new_figure((13.5, 4.0))
    by_updates, by_time, histogram = figure.subplots(1, 3)
    largest = max(run.workers for run in runs)
    colors = {label: COLORS[i % len(COLORS)] for i, label in enumerate(dict.fromkeys(r.label for r in runs))}
    for run in runs:
        if run.workers != largest:
            continue
        losses = np.array(run.result.losses, dtype=float)
        losses[~np.isfinite(losses)] = np.nan
        updates = np.arange(1, len(losses) + 1)
        by_updates.semilogy(updates, losses, color=colors[run.label], label=run.label)
        by_time.semilogy(run.result.times, losses, color=colors[run.label], label=run.label)
    by_updates.set(xlabel="updates", ylabel="loss", title=f"{largest} workers: loss per update")
    by_time.set(xlabel="simulated time", ylabel="loss", title="loss against wall time")
    for axis in (by_updates, by_time):
        axis.set_ylim(top=1e3)
    by_updates.legend(fontsize=8)
    sizes = sorted({run.workers for run in runs})
    for i, m in enumerate(sizes):
        run = next(r for r in runs if r.workers == m and r.label == "async, η/τ")
        tau = run.result.staleness()
        if len(tau):
            edges = np.unique(np.concatenate([[-0.5, 0.5], np.geomspace(1.5, tau.max() + 1.5, 25)]))
            histogram.hist(tau, bins=edges, alpha=0.6, weights=np.full(len(tau), 1.0 / len(tau)),
                           color=COLORS[i % len(COLORS)], label=f"M = {m}: mean τ {tau.mean():.1f}")
    histogram.set(xlabel="staleness τ", ylabel="fraction of updates", title="staleness (async)")
    histogram.set_xscale("symlog")
    histogram.legend(fontsize=8)
    figure.tight_layout()
    return figure
