"""``descentlab distributed``: synchronous against asynchronous SGD, simulated (default) or on Ray.

Simulated (no cluster, one core, 2 … 512 workers): ``descentlab distributed --workers 2,8,64,512
--stragglers 1 --out runs/staleness.png`` prints, for each number of workers, the final loss, the mean
staleness and the simulated time of synchronous SGD (with a backup worker when there are stragglers)
and asynchronous SGD with a constant rate, with η/τ and with delay compensation.

Real (``--backend ray``, ``pip install 'descentlab[distributed]'``): a Ray parameter server and 2–4
worker processes train a small MLP; prints updates per second and the staleness they produced. It
uses a running Ray instance (``ray.init(address="auto")`` on a cluster) or starts a local one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 120)


def _workers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ValueError(f"--workers must be integers separated by commas, like '2,8,64', got {text!r}") \
            from None
    if not values or any(v < 1 or v > 4096 for v in values):
        raise ValueError(f"--workers must be between 1 and 4096, got {text!r}")
    return values


@app.callback(invoke_without_command=True)
def distributed(
    backend: Annotated[str, typer.Option(help="simulate (no cluster) or ray (real workers)")] = "simulate",
    workers: Annotated[str, typer.Option(help="numbers of workers, comma-separated")] = "",
    updates: Annotated[int, typer.Option(help="updates (gradients) per run")] = 0,
    compute_time: Annotated[str, typer.Option(help="constant, exponential, shifted_exponential, pareto")] = (
        "exponential"),
    stragglers: Annotated[int, typer.Option(help="workers that are --slowdown times slower")] = 0,
    slowdown: Annotated[float, typer.Option(help="how much slower a straggler is")] = 10.0,
    dim: Annotated[int, typer.Option(help="dimension of the simulated quadratic")] = 50,
    noise: Annotated[float, typer.Option(help="gradient noise of the simulated quadratic")] = 0.05,
    lr: Annotated[float, typer.Option(help="learning rate (simulated default: 1/L; ray: 0.05)")] = 0.0,
    out: Annotated[Path | None, typer.Option(help="write the figure here (.png or .svg; simulated)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the compute times and the noise")] = 0,
) -> None:
    """Synchronous vs asynchronous SGD: staleness, stragglers, η/τ and delay compensation."""
    if backend not in ("simulate", "ray"):
        raise ValueError(f"--backend must be simulate or ray, got {backend!r}")
    if updates < 0 or lr < 0:
        raise ValueError("--updates and --lr must be positive")
    if backend == "ray":
        _ray(_workers(workers or "2,3"), updates or 300, lr or 0.05, seed)
        return
    from ..plots import save_figure
    from .study import plot_staleness_study, staleness_study

    if out is not None and out.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"--out must end in .png or .svg, got {str(out)!r}")
    runs = staleness_study(
        _workers(workers or "2,8,64"), updates=updates or 2000, dim=dim, noise=noise,
        compute_time=compute_time, stragglers=stragglers, slowdown=slowdown, lr=lr or None, seed=seed,
    )
    table = Table(title=f"simulated SGD on a {dim}-d noisy quadratic, {compute_time} compute times")
    for column in ("workers", "run", "final loss", "mean τ", "max τ", "simulated time"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for run in runs:
        tau = run.result.staleness()
        table.add_row(str(run.workers), run.label, "diverged" if run.diverged else f"{run.final_loss:.3g}",
                      f"{run.mean_staleness:.1f}", str(int(tau.max()) if len(tau) else 0), f"{run.time:.0f}")
    console.print(table)
    if out is not None:
        save_figure(plot_staleness_study(runs), out)
        console.print(f"figure written to [bold]{out}[/bold]")


def _ray(sizes: list[int], updates: int, lr: float, seed: int) -> None:
    from functools import partial

    from ..optim import SGD
    from .async_ps import async_sgd, require_ray
    from .problems import TeacherMLP

    try:
        require_ray()
    except ImportError as error:
        raise ValueError(str(error)) from None
    problem = TeacherMLP(seed=seed)
    table = Table(title=f"asynchronous SGD on a Ray parameter server ({updates} updates, TeacherMLP)")
    for column in ("workers", "lr policy", "updates/s", "mean τ", "max τ", "loss first → last 20"):
        table.add_column(column, justify="right")
    for m in sizes:
        for policy in ("constant", "staleness_aware"):
            result = async_sgd(problem.model, problem.loss, problem.batch, partial(SGD, lr=lr), m, updates,
                               lr_policy=policy)
            tau = result.staleness()
            seconds = result.times[-1] if result.times else 0.0
            rate = len(result.times) / seconds if seconds > 0 else float("nan")
            first, last = sum(result.losses[:20]) / 20, sum(result.losses[-20:]) / 20
            table.add_row(str(m), policy, f"{rate:.0f}", f"{tau.mean():.2f}", str(int(tau.max())),
                          f"{first:.3g} → {last:.3g}")
    console.print(table)
