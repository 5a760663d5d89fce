"""The demo report: the course notes' comparisons, raced and drawn, as one offline HTML page.

:func:`build_report` runs every :data:`EXPERIMENTS` entry — the two-minima race of notes 001, SGD
against Adam on a strongly convex function, gradient descent / momentum / Nesterov / Adam at κ = 100,
online vs mini-batch vs full-batch SGD, a saddle, a plateau, AdaGrad's vanishing step against RMSprop,
Rosenbrock and a gallery of learning-rate schedules — and writes ``DIR/index.html`` with its PNG
figures next to it. Equations are rendered by matplotlib's mathtext into inline SVG, so the page needs
no network. Figures are written first and the page last, each atomically (temporary file, then
``os.replace``), so a crash never leaves a half-written page.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import plots
from ._io import atomic_write, writable_directory
from .lab import RaceResult, race
from .landscapes import least_squares

__all__ = ["Section", "EXPERIMENTS", "build_report", "render_page", "check_output_dir"]


@dataclass
class Section:
    """One block of the page: a figure, an equation, a table and what it shows."""

    slug: str
    title: str
    equation: str
    lead: str
    finding: str
    image: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    extra_image: str | None = None
    seconds: float = 0.0


def check_output_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and make sure files can be written there; ``ValueError`` otherwise."""
    return writable_directory(path, "out")


def _race_rows(result: RaceResult) -> tuple[list[str], list[list[str]]]:
    rows = result.rows()
    headers = list(rows[0])
    return headers, [list(row.values()) for row in rows]


def _names(runs, predicate) -> list[str]:
    return [run.label for run in runs if predicate(run)]


def _join(names: list[str]) -> str:
    if not names:
        return "none"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _fastest(result: RaceResult) -> str:
    done = [run for run in result.runs if run.converged_at is not None]
    if not done:
        return f"none converged within {result.steps} steps"
    best = min(done, key=lambda run: run.converged_at)
    return f"{best.label} converged first, at step {best.converged_at}"


def _save_race(result: RaceResult, directory: Path, name: str, title: str) -> str:
    plots.save_figure(plots.plot_race(result, title=title), directory / name)
    return name


def _merge(first: RaceResult, *others: RaceResult) -> RaceResult:
    """Put the runs of several races on the same landscape function into one result (for one figure)."""
    merged = RaceResult(first.landscape, first.start, first.steps, first.seed, list(first.runs))
    for other in others:
        merged.runs.extend(other.runs)
    return merged


def _relabel(result: RaceResult, label: str) -> RaceResult:
    for run in result.runs:
        run.label = label
    return result


# --------------------------------------------------------------------------------------------------
# The experiments


_MOMENTUM_NOTE = " — velocity carries momentum over the ridge that traps the others"


def two_minima(directory: Path, gif: bool = True) -> Section:
    result = race("two-minima", [
        ("GD", "sgd(lr=0.05)"),
        ("momentum", "sgd(lr=0.05, momentum=0.9)"),
        ("Nesterov", "sgd(lr=0.05, momentum=0.9, nesterov=True)"),
        ("AdaGrad", "adagrad(lr=0.5)"),
        ("RMSprop", "rmsprop(lr=0.01)"),
        ("Adam", "adam(lr=0.1)"),
    ], steps=250)
    deep = _names(result.runs, lambda run: run.minimum == 0)
    shallow = _names(result.runs, lambda run: run.minimum == 1)
    image = _save_race(result, directory, "two-minima.png", "The two-minima function of notes 001")
    if gif:
        plots.animate_race(result, directory / "two-minima.gif", frames=45)
    headers, rows = _race_rows(result)
    return Section(
        "two-minima", "Two minima: who finds the deeper well?", result.landscape.latex,
        "Every optimizer starts from the same point above the shallow well; the numbers in brackets are "
        "the iterations each needed to settle, as in the notes' figure.",
        f"{_join(deep)} reached the deeper, global well at (−0.97, 0); {_join(shallow)} settled in the "
        f"shallow one{_MOMENTUM_NOTE if 'momentum' in deep else ''}.",
        image, headers, rows, extra_image="two-minima.gif" if gif else None,
    )


