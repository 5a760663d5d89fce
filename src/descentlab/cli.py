"""The ``descentlab`` command: race optimizers, plot schedules, list what exists, train a built-in
problem, build the demo report.

Every bad input — an unknown name, a malformed spec, a start outside the domain, a non-positive number
of steps, an unwritable output (a ``ValueError``, a ``SpecError`` or an ``OSError``) — ends in one line
``error: ...`` on stderr and exit status 2, never a traceback. Anything else is unexpected (a bug, or
a failure of the machine): one line naming the exception, a pointer to ``--debug``, and exit
status 1. ``descentlab --debug COMMAND ...`` prints the full traceback of either kind.
"""

from __future__ import annotations

import inspect
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .bench.cli import app as bench_app
from .distributed.cli import app as distributed_app


@dataclass
class _Session:
    """What the global options set for one call of :func:`main`."""

    debug: bool = False


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="descentlab — optimizers racing on loss landscapes.\n\nExample:\n\n"
    "descentlab race two-minima --opt 'sgd(lr=0.05)' --opt 'adam(lr=0.1)' \\\n    --out race.png",
)
console = Console(width=None if sys.stdout.isatty() else 120)
app.add_typer(bench_app, name="bench")
app.add_typer(distributed_app, name="distributed", help="Synchronous vs asynchronous SGD (simulated, Ray).")

DEFAULT_RACERS = ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)", "adam(lr=0.1)"]


class UsageProblem(ValueError):
    """Bad input from the command line: reported as one line, exit status 2."""


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("descentlab")
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = "unknown (not installed)"
        console.print(f"descentlab {number}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show the full traceback of any error")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """descentlab — optimizers racing on loss landscapes."""
    if isinstance(ctx.obj, _Session):
        ctx.obj.debug = debug


