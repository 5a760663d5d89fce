"""The experiments of the demo report: each races optimizers, draws its figures and returns a Section.

Every experiment has the same signature, ``experiment(directory, options) -> Section``: it writes its
figures into ``directory`` (through :mod:`descentlab.plots`, atomically) and returns the
:class:`~descentlab.report.Section` that describes them; :class:`ReportOptions` carries the options
of the whole report (``gif``). :data:`EXPERIMENTS` lists them in page order, by name. The two training
sections, :func:`training_practice` and :func:`diagnosis`, live in :mod:`descentlab.report.practice`; the
toolbox sections after them (clipping, initialisation, gradient checking, whitening, the Hessian spectrum,
Hessian-free / K-FAC) in :mod:`descentlab.report.toolbox`; the claims of the notes
(:func:`claims_section`) and the playground's snapshot (:func:`playground_snapshot`) in
:mod:`descentlab.report.claims`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import plots
from ..bench.demo import bench_section
from ..lab import RaceResult, race
from ..landscapes import least_squares
from ..schedules import SCHEDULES
from ..validation import check_bool
from .claims import claims_section, playground_snapshot
from .distributed import staleness
from .practice import diagnosis, training_practice
from .section import Section
from .toolbox import (
    clipping,
    gradient_checking,
    hessian_free_kfac,
    hessian_spectrum,
    initialisation,
    whitening,
)

__all__ = [
    "ReportOptions",
    "Experiment",
    "EXPERIMENTS",
    "two_minima",
    "sgd_vs_adam",
    "ill_conditioned",
    "batch_sizes",
    "saddle",
    "plateau",
    "adagrad_vs_rmsprop",
    "rosenbrock",
    "schedules",
    "training_practice",
    "diagnosis",
    "clipping",
    "initialisation",
    "gradient_checking",
    "whitening",
    "hessian_spectrum",
    "hessian_free_kfac",
    "claims_section",
    "playground_snapshot",
]


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """Options shared by every experiment. ``gif``: also animate the races that have an animation."""

    gif: bool = True

    def __post_init__(self) -> None:
        check_bool("gif", self.gif)


#: ``experiment(directory, options) -> Section``
Experiment = Callable[[Path, ReportOptions], Section]

_DEFAULT = ReportOptions()


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


def _race_section(
    result: RaceResult,
    directory: Path,
    *,
    figure_title: str,
    slug: str,
    title: str,
    lead: str,
    finding: str,
    equation: str | None = None,
    extra_image: str | None = None,
) -> Section:
    """The section of one race: its figure saved as ``<slug>.png``, its table, and by default the
    landscape's formula as the equation."""
    image = f"{slug}.png"
    plots.save_figure(plots.plot_race(result, title=figure_title), directory / image)
    table = result.rows()
    return Section(
        slug=slug,
        title=title,
        equation=result.landscape.latex if equation is None else equation,
        lead=lead,
        finding=finding,
        image=image,
        headers=list(table[0]),
        rows=[list(row.values()) for row in table],
        extra_image=extra_image,
    )


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


