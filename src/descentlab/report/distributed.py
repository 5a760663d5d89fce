"""The demo report's distributed-training section: staleness, simulated (a few seconds, no cluster)."""

from __future__ import annotations

from pathlib import Path

from .. import plots
from ..distributed.study import plot_staleness_study, staleness_study
from .section import Section

__all__ = ["staleness"]


def staleness(directory: Path, options=None) -> Section:
    """Synchronous against asynchronous SGD with 2, 8 and 64 simulated workers, one a straggler."""
    runs = staleness_study((2, 8, 64), updates=800, stragglers=1, slowdown=10.0)
    plots.save_figure(plot_staleness_study(runs), directory / "staleness.png")
    by = {(run.label, run.workers): run for run in runs}
    constant, aware = by[("async, constant η", 8)], by[("async, η/τ", 8)]
    sync, backup = by[("sync", 64)], by[("sync, 1 backup", 64)]
    broke = "diverged" if constant.diverged else f"reached {constant.final_loss:.3g}"
    return Section(
        slug="staleness",
        title="Distributed SGD: staleness and stragglers",
        equation=r"$w_{k+1}=w_k-\frac{\eta}{\tau_k}\,\nabla L(w_{k-\tau_k})$",
        lead="Simulated workers on a noisy quadratic at η = 1/L (descentlab.distributed.simulate). "
        "Asynchronous workers push gradients computed on parameters τ updates old, 'more severe the more "
        "workers there are'; synchronous ones wait for each other, 'limited to the speed of the slowest "
        "worker' (notes 002) — here one worker is 10× slower.",
        finding=f"With 8 asynchronous workers (mean τ {aware.mean_staleness:.1f}) a constant rate {broke} "
        f"while η/τ reached {aware.final_loss:.3g}; with 64 workers a synchronous run took {sync.time:.0f} "
        f"time units waiting for its straggler, {backup.time:.0f} with one backup worker.",
        image="staleness.png",
        headers=["run", "workers", "final loss", "mean τ", "simulated time"],
        rows=[
            [run.label, str(run.workers), "diverged" if run.diverged else f"{run.final_loss:.3g}",
             f"{run.mean_staleness:.1f}", f"{run.time:.0f}"]
            for run in runs
        ],
    )