def _parse_start(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        raise UsageProblem(f"--start must be numbers separated by commas, like '1.5,-0.5'; got {text!r}") \
            from None


def _writable_file(path: Path | None, option: str, suffixes: tuple[str, ...]) -> Path | None:
    """Check an output file before any work: its suffix, that it is not a directory, and that its
    folder exists (it is never created) and accepts a file (a probe file is written and removed)."""
    if path is None:
        return None
    if path.suffix.lower() not in suffixes:
        raise UsageProblem(f"{option} must end in {' or '.join(suffixes)}, got {str(path)!r}")
    if path.is_dir():
        raise UsageProblem(f"{option}: {str(path)!r} is a directory; give a file name")
    folder = path.parent if str(path.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise UsageProblem(f"{option}: {str(folder)!r} exists and is not a directory")
    if not folder.exists():
        raise UsageProblem(f"{option}: the directory {str(folder)!r} does not exist (it is not created "
                           "for you; make it first)")
    try:
        handle, probe = tempfile.mkstemp(prefix=".descentlab-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UsageProblem(f"{option}: cannot write in {str(folder)!r}: {error.strerror}") from None
    return path


def _print_table(title: str, rows: list[dict[str, str]]) -> None:
    table = Table(title=title, title_justify="left", header_style="bold")
    for header in rows[0]:
        table.add_column(header, no_wrap=header == "optimizer")
    for row in rows:
        cells = []
        for header, value in row.items():
            if header == "diverged" and value != "no":
                value = f"[red]{value}[/red]"
            elif header == "converged at" and value != "—":
                value = f"[green]{value}[/green]"
            cells.append(value if value.startswith("[") else escape(value))
        table.add_row(*cells)
    console.print(table)


MAX_STEPS = 100_000


@app.command()
def race(
    landscape: Annotated[str, typer.Argument(help="landscape name or spec: 'quadratic(kappa=100)'")],
    opt: Annotated[list[str] | None, typer.Option("--opt", "-o", help="optimizer spec, repeatable")] = None,
    start: Annotated[str | None, typer.Option(help="start point 'x,y' (default: the landscape's)")] = None,
    steps: Annotated[int, typer.Option(help=f"number of optimizer steps (1 to {MAX_STEPS:,})")] = 200,
    noise: Annotated[float, typer.Option(help="standard deviation σ of additive gradient noise")] = 0.0,
    seed: Annotated[int, typer.Option(help="seed of the noise and mini-batch order (shared)")] = 0,
    out: Annotated[Path | None, typer.Option(help="write the figure (paths + loss) to this PNG")] = None,
    gif: Annotated[Path | None, typer.Option(help="also write an animated GIF of the race")] = None,
    axis: Annotated[str, typer.Option(help="x axis of the loss panel: steps, evaluations (loss-and-gradient "
                                      "evaluations) or seconds (wall time)")] = "steps",
) -> None:
    """Race optimizers on a landscape from the same start; print a table and draw the paths.

    A run whose optimizer raised an error is shown as failed, with the error, and the command then
    exits with status 1; only non-finite values (or leaving the landscape far behind) count as diverging.

    Example:

        descentlab race two-minima --opt 'sgd(lr=0.05)' --opt 'adam(lr=0.1)' --steps 250 --out race.png
    """
    if not 1 <= steps <= MAX_STEPS:
        raise UsageProblem(f"--steps must be a positive integer of at most {MAX_STEPS:,}, got {steps}"
                           if steps > 0 else f"--steps must be a positive integer, got {steps}")
    if noise < 0:
        raise UsageProblem(f"--noise must be >= 0, got {noise}")
    if axis not in ("steps", "evaluations", "seconds"):
        raise UsageProblem(f"--axis must be steps, evaluations or seconds, got {axis!r}")
    out = _writable_file(out, "--out", (".png", ".svg", ".pdf"))
    gif = _writable_file(gif, "--gif", (".gif",))
    from .lab import race as run_race  # torch is imported only once the arguments look right
    from .landscapes import get_landscape

    surface = get_landscape(landscape)
    result = run_race(surface, opt or DEFAULT_RACERS, start=_parse_start(start), steps=steps, noise=noise,
                      seed=seed, errors="record")
    _print_table(escape(f"{surface.name}: {surface.formula}"), result.rows())
    if out is not None or gif is not None:
        from . import plots

        if out is not None:
            plots.save_figure(plots.plot_race(result, axis=axis), out)
            console.print(f"figure written to [bold]{out}[/bold]")
        if gif is not None:
            plots.animate_race(result, gif)
            console.print(f"animation written to [bold]{gif}[/bold]")
    failed = [run for run in result.runs if run.failed_at is not None]
    if failed:
        first = failed[0]
        print(f"error: {len(failed)} of {len(result.runs)} runs failed; {first.label} at step "
              f"{first.failed_at}: {first.error} (in Python, race(..., errors='raise') shows the traceback)",
              file=sys.stderr)
        raise typer.Exit(1)


@app.command()
def schedule(
    spec: Annotated[str, typer.Argument(help="schedule spec, e.g. 'cosine(eta_max=0.1, T_max=100)'")],
    steps: Annotated[int, typer.Option(help="number of steps to plot")] = 100,
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("schedule.png"),
) -> None:
    """Plot a learning-rate schedule.

    Example:

        descentlab schedule 'warm_restarts(T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1)' --out restarts.png
    """
    from .schedules import SCHEDULES
    from .specs import build_from_spec

    if not 1 <= steps <= MAX_STEPS:
        raise UsageProblem(f"--steps must be a positive integer of at most {MAX_STEPS:,}, got {steps}"
                           if steps > 0 else f"--steps must be a positive integer, got {steps}")
    out = _writable_file(out, "--out", (".png", ".svg", ".pdf"))
    rule = build_from_spec(spec, SCHEDULES, "schedule")
    from . import plots

    plots.save_figure(plots.plot_schedule(rule, steps), out)
    values = [float(rule(t)) for t in range(steps)]
    console.print(f"{rule!r}: η from {min(values):.4g} to {max(values):.4g} over {steps} steps; "
                  f"figure written to [bold]{out}[/bold]")


def _first_line(obj: object) -> str:
    doc = (inspect.getdoc(obj) or "").strip()
    line = doc.splitlines()[0] if doc else ""
    return line.rstrip(":").replace("``", "")


@app.command(name="list")
def list_everything() -> None:
    """List every optimizer with its update rule, every landscape and every schedule.

    Example:

        descentlab list
    """
    from .lab import describe_optimizer, optimizer_registry
    from .landscapes import LANDSCAPES
    from .schedules import SCHEDULES

    registry = optimizer_registry(include_torch=False)
    table = Table(title="optimizers  (--opt 'name(key=value, ...)'; torch.optim's as torch.<name>)",
                  title_justify="left", header_style="bold")
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("update rule")
    for name, cls in sorted(registry.items()):
        table.add_row(name, escape(describe_optimizer(cls)))
    console.print(table)
    table = Table(title="landscapes", title_justify="left", header_style="bold")
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("options")
    table.add_column("formula")
    for name, factory in LANDSCAPES.items():
        options = ", ".join(inspect.signature(factory).parameters)
        table.add_row(name, options or "—", escape(factory().formula))
    console.print(table)
    table = Table(title="schedules  (descentlab schedule 'name(key=value, ...)')", title_justify="left",
                  header_style="bold")
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("keys")
    table.add_column("rule")
    for name, factory in SCHEDULES.items():
        table.add_row(name, ", ".join(inspect.signature(factory).parameters), escape(_first_line(factory)))
    console.print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for index.html and the figures")] = Path("runs/demo"),
    gif: Annotated[bool, typer.Option(help="also animate the two-minima race")] = True,
) -> None:
    """Run the course's comparisons and write an HTML report (DIR/index.html).

    Example:

        descentlab demo --out runs/demo
    """
    from .report import EXPERIMENTS, build_report, check_output_dir

    existed = out.exists()
    check_output_dir(out)
    if not existed:
        console.print(f"created the folder [bold]{out}[/bold]")
    began = time.perf_counter()
    with Progress(TextColumn("[bold blue]{task.description:<22}"), BarColumn(), TextColumn("{task.completed}/"
                  "{task.total}"), TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("racing", total=len(EXPERIMENTS))

        def advance(name: str) -> None:
            bar.update(task, advance=1, description=name)

        index, sections = build_report(out, progress=advance, gif=gif)
    table = Table(title="descentlab demo — what each comparison shows", title_justify="left",
                  header_style="bold", show_lines=True)
    table.add_column("comparison", style="cyan")
    table.add_column("finding")
    table.add_column("s", justify="right")
    for section in sections:
        table.add_row(section.title, section.finding, f"{section.seconds:.1f}")
    console.print(table)
    console.print(f"report written to [bold]{index}[/bold] in {time.perf_counter() - began:.0f} s "
                  f"— open it in a browser (works offline)")


@app.command()
def claims(
    slugs: Annotated[list[str] | None,
                     typer.Argument(help="claims to check (default: all; see --list)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for each claim's figure <slug>.png")] = None,
    list_only: Annotated[bool, typer.Option("--list", help="list the claims and exit")] = False,
) -> None:
    """Check the course notes' claims: run each experiment and judge it by its predicate.

    Prints ✓ (holds), refuted (the measurement refutes it, as recorded) or ✗ (the measurement no longer
    agrees with the recorded verdict: the command then exits with status 1), with the numbers.

    Example:

        descentlab claims momentum-jumps-local-minima noise-escapes-a-saddle --out runs/claims
    """
    from .claims import CLAIMS, check, get_claim

    if list_only:
        table = Table(title="claims of the notes", title_justify="left", header_style="bold")
        for header in ("claim", "source", "recorded"):
            table.add_column(header)
        for claim in CLAIMS:
            table.add_row(claim.slug, claim.source, claim.expected)
        console.print(table)
        return
    chosen = [get_claim(slug) for slug in slugs] if slugs else list(CLAIMS)
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UsageProblem(f"--out: {str(out)!r} exists and is not a directory")
        if not out.parent.exists():
            raise UsageProblem(f"--out: the directory {str(out.parent)!r} does not exist (it is not "
                               "created for you; make it first)")
        out.mkdir(exist_ok=True)
    table = Table(title="claims of the notes", title_justify="left", header_style="bold", show_lines=True)
    for header in ("", "claim", "what was measured", "s"):
        table.add_column(header, justify="right" if header == "s" else "left")
    changed = []
    with Progress(TextColumn("[bold blue]{task.description:<50}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("claims", total=len(chosen))
        for claim in chosen:
            bar.update(task, description=claim.slug)
            verdict = check(claim, out=out)
            if not verdict.as_recorded:
                changed.append(claim.slug)
            colour = {"✓": "green", "refuted": "yellow"}.get(verdict.mark, "red")
            table.add_row(f"[{colour}]{verdict.mark}[/{colour}]", escape(f"{claim.slug} ({claim.source})"),
                          escape(verdict.summary), f"{verdict.seconds:.1f}")
            bar.advance(task)
    console.print(table)
    if out is not None:
        console.print(f"figures written to [bold]{out}[/bold]")
    if changed:
        print(f"error: {len(changed)} claims no longer measure as recorded: {', '.join(changed)}",
              file=sys.stderr)
        raise typer.Exit(1)


@app.command()
def playground(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8765,
    host: Annotated[str, typer.Option(help="address to bind; anything but 127.0.0.1 / localhost / ::1 "
                                      "is reachable from other machines and needs the printed token")]
    = "127.0.0.1",
    open_browser: Annotated[bool, typer.Option("--open",
                                               help="open the page in the default browser")] = False,
) -> None:
    """Serve the playground: race optimizers by clicking on a landscape, with the real library.

    Needs the extra: pip install 'descentlab[playground]'. Ctrl-C stops the server.

    Example:

        descentlab playground --port 8765 --open
    """
    if not 1 <= port <= 65535:
        raise UsageProblem(f"--port must be in [1, 65535], got {port}")
    from .playground import serve

    serve(host=host, port=port, open_browser=open_browser, echo=lambda *a, **k: print(*a, **k, flush=True))


@app.command()
def train(
    problem: Annotated[str, typer.Argument(help="built-in problem: digits (an MLP on load_digits) or "
                                                "char-rnn (an LSTM on stdlib source, truncated BPTT)")],
    opt: Annotated[str | None, typer.Option("--opt", "-o", help="optimizer spec (default: digits "
                                            "'sgd(lr=0.1, momentum=0.9)', char-rnn 'adam(lr=0.01)')")] = None,
    epochs: Annotated[int | None, typer.Option(help="passes over the training set (digits 20, "
                                               "char-rnn 3)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="examples (char-rnn: windows) per batch "
                                                   "(digits 64, char-rnn 32)")] = None,
    lr_find: Annotated[bool, typer.Option("--lr-find", help="run the learning-rate range test first; its "
                                          "suggestion is used unless --opt sets lr")] = False,
    early_stopping: Annotated[int | None, typer.Option(metavar="PATIENCE", help="stop after PATIENCE "
                                                       "epochs without a better validation loss; "
                                                       "the best weights are restored")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="checkpoint file: the same command again "
                                                    "resumes from it")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for loss.png, range_test.png and "
                                             "summary.json")] = None,
    seed: Annotated[int, typer.Option(help="seed of the initialisation and the batch order")] = 0,
    seq_len: Annotated[int | None, typer.Option(help="char-rnn: characters per training window "
                                                "(128)")] = None,
    bptt: Annotated[int | None, typer.Option(help="char-rnn: truncation length k of BPTT (32)")] = None,
) -> None:
    """Train a small built-in problem with descentlab.training.fit and print a summary.

    Example:

        descentlab train digits --opt 'sgd(momentum=0.9)' --lr-find --early-stopping 5 --epochs 5
    """
    from ._train import TrainSettings, run

    run(TrainSettings(problem=problem, opt=opt, epochs=epochs, batch_size=batch_size, lr_find=lr_find,
                      early_stopping=early_stopping, checkpoint=checkpoint, out=out, seed=seed,
                      seq_len=seq_len, bptt=bptt), console)


def _first_line_of(problem: BaseException) -> str:
    text = str(problem).strip()
    return text.splitlines()[0] if text else type(problem).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    0 on success; 2 for bad input (one line on stderr); 1 for an unexpected exception (one line and a
    pointer to ``--debug``, which prints the traceback).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    session = _Session()
    command = typer.main.get_command(app)  # not app(...): that would replace sys.excepthook
    try:
        result = command.main(args=args, prog_name="descentlab", standalone_mode=False, obj=session)
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except typer.TyperException as problem:  # usage errors found by the parser
        if not problem.format_message():  # a bare `descentlab`: the help was shown, nothing went wrong
            return 0
        print(f"error: {problem.format_message()} (see descentlab --help)", file=sys.stderr)
        return 2
    except (ValueError, OSError) as problem:  # bad input; SpecError and UsageProblem are ValueErrors
        if session.debug:
            traceback.print_exc()
        print(f"error: {_first_line_of(problem)}", file=sys.stderr)
        return 2
    except Exception as problem:  # a bug or an unexpected failure: say so, never call it bad input
        if session.debug:
            traceback.print_exc()
            print(f"error: unexpected {type(problem).__name__}: {_first_line_of(problem)}", file=sys.stderr)
        else:
            print(f"error: unexpected {type(problem).__name__}: {_first_line_of(problem)} "
                  "(run with --debug for the traceback)", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