def two_minima(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """Notes 001's two-minima function: which optimizers reach the deeper well, and in how many steps."""
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
    animation = None
    if options.gif:
        animation = plots.animate_race(result, directory / "two-minima.gif", frames=45).name
    return _race_section(
        result,
        directory,
        figure_title="The two-minima function of notes 001",
        slug="two-minima",
        title="Two minima: who finds the deeper well?",
        lead="Every optimizer starts from the same point above the shallow well; the numbers in brackets "
        "are the iterations each needed to settle, as in the notes' figure.",
        finding=f"{_join(deep)} reached the deeper, global well at (−0.97, 0); {_join(shallow)} settled in "
        f"the shallow one{_MOMENTUM_NOTE if 'momentum' in deep else ''}.",
        extra_image=animation,
    )


def sgd_vs_adam(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """SGD against Adam on a strongly convex function, where plain SGD wins."""
    result = race("strongly-convex", [("SGD", "sgd(lr=0.1)"), ("Adam", "adam(lr=0.1)")], steps=150)
    return _race_section(
        result,
        directory,
        figure_title="SGD vs Adam on a strongly convex function",
        slug="sgd-vs-adam",
        title="SGD vs Adam on a strongly convex function",
        lead="On a well-conditioned bowl the plain gradient points almost at the minimum, and a fixed step "
        "shrinks the error by a constant factor every step (linear convergence).",
        finding=f"{_fastest(result)}; Adam's sign-like normalised steps take a curved route and oscillate "
        "before its moment estimates settle.",
    )


def ill_conditioned(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """Gradient descent, momentum, Nesterov and Adam on a quadratic with condition number 100."""
    result = race("quadratic(kappa=100)", [
        ("GD", "sgd(lr=0.01)"),
        ("momentum", "sgd(lr=0.01, momentum=0.9)"),
        ("Nesterov", "sgd(lr=0.01, momentum=0.9, nesterov=True)"),
        ("Adam", "adam(lr=0.1)"),
    ], steps=300)
    gd = result["GD"]
    return _race_section(
        result,
        directory,
        figure_title="A quadratic with condition number κ = 100",
        slug="kappa-100",
        title="Gradient descent, momentum, Nesterov and Adam at κ = 100",
        equation=r"$u_k=\alpha u_{k-1}-\eta\,\nabla f(w_k+\alpha u_{k-1}),\quad w_{k+1}=w_k+u_k$",
        lead="With curvatures from 1 to 100 a step small enough for the steep direction crawls along the "
        "flat one: gradient descent needs about κ steps per digit of accuracy, momentum about √κ.",
        finding=f"{_fastest(result)}; plain gradient descent was still {gd.final_loss:.1e} above the "
        f"minimum after {result.steps} steps.",
    )


def batch_sizes(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """Online (1), mini-batch (8) and full-batch (64) SGD fitting a line to 64 points."""
    runs = []
    for label, size in (("online (batch 1)", 1), ("mini-batch (8)", 8), ("full batch (64)", None)):
        runs.append(_relabel(race(least_squares(batch_size=size), ["sgd(lr=0.05)"], steps=200, xtol=0.05),
                             label))
    result = _merge(*runs)
    online = result["online (batch 1)"]
    jitter = float(np.linalg.norm(online.trajectory[-50:] - online.trajectory[-50:].mean(0), axis=1).mean())
    return _race_section(
        result,
        directory,
        figure_title="Fitting a line: online, mini-batch and full-batch SGD (η = 0.05)",
        slug="batch-size",
        title="Online, mini-batch and full-batch gradient descent",
        equation=r"$g_k=\frac{1}{m}\sum_{i=1}^{m}\nabla_w\mathcal{L}(f_w(x_i),y_i),"
        r"\quad w_{k+1}=w_k-\eta g_k$",
        lead="The same SGD on the same 64 points, with a gradient from 1, 8 or all 64 examples per step; "
        "the larger the batch, the lower the variance of the gradient estimate (notes 001).",
        finding=f"The full-batch path is a smooth curve; the online path keeps jittering (mean distance "
        f"{jitter:.3f} from its own average over the last 50 steps) around the least-squares solution.",
    )


def saddle(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """A saddle point: gradient descent stalls, momentum and gradient noise escape."""
    plain = race("saddle", [("GD", "sgd(lr=0.05)"), ("momentum", "sgd(lr=0.05, momentum=0.9)")],
                 steps=200, xtol=0.05)
    noisy = _relabel(race("saddle", ["sgd(lr=0.05)"], steps=200, noise=0.1, xtol=0.05), "GD + noise σ=0.1")
    result = _merge(plain, noisy)
    gd = result["GD"]
    escaped = _join(_names(result.runs, lambda run: run.converged_at is not None))
    return _race_section(
        result,
        directory,
        figure_title="A saddle point between two minima",
        slug="saddle",
        title="A saddle point: gradient descent stalls, momentum and noise escape",
        lead="Starting a hair (10⁻⁵) off the ridge, the gradient points almost straight at the saddle, "
        "where it vanishes; only the tiny unstable component pushes sideways.",
        finding=f"Gradient descent ends at |x| = {abs(gd.final_point[0]):.2f}, still "
        f"{gd.final_loss - min(result.landscape.minimum_values):.3f} above the minima, while "
        f"{escaped} reached a minimum.",
    )


def plateau(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """A plateau that momentum and Adam cross while gradient descent crawls."""
    result = race("plateau", [("GD", "sgd(lr=0.5)"), ("momentum", "sgd(lr=0.5, momentum=0.9)"),
                              ("Adam", "adam(lr=0.1)")], steps=200)
    moved = np.linalg.norm(result["GD"].final_point - np.array(result.start))
    return _race_section(
        result,
        directory,
        figure_title="Crossing a plateau",
        slug="plateau",
        title="A plateau that momentum crosses",
        equation=r"$u_k=\alpha u_{k-1}-\eta g_k,\quad w_{k+1}=w_k+u_k$",
        lead="Far from the well the gradient is nearly zero; gradient descent's steps are as small as the "
        "gradient, momentum adds them up (up to 1/(1−α) = 10 times) and Adam divides by their size.",
        finding=f"Momentum reached the well at step {result['momentum'].converged_at} and Adam at step "
        f"{result['Adam'].converged_at}; gradient descent moved only {moved:.2f} in {result.steps} steps.",
    )


def _effective_learning_rate(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> float:
    """``η/(√t_k + ε)`` averaged over coordinates, read from AdaGrad's ``sum`` or RMSprop's ``square_avg``."""
    state, group = optimizer.state[param], optimizer.param_groups[0]
    accumulator = state["sum"] if "sum" in state else state["square_avg"]
    return float((group["lr"] / (accumulator.sqrt() + group["eps"])).mean())


def adagrad_vs_rmsprop(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """AdaGrad's effective learning rate can only fall; RMSprop's forgets (two figures)."""
    result = race("ravine", [("AdaGrad", "adagrad(lr=0.1)"), ("RMSprop", "rmsprop(lr=0.1)")], steps=400,
                  record=_effective_learning_rate)
    rates = plots.plot_recorded(result, ylabel=r"effective rate $\eta/(\sqrt{t_k}+\epsilon)$",
                                title="AdaGrad's accumulator only grows; RMSprop's forgets")
    plots.save_figure(rates, directory / "effective-lr.png")
    ada, rms = result["AdaGrad"].recorded, result["RMSprop"].recorded
    return _race_section(
        result,
        directory,
        figure_title="AdaGrad vs RMSprop along a ravine (η = 0.1)",
        slug="adagrad-rmsprop",
        title="AdaGrad's vanishing learning rate against RMSprop",
        equation=r"$t_k=t_{k-1}+g_k\odot g_k\quad\mathrm{vs}\quad t_k=\rho\,t_{k-1}+(1-\rho)\,g_k\odot g_k$",
        lead="AdaGrad divides by the square root of the sum of all past squared gradients, so its steps "
        "can only shrink; RMSprop's moving average forgets the steep start (notes 001).",
        finding=f"AdaGrad's effective rate can only fall ({ada[0]:.2g} after the first step, {ada[-1]:.2g} "
        f"after {result.steps}) and it stalls at loss {result['AdaGrad'].final_loss:.3g}; RMSprop forgets "
        f"the steep start, its rate rises to {rms[-1]:.2g} and it reaches "
        f"{result['RMSprop'].final_loss:.3g}.",
        extra_image="effective-lr.png",
    )


def rosenbrock(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """Rosenbrock's valley: first-order methods crawl along its floor, BFGS follows it."""
    first_order = [("GD", "sgd(lr=0.001)"), ("momentum", "sgd(lr=0.001, momentum=0.9)"),
                   ("Adam", "adam(lr=0.02)"), ("RMSprop", "rmsprop(lr=0.005)")]
    result = race("rosenbrock", [*first_order, ("BFGS", "bfgs")], steps=600)
    best = min(result.runs[: len(first_order)], key=lambda run: run.final_loss)
    return _race_section(
        result,
        directory,
        figure_title="Rosenbrock's valley",
        slug="rosenbrock",
        title="Rosenbrock's banana valley",
        lead="The valley is easy to fall into and hard to follow: its floor curves and is almost flat, "
        "while its walls are 100 times steeper.",
        finding=f"{_fastest(result)}; the best first-order method, {best.label}, was still at loss "
        f"{best.final_loss:.3g} after {result.steps} steps, crawling along the floor.",
    )


_WARM_RESTARTS = "warm restarts (notes 002: T₀=10, T_mult=2, η 0.01…0.1)"


def schedules(directory: Path, options: ReportOptions = _DEFAULT) -> Section:
    """A gallery of learning-rate schedules, with the notes' warm-restart example."""
    steps = 150
    gallery = {
        _WARM_RESTARTS: SCHEDULES["warm_restarts"](T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1),
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
    restarts = gallery[_WARM_RESTARTS]
    starts = [t for t in range(1, steps) if restarts(t) > restarts(t - 1)]
    return Section(
        slug="schedules",
        title="Learning-rate schedules",
        equation=r"$\eta_t=\eta_{min}+\frac{1}{2}(\eta_{max}-\eta_{min})"
        r"\left(1+\cos\frac{\pi\,T_{cur}}{T_i}\right)$",
        lead="A schedule sets the learning rate of every step: decay it to settle into a minimum, warm it "
        "up to start safely, restart it to jump out of a basin (notes 002 and 004).",
        finding=f"The notes' warm-restart example restarts at steps {', '.join(map(str, starts))}: each "
        "cosine period is twice as long as the one before (T_mult = 2).",
        image="schedules.png",
        headers=["schedule", "repr"],
        rows=[[label, repr(schedule)] for label, schedule in gallery.items()],
    )


#: The report's experiments in page order: ``(name, experiment)``; names are what ``only=`` selects.
EXPERIMENTS: list[tuple[str, Experiment]] = [
    ("two minima", two_minima),
    ("SGD vs Adam", sgd_vs_adam),
    ("κ = 100", ill_conditioned),
    ("batch sizes", batch_sizes),
    ("saddle", saddle),
    ("plateau", plateau),
    ("AdaGrad vs RMSprop", adagrad_vs_rmsprop),
    ("Rosenbrock", rosenbrock),
    ("schedules", schedules),
    ("training practice", training_practice),
    ("diagnosis", diagnosis),
    ("clipping", clipping),
    ("initialisation", initialisation),
    ("gradient checking", gradient_checking),
    ("whitening", whitening),
    ("Hessian spectrum", hessian_spectrum),
    ("Hessian-free / K-FAC", hessian_free_kfac),
    ("staleness", staleness),
    ("bench", bench_section),
    ("claims", claims_section),
    ("playground", playground_snapshot),
]