def sgd_vs_adam(directory: Path) -> Section:
    result = race("strongly-convex", [("SGD", "sgd(lr=0.1)"), ("Adam", "adam(lr=0.1)")], steps=150)
    image = _save_race(result, directory, "sgd-vs-adam.png", "SGD vs Adam on a strongly convex function")
    headers, rows = _race_rows(result)
    return Section(
        "sgd-vs-adam", "SGD vs Adam on a strongly convex function", result.landscape.latex,
        "On a well-conditioned bowl the plain gradient points almost at the minimum, and a fixed step "
        "shrinks the error by a constant factor every step (linear convergence).",
        f"{_fastest(result)}; Adam's sign-like normalised steps take a curved route and oscillate "
        "before its moment estimates settle.",
        image, headers, rows,
    )


def ill_conditioned(directory: Path) -> Section:
    result = race("quadratic(kappa=100)", [
        ("GD", "sgd(lr=0.01)"),
        ("momentum", "sgd(lr=0.01, momentum=0.9)"),
        ("Nesterov", "sgd(lr=0.01, momentum=0.9, nesterov=True)"),
        ("Adam", "adam(lr=0.1)"),
    ], steps=300)
    image = _save_race(result, directory, "kappa-100.png", "A quadratic with condition number κ = 100")
    headers, rows = _race_rows(result)
    gd = result["GD"]
    return Section(
        "kappa-100", "Gradient descent, momentum, Nesterov and Adam at κ = 100",
        r"$u_k=\alpha u_{k-1}-\eta\,\nabla f(w_k+\alpha u_{k-1}),\quad w_{k+1}=w_k+u_k$",
        "With curvatures from 1 to 100 a step small enough for the steep direction crawls along the "
        "flat one: gradient descent needs about κ steps per digit of accuracy, momentum about √κ.",
        f"{_fastest(result)}; plain gradient descent was still {gd.final_loss:.1e} above the minimum "
        f"after {result.steps} steps.",
        image, headers, rows,
    )


def batch_sizes(directory: Path) -> Section:
    runs = []
    for label, size in (("online (batch 1)", 1), ("mini-batch (8)", 8), ("full batch (64)", None)):
        runs.append(_relabel(race(least_squares(batch_size=size), ["sgd(lr=0.05)"], steps=200, xtol=0.05),
                             label))
    result = _merge(*runs)
    image = _save_race(result, directory, "batch-size.png",
                       "Fitting a line: online, mini-batch and full-batch SGD (η = 0.05)")
    headers, rows = _race_rows(result)
    online = result["online (batch 1)"]
    jitter = float(np.linalg.norm(online.trajectory[-50:] - online.trajectory[-50:].mean(0), axis=1).mean())
    return Section(
        "batch-size", "Online, mini-batch and full-batch gradient descent",
        r"$g_k=\frac{1}{m}\sum_{i=1}^{m}\nabla_w\mathcal{L}(f_w(x_i),y_i),\quad w_{k+1}=w_k-\eta g_k$",
        "The same SGD on the same 64 points, with a gradient from 1, 8 or all 64 examples per step; the "
        "larger the batch, the lower the variance of the gradient estimate (notes 001).",
        f"The full-batch path is a smooth curve; the online path keeps jittering (mean distance "
        f"{jitter:.3f} from its own average over the last 50 steps) around the least-squares solution.",
        image, headers, rows,
    )


def saddle(directory: Path) -> Section:
    plain = race("saddle", [("GD", "sgd(lr=0.05)"), ("momentum", "sgd(lr=0.05, momentum=0.9)")],
                 steps=200, xtol=0.05)
    noisy = _relabel(race("saddle", ["sgd(lr=0.05)"], steps=200, noise=0.1, xtol=0.05), "GD + noise σ=0.1")
    result = _merge(plain, noisy)
    image = _save_race(result, directory, "saddle.png", "A saddle point between two minima")
    headers, rows = _race_rows(result)
    gd = result["GD"]
    return Section(
        "saddle", "A saddle point: gradient descent stalls, momentum and noise escape",
        result.landscape.latex,
        "Starting a hair (10⁻⁵) off the ridge, the gradient points almost straight at the saddle, where it "
        "vanishes; only the tiny unstable component pushes sideways.",
        f"Gradient descent ends at |x| = {abs(gd.final_point[0]):.2f}, still "
        f"{gd.final_loss - min(result.landscape.minimum_values):.3f} above the minima, while "
        f"{_join(_names(result.runs, lambda r: r.converged_at is not None))} reached a minimum.",
        image, headers, rows,
    )


