"""``descentlab bench``: list, run, resume, report, score, set-targets.

Bad input (an unknown workload or optimizer — with the closest names —, counts below 1, an unwritable
or foreign ``--out``, a directory made by another version or with other options) is one line
``error: …`` and exit status 2, and leaves the directory as it was (the ``descentlab`` command's rule).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Which optimizer wins on real small workloads, fairly tuned, resumable, with a report.\n\n"
    "Example: descentlab bench run --tier quick --jobs 2 --out runs/bench",
)
console = Console(width=None if sys.stdout.isatty() else 130)


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    return names or None


def _time(value: Any) -> str:
    return "∞" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:g}"


class _Bar:
    """The run's progress: trials done / total, ETA, and per optimizer the targets reached so far and its
    fastest time per workload."""

    def __init__(self, optimizers: list[str]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.optimizers = optimizers
        self.task = None
        self.rows: dict[str, Any] = {}
        self.best: dict[str, dict[str, float]] = {o: {} for o in optimizers}
        self.reached = {o: 0 for o in optimizers}
        self.failed: list[str] = []

    def __enter__(self) -> _Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def started(self, done: int, waiting: int) -> None:
        self.task = self.progress.add_task("trials", total=done + waiting, completed=done, note="")
        for o in self.optimizers:
            self.rows[o] = self.progress.add_task(o, total=None, completed=0, note="")

    def update(self, message: dict[str, Any]) -> None:
        if self.task is None:
            self.started(0, 0)
        optimizer = message["optimizer"]
        if message["status"] == "failed":
            self.failed.append(f"{message['key']}: {message.get('error')}")
        self.progress.update(self.task, advance=1, note=f"last: {message['key']} {message['status']}")
        if optimizer not in self.rows:
            return
        if message["status"] == "reached" and message["ruleset"] != "explore":
            self.reached[optimizer] += 1
            slot = self.best[optimizer]
            slot[message["workload"]] = min(
                slot.get(message["workload"], math.inf), message["steps_to_target"]
            )
        fastest = " · ".join(f"{w.split('-')[0]} {v:g}" for w, v in sorted(self.best[optimizer].items()))
        self.progress.update(
            self.rows[optimizer],
            advance=1,
            note=f"reached {self.reached[optimizer]}  fastest steps: {fastest or '—'}",
        )


def _headline(out: Path) -> None:
    import json

    summary = json.loads((out / "summary.json").read_text("utf-8"))
    for ruleset, entry in summary["rulesets"].items():
        steps = entry["steps"]
        workloads = sorted(steps["workloads"])
        table = Table(
            title=f"{ruleset}: median steps to target over studies (k/n studies reached) and score B",
            title_justify="left",
            header_style="bold",
        )
        table.add_column("optimizer", style="cyan", no_wrap=True)
        for w in workloads:
            table.add_column(w)
        table.add_column("B (steps)", justify="right")
        table.add_column(f"speed-up vs {summary['reference']}", justify="right")
        for o in sorted(steps["score"], key=lambda s: -steps["score"][s]):
            cells = []
            for w in workloads:
                cell = steps["workloads"][w].get(o)
                cells.append(
                    "—" if cell is None else f"{_time(cell['median'])} ({cell['reached']}/{cell['studies']})"
                )
            speed = steps["speedup_vs_reference"].get(o, {}).get("speedup")
            table.add_row(o, *cells, f"{steps['score'][o]:.3f}", "—" if speed is None else f"{speed:.2f}×")
        console.print(table)


def _run(call, optimizers: list[str]) -> Path:
    began = time.perf_counter()
    with _Bar(optimizers) as bar:
        out = call(progress=bar.update, started=bar.started)
    _headline(out)
    if bar.failed:
        console.print(
            f"[red]{len(bar.failed)} trial(s) failed[/red] (a bug, not a divergence); first: "
            f"{escape(bar.failed[0])}"
        )
    console.print(
        f"results, summary and report written to [bold]{out}[/bold] "
        f"({out / 'report.html'}) in {time.perf_counter() - began:.0f} s"
    )
    if bar.failed:
        raise typer.Exit(1)
    return out


@app.command(name="list")
def list_(tier: Annotated[str, typer.Option(help="quick or full")] = "full") -> None:
    """List the workloads (data, model, target, budget, estimated minutes) and the optimizers with their
    search spaces.

    Example:

        descentlab bench list --tier quick
    """
    from .spaces import OPTIMIZERS, QUICK_OPTIMIZERS, search_space
    from .storage import BenchError
    from .workloads import tier_workloads

    try:
        chosen = tier_workloads(tier)
    except ValueError as error:
        raise BenchError(str(error)) from None
    table = Table(
        title="workloads (estimate: 6 optimizers × 3 studies × 4 trials on one thread)",
        title_justify="left",
        header_style="bold",
        show_lines=True,
    )
    for column in (
        "name",
        "tier",
        "data and model",
        "target",
        "budget",
        "eval every",
        "batch",
        "≈ min",
        "here",
    ):
        table.add_column(column, no_wrap=column in ("name", "tier"))
    for w in chosen:
        reason = w.why_unavailable()
        comparison = "≥" if w.mode == "max" else "≤"
        table.add_row(
            w.name,
            w.tier,
            escape(w.summary),
            f"{w.metric} {comparison} {w.target:g}",
            f"{w.budget} steps",
            str(w.eval_every),
            "full" if w.batch_size is None else str(w.batch_size),
            f"{w.estimated_minutes(72):.1f}",
            "yes" if reason is None else escape(f"skipped: {reason}"),
        )
    console.print(table)
    names = QUICK_OPTIMIZERS if tier == "quick" else OPTIMIZERS
    table = Table(
        title="optimizers and their search spaces (one rule: descentlab.bench.spaces)",
        title_justify="left",
        header_style="bold",
        show_lines=True,
    )
    table.add_column("optimizer", style="cyan", no_wrap=True)
    table.add_column("hyperparameter: searched over")
    for name in names:
        space = search_space(name)
        lines = [f"{n} = {d}: {s}" for n, d, s in space.rows()]
        table.add_row(name, escape("\n".join(lines)))
    console.print(table)
    from .spaces import NOT_BENCHED

    for name, why in NOT_BENCHED.items():
        console.print(f"not benchmarked: [cyan]{name}[/cyan] — {escape(why)}")


@app.command()
def run(
    out: Annotated[
        Path,
        typer.Option(
            help="the run's directory (created; an existing run with the same options is continued)"
        ),
    ],
    tier: Annotated[str, typer.Option(help="quick (4 workloads, 6 optimizers) or full")] = "quick",
    workloads: Annotated[
        str | None, typer.Option(help="comma-separated workload names (default: the tier's)")
    ] = None,
    optimizers: Annotated[str | None, typer.Option(help="comma-separated optimizer names")] = None,
    ruleset: Annotated[
        str, typer.Option(help="external, self and/or explore, comma-separated")
    ] = "external,self",
    studies: Annotated[int, typer.Option(help="studies S (external) / seeds (self)")] = 3,
    trials: Annotated[int, typer.Option(help="Sobol' trials T per study (external)")] = 4,
    seed: Annotated[int, typer.Option(help="base seed of data order, initialisation and Sobol' draws")] = 0,
    schedule: Annotated[
        str, typer.Option(help="constant or warmup-cosine (part of every configuration)")
    ] = "warmup-cosine",
    reference: Annotated[str, typer.Option(help="the optimizer speed-ups are measured against")] = "adamw",
    jobs: Annotated[int, typer.Option(help="worker processes, one torch thread each")] = 1,
) -> None:
    """Run the benchmark and write results.csv, summary.json and report.html into --out.

    Example:

        descentlab bench run --tier quick --jobs 2 --out runs/bench
    """
    from .spaces import OPTIMIZERS, QUICK_OPTIMIZERS
    from .storage import RunOptions

    options = RunOptions.make(
        tier=tier,
        workloads=_names(workloads),
        optimizers=_names(optimizers),
        rulesets=_names(ruleset) or [],
        studies=studies,
        trials=trials,
        seed=seed,
        schedule=schedule,
        reference=reference,
    )
    from . import run_bench

    del OPTIMIZERS, QUICK_OPTIMIZERS

    def call(progress, started):
        return run_bench(
            out,
            tier=options.tier,
            workloads=options.workloads,
            optimizers=options.optimizers,
            rulesets=options.rulesets,
            studies=studies,
            trials=trials,
            seed=seed,
            schedule=schedule,
            reference=reference,
            jobs=jobs,
            progress=progress,
            started=started,
        )

    _run(call, list(options.optimizers))


@app.command()
def resume(
    directory: Annotated[Path, typer.Argument(help="the run's directory")],
    jobs: Annotated[int, typer.Option(help="worker processes, one torch thread each")] = 1,
) -> None:
    """Continue an interrupted run: re-run exactly the killed trials and those not yet run.

    Example:

        descentlab bench resume runs/bench --jobs 2
    """
    from . import resume_bench
    from .storage import RunDirectory

    optimizers = RunDirectory.open(directory).manifest["options"]["optimizers"]
    _run(
        lambda progress, started: resume_bench(directory, jobs=jobs, progress=progress, started=started),
        list(optimizers),
    )


@app.command()
def report(directory: Annotated[Path, typer.Argument(help="the run's directory")]) -> None:
    """Re-render results.csv, summary.json and report.html from the stored trials (no training).

    Example:

        descentlab bench report runs/bench
    """
    from . import report_bench

    page = report_bench(directory)
    _headline(Path(directory))
    console.print(f"report written to [bold]{page}[/bold]")


@app.command()
def score(
    table: Annotated[
        Path,
        typer.Argument(
            help="a CSV of times to target: a first column of names and one column "
            "per workload (empty, inf or ∞ for a miss), or a bench results.csv"
        ),
    ],
    r_max: Annotated[float, typer.Option(help="τ range [1, r_max] of the profile")] = 4.0,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="held-out variant of a base workload, 'variant=base' (repeatable): AlgoPerf's rule"
        ),
    ] = None,
    grid: Annotated[
        int | None,
        typer.Option(
            help="AlgoPerf's trapezoid on this many points instead of the exact integral (AlgoPerf: 100)"
        ),
    ] = None,
) -> None:
    """Performance profile ρ(τ) and score B of any time-to-target table.

    Example:

        descentlab bench score times.csv --grid 100 --variant fastmri_tanh=fastmri
    """
    from .scoring import benchmark_score, performance_profile, read_times
    from .storage import BenchError

    if r_max <= 1:
        raise BenchError(f"--r-max must be > 1, got {r_max}")
    if grid is not None and grid < 2:
        raise BenchError(f"--grid must be an integer ≥ 2, got {grid}")
    times = read_times(table)
    variants = {}
    for text in variant or []:
        held_out, _, base = text.partition("=")
        if not base:
            raise BenchError(f"--variant must read 'variant=base', got {text!r}")
        variants[held_out.strip()] = base.strip()
    known = {w for row in times.values() for w in row}
    unknown = sorted((set(variants) | set(variants.values())) - known)
    if unknown:
        raise BenchError(f"--variant names workloads the table does not have: {', '.join(unknown)}")
    taus = [1.0, 1.25, 1.5, 2.0, 3.0, r_max]
    profile = performance_profile(times, taus, r_max, variants)
    scores = benchmark_score(times, r_max, grid, variants)
    result = Table(
        title=f"{table}: ρ(τ) and score B ({'exact' if grid is None else f'trapezoid, {grid} points'})",
        title_justify="left",
        header_style="bold",
    )
    result.add_column("name", style="cyan")
    for tau in taus:
        result.add_column(f"ρ({tau:g})", justify="right")
    result.add_column("B", justify="right")
    for name in sorted(scores, key=lambda s: -scores[s]):
        result.add_row(escape(name), *[f"{v:.3f}" for v in profile[name]], f"{scores[name]:.4f}")
    console.print(result)


@app.command(name="set-targets")
def set_targets_command(
    work: Annotated[Path, typer.Option(help="directory for the procedure's trials (resumable)")],
    workloads: Annotated[
        str | None, typer.Option(help="comma-separated workload names (default: the tier's)")
    ] = None,
    tier: Annotated[str, typer.Option(help="quick or full")] = "quick",
    configurations: Annotated[int, typer.Option(help="Sobol' configurations per target setter")] = 32,
    seeds: Annotated[int, typer.Option(help="seeds of the re-runs of each setter's best configuration")] = 5,
    jobs: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Set the frozen targets offline (AlgoPerf's rule) and write them into the registry (targets.json).

    Example:

        descentlab bench set-targets --tier quick --jobs 2 --work runs/targets
    """
    from .storage import BenchError, RunOptions
    from .targets import set_targets

    options = RunOptions.make(tier=tier, workloads=_names(workloads), studies=seeds, trials=configurations)
    if isinstance(jobs, bool) or jobs < 1:
        raise BenchError(f"--jobs must be an integer ≥ 1, got {jobs}")
    with _Bar(["adamw", "nadam", "sgd-nesterov", "heavyball", "adam", "sgd"]) as bar:
        registry = set_targets(
            options.runnable_workloads()[0],
            work,
            configurations=configurations,
            seeds=seeds,
            jobs=jobs,
            progress=bar.update,
        )
    table = Table(
        title=f"targets registry version {registry['version']}", title_justify="left", header_style="bold"
    )
    for column in ("workload", "target", "source"):
        table.add_column(column)
    for name, record in registry["workloads"].items():
        table.add_row(name, f"{record['target']:g}", escape(record.get("source", "")))
    console.print(table)