def plateau(directory: Path) -> Section:
    result = race("plateau", [("GD", "sgd(lr=0.5)"), ("momentum", "sgd(lr=0.5, momentum=0.9)"),
                              ("Adam", "adam(lr=0.1)")], steps=200)
    image = _save_race(result, directory, "plateau.png", "Crossing a plateau")
    headers, rows = _race_rows(result)
    return Section(
        "plateau", "A plateau that momentum crosses",
        r"$u_k=\alpha u_{k-1}-\eta g_k,\quad w_{k+1}=w_k+u_k$",
        "Far from the well the gradient is nearly zero; gradient descent's steps are as small as the "
        "gradient, momentum adds them up (up to 1/(1−α) = 10 times) and Adam divides by their size.",
        f"Momentum reached the well at step {result['momentum'].converged_at} and Adam at step "
        f"{result['Adam'].converged_at}; gradient descent moved only "
        f"{np.linalg.norm(result['GD'].final_point - np.array(result.start)):.2f} in {result.steps} steps.",
        image, headers, rows,
    )


def _effective_learning_rate(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> float:
    """``η/(√t_k + ε)`` averaged over coordinates, read from AdaGrad's ``sum`` or RMSprop's ``square_avg``."""
    state, group = optimizer.state[param], optimizer.param_groups[0]
    accumulator = state["sum"] if "sum" in state else state["square_avg"]
    return float((group["lr"] / (accumulator.sqrt() + group["eps"])).mean())


def adagrad_vs_rmsprop(directory: Path) -> Section:
    result = race("ravine", [("AdaGrad", "adagrad(lr=0.1)"), ("RMSprop", "rmsprop(lr=0.1)")], steps=400,
                  record=_effective_learning_rate)
    title = "AdaGrad vs RMSprop along a ravine (η = 0.1)"
    image = _save_race(result, directory, "adagrad-rmsprop.png", title)
    with plt.rc_context(plots._STYLE):
        figure, ax = plt.subplots(figsize=(6.5, 3.2))
        for index, run in enumerate(result.runs):
            ax.semilogy(np.arange(1, len(run.recorded) + 1), run.recorded, color=plots.COLORS[index],
                        linewidth=2, label=run.label)
        ax.set_xlabel("step k")
        ax.set_ylabel(r"effective rate $\eta/(\sqrt{t_k}+\epsilon)$")
        ax.set_title("AdaGrad's accumulator only grows; RMSprop's forgets")
        ax.legend(frameon=False)
        ax.grid(True, alpha=0.3)
        figure.tight_layout()
    plots.save_figure(figure, directory / "effective-lr.png")
    headers, rows = _race_rows(result)
    ada, rms = result["AdaGrad"].recorded, result["RMSprop"].recorded
    return Section(
        "adagrad-rmsprop", "AdaGrad's vanishing learning rate against RMSprop",
        r"$t_k=t_{k-1}+g_k\odot g_k\quad\mathrm{vs}\quad t_k=\rho\,t_{k-1}+(1-\rho)\,g_k\odot g_k$",
        "AdaGrad divides by the square root of the sum of all past squared gradients, so its steps can "
        "only shrink; RMSprop's moving average forgets the steep start (notes 001).",
        f"AdaGrad's effective rate can only fall ({ada[0]:.2g} after the first step, {ada[-1]:.2g} after "
        f"{result.steps}) and it stalls at loss {result['AdaGrad'].final_loss:.3g}; RMSprop forgets the "
        f"steep start, its rate rises to {rms[-1]:.2g} and it reaches {result['RMSprop'].final_loss:.3g}.",
        image, headers, rows, extra_image="effective-lr.png",
    )


def rosenbrock(directory: Path) -> Section:
    contenders = [("GD", "sgd(lr=0.001)"), ("momentum", "sgd(lr=0.001, momentum=0.9)"),
                  ("Adam", "adam(lr=0.02)"), ("RMSprop", "rmsprop(lr=0.005)")]
    try:
        from .second_order import BFGS  # noqa: F401

        contenders.append(("BFGS", "bfgs"))
    except ImportError:
        contenders.append(("L-BFGS (torch)", "torch.lbfgs(max_iter=1, line_search_fn='strong_wolfe')"))
    result = race("rosenbrock", contenders, steps=600)
    best = min(result.runs[:4], key=lambda run: run.final_loss)
    image = _save_race(result, directory, "rosenbrock.png", "Rosenbrock's valley")
    headers, rows = _race_rows(result)
    return Section(
        "rosenbrock", "Rosenbrock's banana valley", result.landscape.latex,
        "The valley is easy to fall into and hard to follow: its floor curves and is almost flat, while "
        "its walls are 100 times steeper.",
        f"{_fastest(result)}; the best first-order method, {best.label}, was still at loss "
        f"{best.final_loss:.3g} after {result.steps} steps, crawling along the floor.",
        image, headers, rows,
    )


def schedules(directory: Path) -> Section:
    try:
        from .schedules import SCHEDULES
    except ImportError as error:
        raise RuntimeError("schedules: descentlab.schedules is not available") from error
    steps = 150
    gallery = {
        "warm restarts (notes 002: T₀=10, T_mult=2, η 0.01…0.1)":
            SCHEDULES["warm_restarts"](T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1),
        "step decay (÷10 every 50)": SCHEDULES["step"](eta_max=0.1, step_size=50, gamma=0.1),
        "exponential (γ = 0.98)": SCHEDULES["exponential"](eta_max=0.1, gamma=0.98),
        "cosine annealing": SCHEDULES["cosine"](eta_max=0.1, T_max=steps),
        "cyclic triangular": SCHEDULES["cyclic"](eta_min=0.01, eta_max=0.1, step_size_up=25),
        "one cycle": SCHEDULES["one_cycle"](eta_max=0.1, T_max=steps),
        "linear warm-up then cosine": SCHEDULES["warmup_cosine"](eta_max=0.1, T_max=steps, warmup_steps=20),
        "inverse square root": SCHEDULES["inverse_sqrt"](eta_max=0.1, warmup_steps=20),
        "polynomial (power 2)": SCHEDULES["polynomial"](eta_max=0.1, T_max=steps, power=2.0),
    }
    plots.save_figure(plots.plot_schedules(gallery, steps), directory / "schedules.png")
    restarts = gallery["warm restarts (notes 002: T₀=10, T_mult=2, η 0.01…0.1)"]
    starts = [t for t in range(1, steps) if restarts(t) > restarts(t - 1)]
    return Section(
        "schedules", "Learning-rate schedules",
        r"$\eta_t=\eta_{min}+\frac{1}{2}(\eta_{max}-\eta_{min})\left(1+\cos\frac{\pi\,T_{cur}}{T_i}\right)$",
        "A schedule sets the learning rate of every step: decay it to settle into a minimum, warm it up "
        "to start safely, restart it to jump out of a basin (notes 002 and 004).",
        f"The notes' warm-restart example restarts at steps {', '.join(map(str, starts))}: each cosine "
        "period is twice as long as the one before (T_mult = 2).",
        "schedules.png",
        ["schedule", "repr"], [[label, repr(schedule)] for label, schedule in gallery.items()],
    )


EXPERIMENTS: list[tuple[str, Callable[[Path], Section]]] = [
    ("two minima", two_minima),
    ("SGD vs Adam", sgd_vs_adam),
    ("κ = 100", ill_conditioned),
    ("batch sizes", batch_sizes),
    ("saddle", saddle),
    ("plateau", plateau),
    ("AdaGrad vs RMSprop", adagrad_vs_rmsprop),
    ("Rosenbrock", rosenbrock),
    ("schedules", schedules),
]


# --------------------------------------------------------------------------------------------------
# The page

_CSS = """
:root { --ink:#1b2a3a; --muted:#5b6b7c; --line:#e3e8ef; --accent:#1f5fa8; --bg:#f5f7fb; }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink);
       background:var(--bg); }
header { background:linear-gradient(120deg,#0f2f57,#1f5fa8 60%,#3b8fd9); color:white; padding:42px 0 34px; }
.wrap { max-width:1120px; margin:0 auto; padding:0 24px; }
header h1 { margin:0 0 6px; font-size:34px; letter-spacing:-0.5px; }
header p { margin:0; opacity:.9; max-width:760px; }
nav { display:flex; flex-wrap:wrap; gap:8px; margin-top:20px; }
nav a { color:white; text-decoration:none; background:rgba(255,255,255,.14); padding:5px 12px;
        border-radius:999px; font-size:14px; }
nav a:hover { background:rgba(255,255,255,.28); }
section { background:white; border:1px solid var(--line); border-radius:14px; margin:26px 0;
          padding:26px 28px; box-shadow:0 1px 3px rgba(15,47,87,.06); }
section h2 { margin:0 0 8px; font-size:23px; }
.lead { color:var(--muted); margin:0 0 14px; }
.equation { margin:6px 0 16px; padding:10px 14px; background:#f7f9fc; border-left:4px solid var(--accent);
            border-radius:6px; overflow-x:auto; }
.equation svg { height:auto; max-width:100%; display:block; }
figure { margin:0 0 14px; text-align:center; }
figure img { max-width:100%; height:auto; border-radius:8px; }
.finding { font-size:17px; background:#eef5ff; border-radius:8px; padding:10px 14px; margin:10px 0 16px; }
.finding b { color:var(--accent); }
table { border-collapse:collapse; width:100%; font-size:14px; }
th { text-align:left; color:var(--muted); font-weight:600; border-bottom:2px solid var(--line);
     padding:6px 10px; }
td { border-bottom:1px solid var(--line); padding:6px 10px; font-variant-numeric:tabular-nums; }
td:first-child { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px; }
.badge { display:inline-block; padding:1px 9px; border-radius:999px; font-size:12.5px; font-weight:600; }
.ok { background:#e3f6e8; color:#1e7b3a; } .bad { background:#fde8e8; color:#b42318; }
.idle { background:#f1f3f6; color:#5b6b7c; }
.row2 { display:grid; grid-template-columns: 1fr; gap:10px; }
footer { color:var(--muted); font-size:13px; padding:10px 0 40px; }
"""


def _cell(header: str, value: str) -> str:
    text = html.escape(value)
    if header == "diverged":
        kind = "idle" if value == "no" else "bad"
        return f'<td><span class="badge {kind}">{text}</span></td>'
    if header == "converged at":
        kind = "idle" if value == "—" else "ok"
        return f'<td><span class="badge {kind}">{text}</span></td>'
    return f"<td>{text}</td>"


def _section_html(section: Section) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in section.headers)
    body = "".join(
        "<tr>" + "".join(_cell(h, v) for h, v in zip(section.headers, row)) + "</tr>" for row in section.rows
    )
    extra = ""
    if section.extra_image:
        extra = (f'<figure><img src="{html.escape(section.extra_image)}" alt="{html.escape(section.title)} '
                 f'(second figure)" loading="lazy"></figure>')
    return f"""
<section id="{section.slug}">
  <h2>{html.escape(section.title)}</h2>
  <p class="lead">{html.escape(section.lead)}</p>
  <div class="equation">{plots.render_equation(section.equation)}</div>
  <figure><img src="{html.escape(section.image)}" alt="{html.escape(section.title)}"></figure>
  {extra}
  <p class="finding"><b>What it shows:</b> {html.escape(section.finding)}</p>
  <table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
</section>"""


def render_page(sections: list[Section], seconds: float) -> str:
    """The whole page as one self-contained HTML string (inline CSS and SVG, local images only)."""
    nav = "".join(f'<a href="#{s.slug}">{html.escape(s.title.split(":")[0])}</a>' for s in sections)
    blocks = "".join(_section_html(section) for section in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>descentlab — optimizers racing on loss landscapes</title>
<style>{_CSS}</style>
</head>
<body>
<header><div class="wrap">
  <h1>descentlab: optimizers, raced</h1>
  <p>The comparisons of the course notes, run from the same starts with the same noise. Each figure shows
  the paths over the landscape (★ global minimum, ◆ local minimum) and the loss gap on a log scale; the
  legend gives each optimizer's iterations to converge in brackets.</p>
  <nav>{nav}</nav>
</div></header>
<main class="wrap">{blocks}</main>
<footer class="wrap">Generated by <code>descentlab demo</code> in {seconds:.0f} s, torch {torch.__version__}.
Every figure is a PNG next to this page; the page needs no network.</footer>
</body>
</html>
"""


def build_report(
    out: str | os.PathLike = "runs/demo",
    progress: Callable[[str], None] | None = None,
    gif: bool = True,
    only: Sequence[str] | None = None,
) -> tuple[Path, list[Section]]:
    """Run every experiment, write the figures and ``out/index.html``; return the page's path and sections.

    ``progress(name)`` is called after each experiment (for a progress bar); ``only`` restricts the
    report to the experiments with those names (see :data:`EXPERIMENTS`).
    """
    directory = check_output_dir(out)
    experiments = EXPERIMENTS
    if only is not None:
        known = [name for name, _ in EXPERIMENTS]
        unknown = [name for name in only if name not in known]
        if unknown:
            raise ValueError(f"only: unknown experiment {unknown[0]!r}; valid: {', '.join(known)}")
        experiments = [(name, run) for name, run in EXPERIMENTS if name in only]
    began = time.perf_counter()
    sections = []
    for name, experiment in experiments:
        tick = time.perf_counter()
        section = experiment(directory, gif=gif) if experiment is two_minima else experiment(directory)
        section.seconds = time.perf_counter() - tick
        sections.append(section)
        if progress is not None:
            progress(name)
    page = render_page(sections, time.perf_counter() - began)
    index = atomic_write(directory / "index.html", lambda tmp: Path(tmp).write_text(page, "utf-8"))
    return index, sections
