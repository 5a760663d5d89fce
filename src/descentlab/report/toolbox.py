"""The report's toolbox sections: clipping, initialisation, gradient checking, whitening, the Hessian
spectrum and Hessian-free / K-FAC, each measured on a small model (most on scikit-learn's digits).

Each section is two functions: ``measure_<name>()`` runs the experiment and returns its numbers (a
plain dict, so the tests can recompute them), and ``<name>(directory, options) -> Section`` draws the
figure (matplotlib ``Figure`` + Agg canvas, through :func:`descentlab.plots.save_figure`) and writes
the lead, the finding and the table from those numbers — every sentence that states an outcome is
an f-string over the measurement, with the other wording ready for when the outcome goes the other
way. Each runs on one torch intra-op thread and leaves the global RNG as it found it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import plots
from .._threads import intra_op_threads
from .section import Section

if TYPE_CHECKING:
    from .experiments import ReportOptions

__all__ = [
    "clipping",
    "initialisation",
    "gradient_checking",
    "whitening",
    "hessian_spectrum",
    "hessian_free_kfac",
    "measure_clipping",
    "measure_initialisation",
    "measure_gradient_checking",
    "measure_whitening",
    "measure_hessian_spectrum",
    "measure_second_order",
]

_STYLE = {"axes.spines.top": False, "axes.spines.right": False, "font.size": 10, "axes.titlesize": 11}
_C = plots.COLORS


@contextmanager
def _quiet() -> Iterator[None]:
    """One intra-op thread, and the global RNG restored afterwards (every run seeds its own)."""
    with intra_op_threads(1), torch.random.fork_rng(devices=[]):
        yield


def _save(figure, directory: Path, name: str) -> str:
    plots.save_figure(figure, directory / name)
    return name


def _g(value: float) -> str:
    """A number for a sentence: 3 significant digits, ``inf``/``nan`` spelled out."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞"
    return f"{value:.3g}"


def _digits_mlp(hidden: int, seed: int = 0) -> nn.Sequential:
    from ..training._problems import mlp

    return mlp([64, hidden, 10], seed=seed, activation=nn.Tanh)


def _digits() -> tuple[Tensor, Tensor]:
    from ..training._problems import digits

    x, y, _, _ = digits()
    return x, y


# -- clipping ----------------------------------------------------------------------------------------------
CLIP_STEPS, CLIP_LR, CLIP_NORM, CLIP_RADIUS, CLIP_T = 150, 0.2, 1.0, 1.8, 40


def _rnn_training(clip: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Losses and pre-clip gradient norms of full-batch SGD on a tanh RNN (1 → 16 → 1) whose recurrent
    matrix has spectral radius 1.8, learning a clipped running sum of 40 inputs (the problem the claim
    ``clipping-tames-exploding-gradients`` uses too)."""
    from ..training._problems import exploding_rnn

    losses, norms = exploding_rnn(CLIP_LR, clip, steps=CLIP_STEPS, radius=CLIP_RADIUS, length=CLIP_T)
    return np.asarray(losses), np.asarray(norms)


def _run_summary(losses: np.ndarray, norms: np.ndarray) -> dict[str, Any]:
    finite = np.isfinite(losses)
    first_bad = len(losses) if finite.all() else int(np.argmin(finite))  # index of the first non-finite loss
    with np.errstate(divide="ignore", invalid="ignore"):
        jumps = losses[1:first_bad] / losses[: max(first_bad - 1, 0)]
    return {
        "losses": losses, "norms": norms,
        "final_loss": float(losses[-1]), "best_loss": float(np.nanmin(losses)),
        "max_norm": float(np.nanmax(np.where(np.isfinite(norms), norms, np.nan))),
        "median_norm": float(np.nanmedian(norms)),
        "largest_jump": float(jumps.max()) if len(jumps) else math.nan,
        "jump_step": int(jumps.argmax()) + 2 if len(jumps) else 1,
        "first_nonfinite_step": None if finite.all() else first_bad + 1,
        "finite": bool(finite.all()),
        "clipped_steps": int((norms > CLIP_NORM).sum()),
    }


def measure_clipping() -> dict[str, dict[str, Any]]:
    """``{"none": ..., "clipped": ...}``: each run's losses, gradient norms and summary numbers."""
    with _quiet():
        return {"none": _run_summary(*_rnn_training(None)),
                "clipped": _run_summary(*_rnn_training(CLIP_NORM))}


def _clipping_figure(runs: dict[str, dict[str, Any]]):
    with matplotlib.rc_context(_STYLE):
        fig = plots.new_figure((10, 3.8))
        loss_ax, norm_ax = fig.subplots(1, 2)
        steps = np.arange(1, CLIP_STEPS + 1)
        for key, label, color, style in (("none", "no clipping", _C[3], "-"),
                                         ("clipped", f"clip by global norm, c = {CLIP_NORM:g}", _C[5], "--")):
            run = runs[key]
            loss_ax.plot(steps, run["losses"], color=color, ls=style, label=label)
            norm_ax.plot(steps, run["norms"], color=color, ls=style, label=label)
        norm_ax.axhline(CLIP_NORM, color="0.4", lw=0.8, ls=":")
        norm_ax.annotate(f"c = {CLIP_NORM:g}", (CLIP_STEPS, CLIP_NORM), xytext=(0, -3),
                         textcoords="offset points", ha="right", va="top", fontsize=8, color="0.3")
        bad = runs["none"]["first_nonfinite_step"]
        if bad is not None:
            loss_ax.annotate(f"non-finite from step {bad}", (bad - 1, runs["none"]["losses"][bad - 2]),
                             xytext=(6, -2), textcoords="offset points", fontsize=8, color=_C[3], va="top")
        for ax, ylabel in ((loss_ax, "training loss (MSE)"), (norm_ax, "gradient norm ‖g‖ before clipping")):
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, which="both")
        loss_ax.legend(frameon=False)
        loss_ax.set_title("loss")
        norm_ax.set_title("gradient norm per step")
        fig.suptitle(f"tanh RNN 1→16→1 over {CLIP_T} steps, recurrent spectral radius {CLIP_RADIUS}, "
                     f"full-batch SGD η = {CLIP_LR}", fontsize=10)
        fig.tight_layout()
    return fig


def clipping(directory: Path, options: ReportOptions | None = None) -> Section:
    """Clipping by global norm (Pascanu et al. 2013) on an RNN whose gradient explodes (notes 002)."""
    runs = measure_clipping()
    image = _save(_clipping_figure(runs), directory, "clipping.png")
    none, clipped = runs["none"], runs["clipped"]
    exploded = not none["finite"] or none["largest_jump"] >= 10
    tamed = clipped["finite"] and clipped["largest_jump"] < 2
    if exploded:
        blow = (f"Without clipping the gradient norm reached {_g(none['max_norm'])} (median "
                f"{_g(none['median_norm'])}); the loss rose {_g(none['largest_jump'])}× in one step "
                f"(step {none['jump_step']})"
                + ("" if none["finite"] else
                   f" and was no longer finite from step {none['first_nonfinite_step']} on")
                + ("" if not none["finite"] else f", ending at {_g(none['final_loss'])}"))
    else:
        blow = (f"Without clipping the gradient norm stayed ≤ {_g(none['max_norm'])} and the largest rise "
                f"of the loss was {_g(none['largest_jump'])}× — this run did not explode")
    keep = (f"clipped at c = {CLIP_NORM:g} (on {clipped['clipped_steps']} of {CLIP_STEPS} steps) the "
            f"largest rise was {_g(clipped['largest_jump'])}× and the loss ended at "
            f"{_g(clipped['final_loss'])}")
    share = clipped["clipped_steps"] / CLIP_STEPS
    verdict = (("clipping kept every step's direction and capped its length — "
                + ("on most steps, so here it acts like a normalised-gradient method with step ηc"
                   if share > 0.5 else "only on the few steps that would have thrown the weights away"))
               if tamed and exploded
               else "clipping did not tame this run" if not tamed
               else "clipping changed little here, since nothing exploded")
    finding = f"{blow}; {keep}: {verdict}."
    rows = [[label, _g(r["max_norm"]), _g(r["median_norm"]), f"{_g(r['largest_jump'])}×",
             _g(r["best_loss"]), _g(r["final_loss"]), "yes" if r["finite"] else "no"]
            for label, r in (("no clipping", none), (f"clip by norm, c = {CLIP_NORM:g}", clipped))]
    return Section(
        slug="clipping",
        title="Gradient clipping: an exploding RNN gradient, with and without clip-by-norm",
        equation=r"$g\leftarrow g\cdot\min\left(1,\ \frac{c}{\Vert g\Vert}\right)$",
        lead=f"A tanh RNN reads {CLIP_T} random inputs and predicts their (clipped) sum; its recurrent "
        f"matrix is scaled to spectral radius {CLIP_RADIUS}, so back-propagation through time can multiply "
        f"the gradient by up to {CLIP_RADIUS}^{CLIP_T} (notes 002, \"exploding gradient problem\"). The same "
        f"initialisation trains for {CLIP_STEPS} full-batch SGD steps at η = {CLIP_LR}, once plain and once "
        "with descentlab.clipping.clip_by_global_norm between backward() and step(); the norm plotted is "
        "the one before clipping.",
        finding=finding,
        image=image,
        headers=["run", "max ‖g‖", "median ‖g‖", "largest loss rise", "best loss", "final loss", "finite"],
        rows=rows,
    )


# -- initialisation ----------------------------------------------------------------------------------------
INIT_DEPTH, INIT_WIDTH, INIT_SAMPLES = 10, 256, 512


def _init_schemes(activation: str) -> list[tuple[str, Callable[[Tensor, torch.Generator], Any]]]:
    from .. import init

    gain = nn.init.calculate_gain(activation)
    return [
        ("N(0, 0.01²)", lambda w, g: nn.init.normal_(w, 0.0, 0.01, generator=g)),
        ("N(0, 1)", lambda w, g: nn.init.normal_(w, 0.0, 1.0, generator=g)),
        ("Xavier, gain 1", lambda w, g: init.xavier_normal_(w, generator=g)),
        ("He (ReLU gain √2)", lambda w, g: init.kaiming_normal_(w, nonlinearity="relu", generator=g)),
        (f"orthogonal, gain {gain:.3g}", lambda w, g: init.orthogonal_(w, gain=gain, generator=g)),
    ]


def _init_statistics(initialise, activation: str) -> dict[str, Any]:
    """Per hidden layer: the activations' std, the fraction saturated (|tanh| > 0.99) or dead (ReLU = 0),
    and the std of the gradient of a random linear read-out with respect to the layer's activations."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(INIT_SAMPLES, INIT_WIDTH, generator=g).requires_grad_(True)
    readout = torch.randn(INIT_WIDTH, generator=g)
    act = torch.tanh if activation == "tanh" else torch.relu
    h, outputs = x, []
    for _ in range(INIT_DEPTH):
        w = torch.empty(INIT_WIDTH, INIT_WIDTH)
        initialise(w, g)
        h = act(h @ w.T)
        h.retain_grad()
        outputs.append(h)
    (h @ readout).mean().backward()
    stds = [float(o.detach().std()) for o in outputs]
    grads = [float(o.grad.std()) for o in outputs]
    if activation == "tanh":
        stuck = [float((o.detach().abs() > 0.99).float().mean()) for o in outputs]
    else:
        stuck = [float((o.detach() == 0).all(0).float().mean()) for o in outputs]
    return {"std": stds, "grad_std": grads, "stuck": stuck}


def measure_initialisation() -> dict[str, dict[str, dict[str, Any]]]:
    """``{activation: {scheme: {"std": [...], "grad_std": [...], "stuck": [...]}}}`` at initialisation."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    with _quiet():
        for activation in ("tanh", "relu"):
            found[activation] = {name: _init_statistics(fn, activation)
                                 for name, fn in _init_schemes(activation)}
    return found


def _init_verdict(stats: dict[str, Any], activation: str) -> str:
    """``saturates`` (most tanh units at ±1), ``vanishes`` / ``explodes`` (the last layer's std below 1/10
    or above 10× the first's), ``shrinks`` / ``grows`` (beyond 2× either way) or ``keeps its scale``."""
    first, last = stats["std"][0], stats["std"][-1]
    if activation == "tanh" and stats["stuck"][-1] > 0.5:
        return "saturates"
    if last < 0.1 * first or last < 1e-3:
        return "vanishes"
    if last > 10 * first:
        return "explodes"
    if last < 0.5 * first:
        return "shrinks"
    if last > 2 * first:
        return "grows"
    return "keeps its scale"


def _initialisation_figure(found):
    with matplotlib.rc_context(_STYLE):
        fig = plots.new_figure((10, 6.6))
        axes = fig.subplots(2, 2, sharex=True)
        layers = np.arange(1, INIT_DEPTH + 1)
        for column, activation in enumerate(("tanh", "relu")):
            for i, (name, stats) in enumerate(found[activation].items()):
                style = plots.LINESTYLES[i % 2]
                for row, key in enumerate(("std", "grad_std")):
                    axes[row, column].plot(layers, np.maximum(stats[key], 1e-30), marker="o", ms=3,
                                           color=_C[i], ls=style, label=name)
            axes[0, column].set_title(f"{activation} MLP, {INIT_DEPTH} layers × {INIT_WIDTH}")
            axes[0, column].set_ylabel("std of the activations")
            axes[1, column].set_ylabel("std of ∂L/∂(activations)")
            axes[1, column].set_xlabel("layer")
        for ax in axes.flat:
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="major")
            ax.set_xticks(layers)
        axes[0, 1].legend(frameon=False, fontsize=8, loc="best")
        fig.tight_layout()
    return fig


def initialisation(directory: Path, options: ReportOptions | None = None) -> Section:
    """Activation and gradient scale through a deep tanh / ReLU MLP at initialisation, scheme by scheme."""
    found = measure_initialisation()
    image = _save(_initialisation_figure(found), directory, "initialisation.png")
    rows, clauses = [], []
    for activation, schemes in found.items():
        groups: dict[str, list[str]] = {}
        for name, stats in schemes.items():
            verdict = _init_verdict(stats, activation)
            groups.setdefault(verdict, []).append(name)
            ratio = stats["grad_std"][0] / stats["grad_std"][-1] if stats["grad_std"][-1] > 0 else math.inf
            stuck = "saturated |h| > 0.99" if activation == "tanh" else "dead units"
            rows.append([activation, name, _g(stats["std"][0]), _g(stats["std"][-1]),
                         f"{stats['stuck'][-1]:.0%} {stuck}", _g(ratio), verdict])
        parts = []
        for verdict in ("keeps its scale", "shrinks", "grows", "vanishes", "explodes", "saturates"):
            names = groups.get(verdict, [])
            if names:
                verb = verdict if len(names) == 1 else {"keeps its scale": "keep their scale",
                                                         "vanishes": "vanish", "shrinks": "shrink",
                                                         "explodes": "explode"}.get(verdict, verdict[:-1])
                parts.append(f"{_join(names)} {verb}")
        clauses.append(f"with {activation}, " + "; ".join(parts))
    tanh, relu = found["tanh"], found["relu"]
    xavier, he, big = tanh["Xavier, gain 1"], relu["He (ReLU gain √2)"], tanh["N(0, 1)"]

    def back(stats) -> str:
        ratio = stats["grad_std"][0] / stats["grad_std"][-1]
        return f"grows {_g(ratio)}×" if ratio >= 1 else f"shrinks to {_g(ratio)}×"

    finding = (
        f"At layer {INIT_DEPTH}: " + "; ".join(clauses) + ". "
        f"Xavier with tanh ends at std {_g(xavier['std'][-1])} (layer 1: {_g(xavier['std'][0])}) and He with "
        f"ReLU at {_g(he['std'][-1])} (layer 1: {_g(he['std'][0])}); from layer {INIT_DEPTH} back to layer 1 "
        f"their gradient's std {back(xavier)} and {back(he)}. N(0, 1) with tanh leaves "
        f"{big['stuck'][-1]:.0%} of the last layer's units saturated and its gradient {back(big)} on the way "
        "back."
    )
    return Section(
        slug="initialisation",
        title="Initialisation: activation and gradient scale through depth, scheme by scheme",
        equation=r"$\sigma_{fan\,in}=\frac{1}{\sqrt{n_{in}}},\quad "
        r"\sigma_{Xavier}=g\sqrt{\frac{2}{n_{in}+n_{out}}},\quad \sigma_{He}=\sqrt{\frac{2}{n_{in}}}$",
        lead=f"A {INIT_DEPTH}-layer MLP of width {INIT_WIDTH} (no biases) on {INIT_SAMPLES} Gaussian inputs, "
        "weights drawn by descentlab.init (notes 000: \"small random values … proportional to √fan-in\"; "
        "Xavier–Glorot with the paper's gain 1, which for these square layers is the notes' randn(N)/√N; "
        "He et al. 2015 with ReLU's gain √2; orthogonal, Saxe et al. 2014, with the activation's gain) next "
        "to the naive N(0, 0.01²) and N(0, 1). Measured before any training: the standard deviation of "
        "every layer's activations, and of the gradient of a random linear read-out with respect to them.",
        finding=finding,
        image=image,
        headers=["activation", "scheme", "std, layer 1", f"std, layer {INIT_DEPTH}",
                 f"layer {INIT_DEPTH}", f"grad std, layer 1 / layer {INIT_DEPTH}", "verdict"],
        rows=rows,
    )


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# -- gradient checking -------------------------------------------------------------------------------------
class _Tanh(torch.autograd.Function):
    """tanh with its own backward: ``∂tanh(x)/∂x = 1 − tanh²(x)``."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class _BuggyTanh(_Tanh):
    """The planted bug: ``1 − tanh(x)`` where ``1 − tanh²(x)`` belongs — a typo that still trains."""

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y)


class _Activation(nn.Module):
    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


GRADCHECK_EPS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11)


def _gradcheck_model(function) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), _Activation(function), nn.Linear(16, 10))


def measure_gradient_checking() -> dict[str, Any]:
    """descentlab.gradcheck on a digits MLP with torch's tanh, a hand-written correct backward and a buggy
    one; the function check (torch.autograd.gradcheck) of each custom Function; and the correct model's
    largest relative error against the finite-difference step ε."""
    from ..gradcheck import gradcheck, gradcheck_function

    x, y = _digits()
    x, y = x[:64], y[:64]
    with _quiet():
        models = {"torch.tanh": torch.tanh, "custom tanh, correct backward": _Tanh.apply,
                  "custom tanh, backward 1 − y (bug)": _BuggyTanh.apply}
        reports = {name: gradcheck(_gradcheck_model(fn), F.cross_entropy, x, y)
                   for name, fn in models.items()}
        probe = torch.randn(5, 3, dtype=torch.float64)
        functions = {"custom tanh, correct backward": gradcheck_function(_Tanh.apply, probe),
                     "custom tanh, backward 1 − y (bug)": gradcheck_function(_BuggyTanh.apply, probe)}
        correct = _gradcheck_model(_Tanh.apply)
        sweep = [max(c.max_rel_error
                     for c in gradcheck(correct, F.cross_entropy, x, y, eps=eps, max_coords=8))
                 for eps in GRADCHECK_EPS]
    return {"reports": reports, "functions": functions, "eps": list(GRADCHECK_EPS), "sweep": sweep}


def _gradcheck_figure(found):
    with matplotlib.rc_context(_STYLE):
        fig = plots.new_figure((10, 3.9))
        scatter, sweep = fig.subplots(1, 2)
        for i, (name, report) in enumerate(found["reports"].items()):
            analytic = torch.cat([c.analytic for c in report]).numpy()
            numerical = torch.cat([c.numerical for c in report]).numpy()
            scatter.scatter(numerical, analytic, s=12 if i != 2 else 16, color=_C[[5, 2, 3][i]],
                            marker=["o", "x", "^"][i], alpha=0.8, label=name)
        lo, hi = scatter.get_xlim()
        scatter.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls=":", zorder=0)
        scatter.set_xlabel("central difference (L(w+ε) − L(w−ε)) / 2ε")
        scatter.set_ylabel("backprop ∂L/∂w")
        scatter.set_title("every checked coordinate, ε = 1e-6")
        scatter.legend(frameon=False, fontsize=8)
        scatter.grid(alpha=0.3)
        sweep.loglog(found["eps"], np.maximum(found["sweep"], 1e-16), marker="o", color=_C[2])
        sweep.set_xlabel("finite-difference step ε")
        sweep.set_ylabel("largest relative error")
        sweep.set_title("correct backward: truncation ε² vs round-off u/ε")
        sweep.grid(alpha=0.3, which="both")
        fig.tight_layout()
    return fig


def gradient_checking(directory: Path, options: ReportOptions | None = None) -> Section:
    """descentlab.gradcheck passing on correct gradients and catching a planted wrong backward (notes 003)."""
    found = measure_gradient_checking()
    image = _save(_gradcheck_figure(found), directory, "gradient-checking.png")
    reports, functions = found["reports"], found["functions"]
    rows = []
    for name, report in reports.items():
        for check in report:
            rows.append([name, check.name, f"{check.checked}/{check.numel}", f"{check.max_abs_error:.1e}",
                         f"{check.max_rel_error:.1e}", "pass" if check.passed else "FAIL"])
    for name, passed in functions.items():
        rows.append([name, "the Function alone (torch.autograd.gradcheck)", "5×3 input", "—", "—",
                     "pass" if passed else "FAIL"])
    good = [n for n in reports if "bug" not in n]
    bug = next(n for n in reports if "bug" in n)
    worst_good = max(c.max_rel_error for n in good for c in reports[n])
    caught = reports[bug].failed
    intact = [c.name for c in reports[bug] if c.passed]
    worst_bug = max(c.max_rel_error for c in reports[bug])
    goods_pass = all(reports[n].passed for n in good)
    best = int(np.argmin(found["sweep"]))
    finding = (
        (f"Both correct gradients passed (largest relative error {worst_good:.1e})"
         if goods_pass else f"A correct gradient failed the check (largest relative error {worst_good:.1e})")
        + "; "
        + (f"the planted bug failed on {_join(caught)} (relative error up to {worst_bug:.2g}), upstream of "
           "the wrong backward"
           + (f", while {_join(intact)}, whose gradient does not pass through it, "
              f"{'still checks' if len(intact) == 1 else 'still check'}" if intact else "")
           if caught else f"the planted bug was NOT caught (relative error {worst_bug:.2g})")
        + ", and torch.autograd.gradcheck on the Function alone "
        + ("also flags it" if not functions[bug] else "does not flag it")
        + f". The error of the difference quotient is smallest at ε = {found['eps'][best]:.0e} "
        f"({found['sweep'][best]:.1e}); larger steps add truncation error, smaller ones round-off."
    )
    return Section(
        slug="gradient-checking",
        title="Gradient checking: a correct backward passes, a planted bug is caught",
        equation=r"$\tilde g_i=\frac{L(w+\varepsilon e_i)-L(w-\varepsilon e_i)}{2\varepsilon},\quad "
        r"|g_i-\tilde g_i|\leq a_{tol}+r_{tol}\,|\tilde g_i|$",
        lead="A digits MLP 64 → 16 → tanh → 10 with cross-entropy on 64 images, checked by "
        "descentlab.gradcheck (float64 central differences, up to 32 coordinates per tensor; notes 003: "
        "\"use the analytic gradient, but check it with the numerical one\"), three times: with torch's "
        "tanh, with a hand-written torch.autograd.Function whose backward is 1 − tanh², and with the same "
        "Function whose backward has a typo, 1 − tanh.",
        finding=finding,
        image=image,
        headers=["model", "parameter", "checked", "max abs err", "max rel err", "result"],
        rows=rows,
    )


# -- whitening ---------------------------------------------------------------------------------------------
WHITEN_STEPS, WHITEN_TOL = 300, 1e-6


def _correlated_regression() -> tuple[Tensor, Tensor]:
    """2 000 samples of 8 features mixed from independent ones (strongly correlated), y linear + noise."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 8, generator=g, dtype=torch.float64)
    mix = torch.eye(8, dtype=torch.float64) + 0.9 * torch.ones(8, 8, dtype=torch.float64)
    scale = torch.logspace(0, 1, 8, dtype=torch.float64)
    x = (z * scale) @ mix
    y = x @ torch.linspace(-1, 1, 8, dtype=torch.float64) + 0.1 * torch.randn(2000, generator=g,
                                                                               dtype=torch.float64)
    return x, y


def _covariance_kappa(x: Tensor) -> float:
    """λ_max/λ_min of the covariance of the columns; ``inf`` when some direction has (numerically) none."""
    eig = torch.linalg.eigvalsh(torch.cov(x.T))
    if eig.min() <= 1e-12 * eig.max():
        return math.inf
    return float(eig.max() / eig.min())


def _gd_least_squares(x: Tensor, y: Tensor) -> dict[str, Any]:
    """GD on ½‖Xw + b − y‖²/n from zero at the best fixed rate 2/(λ_max + λ_min) of its Hessian."""
    n = x.shape[0]
    a = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)
    h = a.T @ a / n
    eig = torch.linalg.eigvalsh(h)
    lr = float(2 / (eig.max() + eig.min()))
    w_star = torch.linalg.lstsq(a, y).solution
    f = lambda w: float(0.5 * ((a @ w - y) ** 2).mean())  # noqa: E731
    f_star = f(w_star)
    w = torch.zeros(a.shape[1], dtype=x.dtype)
    gaps = [f(w) - f_star]
    for _ in range(WHITEN_STEPS):
        w = w - lr * (a.T @ (a @ w - y) / n)
        gaps.append(f(w) - f_star)
    gaps_np = np.asarray(gaps) / gaps[0]
    reached = np.nonzero(gaps_np <= WHITEN_TOL)[0]
    return {"gaps": gaps_np, "lr": lr, "hessian_kappa": float(eig.max() / eig.min()),
            "steps": int(reached[0]) if len(reached) else None}


def _gd_softmax(x: Tensor, y: Tensor, steps: int) -> dict[str, Any]:
    """Full-batch GD on softmax regression from zero, at 1/λ_max of the loss's curvature bound ½·XᵀX/n."""
    n = x.shape[0]
    a = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1)
    lr = float(1 / (0.5 * torch.linalg.eigvalsh(a.T @ a / n).max()))
    w = torch.zeros(a.shape[1], 10, dtype=x.dtype, requires_grad=True)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(a @ w, y)
        (grad,) = torch.autograd.grad(loss, w)
        losses.append(float(loss.detach()))
        with torch.no_grad():
            w -= lr * grad
    losses.append(float(F.cross_entropy(a @ w, y).detach()))
    return {"losses": np.asarray(losses), "lr": lr}


def measure_whitening() -> dict[str, Any]:
    """Least squares on correlated features and softmax regression on digits, each with raw inputs, PCA
    rotation only (decorrelated) and PCA whitening (descentlab.preprocessing.decorrelate)."""
    from ..preprocessing import decorrelate

    with _quiet():
        x, y = _correlated_regression()
        regression = {}
        for name, transform in (("raw", None), ("decorrelated", False), ("whitened", True)):
            z = x if transform is None else decorrelate(x, whiten=transform)(x)
            regression[name] = {"kappa": _covariance_kappa(z), **_gd_least_squares(z, y)}
        digits_x, digits_y = _digits()
        digits_x = digits_x.double()
        keep = int((torch.linalg.eigvalsh(torch.cov(digits_x.T)) > 1e-3 * torch.linalg.eigvalsh(
            torch.cov(digits_x.T)).max()).sum())
        classification = {}
        for name, transform in (("raw", None), ("decorrelated", False), ("whitened", True)):
            if transform is None:
                z = digits_x
            else:
                z = decorrelate(digits_x, whiten=transform, n_components=keep)(digits_x)
            classification[name] = {"kappa": _covariance_kappa(z), **_gd_softmax(z, digits_y, 150)}
    return {"regression": regression, "classification": classification, "components": keep}


_WHITEN_STYLE = {"raw": (_C[3], "-"), "decorrelated": (_C[0], "--"), "whitened": (_C[5], ":")}


def _whitening_figure(found):
    with matplotlib.rc_context(_STYLE):
        fig = plots.new_figure((10, 3.9))
        reg_ax, cls_ax = fig.subplots(1, 2)
        for name, run in found["regression"].items():
            color, style = _WHITEN_STYLE[name]
            reg_ax.semilogy(np.maximum(run["gaps"], 1e-12), color=color, ls=style, lw=1.8,
                            label=f"{name} (κ = {_g(run['kappa'])})")
        reg_ax.axhline(WHITEN_TOL, color="0.5", lw=0.8, ls=":")
        reg_ax.set_ylim(bottom=1e-12)
        reg_ax.annotate(f"target {WHITEN_TOL:.0e}; below 1e-12 drawn at 1e-12", (WHITEN_STEPS, WHITEN_TOL),
                        xytext=(0, 3), textcoords="offset points", ha="right", fontsize=8, color="0.3")
        reg_ax.set_title("least squares, 8 correlated features")
        reg_ax.set_ylabel("(f − f*) / (f₀ − f*)")
        for name, run in found["classification"].items():
            color, style = _WHITEN_STYLE[name]
            cls_ax.semilogy(run["losses"], color=color, ls=style, lw=1.8,
                            label=f"{name} (κ = {_g(run['kappa'])})")
        cls_ax.set_title(f"softmax regression on digits ({found['components']} components)")
        cls_ax.set_ylabel("training cross-entropy")
        for ax in (reg_ax, cls_ax):
            ax.set_xlabel("GD step")
            ax.grid(alpha=0.3, which="both")
            ax.legend(frameon=False, fontsize=8, title="inputs (κ of their covariance)", title_fontsize=8)
        fig.tight_layout()
    return fig


def whitening(directory: Path, options: ReportOptions | None = None) -> Section:
    """PCA decorrelation and whitening of correlated inputs before gradient descent (notes 000)."""
    found = measure_whitening()
    image = _save(_whitening_figure(found), directory, "whitening.png")
    reg, cls = found["regression"], found["classification"]

    def steps(run) -> str:
        if run["steps"] is None:
            return f"not within {WHITEN_STEPS} steps"
        return f"{run['steps']} step" + ("" if run["steps"] == 1 else "s")

    rows = []
    kappa = lambda value: "∞ (constant pixels)" if math.isinf(value) else f"{value:.3g}"  # noqa: E731
    for problem, runs in (("least squares", reg), ("softmax, digits", cls)):
        for name, run in runs.items():
            if problem == "least squares":
                gap = run["gaps"][-1]
                end = f"{gap:.1e} (gap)" if gap > 1e-15 else "< 1e-15 (gap, round-off)"
            else:
                end = f"{run['losses'][-1]:.3g} (loss)"
            reached = steps(run) if problem == "least squares" else "—"
            rows.append([problem, name, kappa(run["kappa"]), f"{run['lr']:.3g}", reached, end])
    raw_loss, white_loss = cls["raw"]["losses"][-1], cls["whitened"]["losses"][-1]
    raw_gap, rotated_gap = reg["raw"]["gaps"][-1], reg["decorrelated"]["gaps"][-1]
    same = abs(raw_gap - rotated_gap) <= 0.1 * raw_gap + 1e-12
    finding = (
        f"Whitening brought κ of the input covariance from {reg['raw']['kappa']:.3g} to "
        f"{reg['whitened']['kappa']:.3g}; gradient descent on least squares reached a relative gap of "
        f"{WHITEN_TOL:.0e} in {steps(reg['whitened'])} with whitened inputs, against "
        f"{steps(reg['raw'])} with raw ones. "
        + ("Rotating without rescaling leaves the eigenvalues as they are "
           f"(κ {reg['decorrelated']['kappa']:.3g}), and "
           + ("GD, which is rotation-invariant, ran the same course"
              if same else "yet GD ran a different course")
           + f" ({steps(reg['decorrelated'])}, gap {reg['decorrelated']['gaps'][-1]:.2g} against "
           f"{reg['raw']['gaps'][-1]:.2g}): it is the rescaling that rounds the bowl. ")
        + f"On the digits, softmax regression after {len(cls['raw']['losses']) - 1} GD steps is at loss "
        f"{white_loss:.3g} with whitened inputs against {raw_loss:.3g} with raw pixels"
        + (" — whitening pays there too." if white_loss < raw_loss else " — whitening did not help there.")
    )
    return Section(
        slug="whitening",
        title="Whitening: PCA decorrelation of the inputs before gradient descent",
        equation=r"$C=V\Lambda V^{T},\qquad z=(x-\mu)\,V\,\Lambda^{-1/2},\qquad \kappa(\mathrm{cov}\,z)=1$",
        lead="For a linear model with squared error the Hessian is the covariance of the (augmented) inputs, "
        "and gradient descent needs about κ steps per digit of accuracy (notes 000: \"decorrelating input "
        "components\"; 003: the condition number). Inputs three ways — raw, rotated onto the principal axes "
        "(descentlab.preprocessing.decorrelate(whiten=False)) and whitened (whiten=True) — fed to full-batch "
        "GD from zero: least squares on 8 strongly correlated, zero-mean synthetic features, each run at its "
        "own best fixed rate 2/(λ_max + λ_min), and softmax regression on the digits at 1/λ_max of its "
        f"curvature bound, keeping the {found['components']} principal components whose variance exceeds "
        "10⁻³ of the largest (the rest are near-constant border pixels).",
        finding=finding,
        image=image,
        headers=["problem", "inputs", "κ(cov)", "step size", f"to gap {WHITEN_TOL:.0e}", "at the end"],
        rows=rows,
    )


# -- the Hessian spectrum ----------------------------------------------------------------------------------
HESSIAN_HIDDEN, HESSIAN_EPOCHS, LANCZOS_STEPS, SLQ_PROBES, NEGATIVE_CUT = 16, 40, 80, 8, 0.01


def _spectrum(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Any]:
    from ..curvature import hessian_operator, lanczos, spectral_density

    op = hessian_operator(model, F.cross_entropy, x, y)
    t, _ = lanczos(op, LANCZOS_STEPS, generator=torch.Generator().manual_seed(1))
    ritz = torch.linalg.eigvalsh(t)
    density = spectral_density(op, num_probes=SLQ_PROBES, num_steps=LANCZOS_STEPS,
                               generator=torch.Generator().manual_seed(2))
    lam_max, lam_min = float(ritz.max()), float(ritz.min())
    nodes = torch.nan_to_num(density.nodes, nan=0.0)
    # the fraction of eigenvalues below −λ_max/100 (Gauss-quadrature weights of those Ritz values): SLQ
    # lumps the bulk near zero into a few nodes, so it cannot tell the sign of the tiniest eigenvalues
    negative = float((density.weights * (nodes < -NEGATIVE_CUT * lam_max)).sum(1).mean())
    return {"lambda_max": lam_max, "lambda_min": lam_min, "negative_fraction": negative,
            "grid": density.grid.numpy(), "density": density.density.numpy(), "size": op.size}


def measure_hessian_spectrum() -> dict[str, Any]:
    """The Hessian of the full-batch training loss of a digits MLP (64 → 16 → tanh → 10), at torch's
    default initialisation and after Adam training: Lanczos extremes and the SLQ density."""
    from ..training import accuracy, fit

    x, y = _digits()
    with _quiet():
        model = _digits_mlp(HESSIAN_HIDDEN)
        start = _spectrum(model, x, y)
        start["loss"] = float(F.cross_entropy(model(x), y).detach())
        from ..training._problems import batches

        train = batches(x, y, 64, seed=0, epochs=1)
        fit(model, torch.optim.Adam(model.parameters(), lr=0.01), train, epochs=HESSIAN_EPOCHS,
            loss_fn=F.cross_entropy, progress=False)
        end = _spectrum(model, x, y)
        with torch.no_grad():
            out = model(x)
        end["loss"] = float(F.cross_entropy(out, y))
        end["accuracy"] = float(accuracy(out, y))
    return {"init": start, "trained": end, "params": start["size"]}


def _hessian_figure(found):
    with matplotlib.rc_context(_STYLE):
        fig = plots.new_figure((10, 3.9))
        axes = fig.subplots(1, 2)
        for ax, key, title, color in ((axes[0], "init", "at initialisation", _C[0]),
                                      (axes[1], "trained", f"after {HESSIAN_EPOCHS} epochs of Adam", _C[5])):
            s = found[key]
            ax.semilogy(s["grid"], np.maximum(s["density"], 1e-12), color=color)
            ax.set_ylim(bottom=max(1e-6, float(np.maximum(s["density"], 1e-12).min())))
            ax.axvline(0, color="0.5", lw=0.8, ls=":")
            marks = ((s["lambda_min"], "λ_min", "left"), (s["lambda_max"], "λ_max", "right"))
            for value, label, align in marks:
                ax.axvline(value, color=_C[3], lw=0.8, ls="--")
                ax.annotate(f"{label} = {value:.3g}", (value, 1), xycoords=("data", "axes fraction"),
                            xytext=(3 if align == "left" else -3, -12), textcoords="offset points",
                            ha=align, fontsize=8, color=_C[3])
            ax.set_title(f"{title}: loss {s['loss']:.3g}, {s['negative_fraction']:.1%} of λ < −λ_max/100",
                         fontsize=10)
            ax.set_xlabel("eigenvalue λ of the Hessian")
            ax.set_ylabel("density (SLQ, log)")
            ax.grid(alpha=0.3)
        fig.tight_layout()
    return fig


def hessian_spectrum(directory: Path, options: ReportOptions | None = None) -> Section:
    """The Hessian's eigenvalue density of a digits MLP at initialisation and after training."""
    found = measure_hessian_spectrum()
    image = _save(_hessian_figure(found), directory, "hessian-spectrum.png")
    s0, s1 = found["init"], found["trained"]
    grew = s1["lambda_max"] > s0["lambda_max"]
    rows = [[label, f"{s['loss']:.3g}", f"{s['lambda_max']:.3g}", f"{s['lambda_min']:.3g}",
             f"{abs(s['lambda_min']) / s['lambda_max']:.2g}", f"{s['negative_fraction']:.1%}"]
            for label, s in (("initialisation", s0), (f"after {HESSIAN_EPOCHS} epochs of Adam", s1))]
    finding = (
        f"λ_max {'grew' if grew else 'fell'} from {s0['lambda_max']:.3g} at initialisation to "
        f"{s1['lambda_max']:.3g} after training (loss {s0['loss']:.3g} → {s1['loss']:.3g}, training accuracy "
        f"{s1['accuracy']:.1%}); λ_min went from {s0['lambda_min']:.3g} to {s1['lambda_min']:.3g}, so the "
        + ("curvature at the trained point is still indefinite — not a strict minimum — "
           if s1["lambda_min"] < 0 else "curvature at the trained point is non-negative, ")
        + f"with {s1['negative_fraction']:.1%} of the eigenvalues below −λ_max/100 "
        f"(at initialisation {s0['negative_fraction']:.1%}). The negative part is "
        + (f"small: |λ_min|/λ_max = {abs(s1['lambda_min']) / s1['lambda_max']:.2g}; most of the spectrum "
           "crowds near zero with a few large outliers, the shape Ghorbani et al. (2019) report."
           if abs(s1["lambda_min"]) < 0.1 * s1["lambda_max"]
           else f"not small: |λ_min|/λ_max = {abs(s1['lambda_min']) / s1['lambda_max']:.2g}.")
        + f" Full-batch GD with a learning rate above 2/λ_max = {2 / s1['lambda_max']:.3g} would be unstable "
        "at the end point."
    )
    return Section(
        slug="hessian-spectrum",
        title="The Hessian spectrum of a digits MLP: at initialisation and after training",
        equation=r"$\phi_\sigma(t)=\frac{1}{n}\sum_i\mathcal{N}(t;\lambda_i,\sigma^2)\approx"
        r"\frac{1}{S}\sum_s\sum_j\tau_{s,j}\,\mathcal{N}(t;\theta_{s,j},\sigma^2)$",
        lead=f"The Hessian of the full-batch cross-entropy of a 64 → {HESSIAN_HIDDEN} → tanh → 10 MLP on "
        f"1,200 digits ({found['params']} parameters), never formed: descentlab.curvature's Lanczos "
        f"({LANCZOS_STEPS} steps, full reorthogonalisation) gives λ_max and λ_min, and stochastic Lanczos "
        f"quadrature ({SLQ_PROBES} probes) the smoothed eigenvalue density and the fraction of it below "
        f"−λ_max/100 (the sign of the bulk nearer zero is beyond its resolution); "
        f"once at torch's default initialisation, once after {HESSIAN_EPOCHS} epochs of Adam "
        "(η = 0.01, batches of 64) with descentlab.training.fit. Notes 000: \"the Hessian may not be "
        "positive semi-definite, thus when the gradient is 0 we don't necessarily know where we are\".",
        finding=finding,
        image=image,
        headers=["point", "training loss", "λ_max", "λ_min", "|λ_min| / λ_max", "eigenvalues < −λ_max/100"],
        rows=rows,
    )


# -- Hessian-free and K-FAC --------------------------------------------------------------------------------
SECOND_ORDER_BUDGET, SECOND_ORDER_HIDDEN = 200, 32
_SECOND_ORDER = {
    "Adam": "η = 0.01",
    "Hessian-free": "Gauss–Newton CG ≤ 20 iterations, λ₀ = 0.1",
    "K-FAC": "η = 0.3, damping 0.01",
}


def _train_counted(name: str, x: Tensor, y: Tensor, budget: int) -> dict[str, Any]:
    """Train one optimizer until it has used ``budget`` passes; after each step record the passes used,
    the seconds spent inside ``step`` and the full-batch training loss (measured outside the budget)."""
    from ..second_order import HessianFree, NaturalGradient

    model = _digits_mlp(SECOND_ORDER_HIDDEN)
    params = list(model.parameters())
    if name == "Adam":
        opt = torch.optim.Adam(params, lr=0.01)
    elif name == "Hessian-free":
        opt = HessianFree(params, damping=0.1, cg_max_iter=20)
    else:
        opt = NaturalGradient(params, lr=0.3, damping=0.01, model=model)
    calls = 0

    def closure():  # torch style: Adam and K-FAC
        nonlocal calls
        calls += 1
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    def closure_with_outputs():  # (loss, outputs): Hessian-free's Gauss–Newton products
        nonlocal calls
        calls += 1
        out = model(x)
        return F.cross_entropy(out, y), out

    products, used, seconds = 0, 0, 0.0
    with torch.no_grad():
        loss0 = float(F.cross_entropy(model(x), y))
    passes, times, losses = [0], [0.0], [loss0]
    while used < budget:
        tick = time.perf_counter()
        if name == "Hessian-free":
            opt.step(closure_with_outputs)
            products += opt.solver_state["cg_iterations"]
        else:
            opt.step(closure)
        seconds += time.perf_counter() - tick
        used = calls + products
        with torch.no_grad():
            losses.append(float(F.cross_entropy(model(x), y)))
        passes.append(used)
        times.append(seconds)
    if name == "K-FAC":
        opt.close()
    return {"passes": np.asarray(passes), "seconds": np.asarray(times), "losses": np.asarray(losses),
            "closure_calls": calls, "products": products, "steps": len(losses) - 1}


def measure_second_order() -> dict[str, dict[str, Any]]:
    """Adam, Hessian-free and K-FAC on the digits MLP 64 → 32 → tanh → 10, full batch, each given the
    same budget of passes (closure calls + curvature-vector products)."""
    x, y = _digits()
    with _quiet():
        return {name: _train_counted(name, x, y, SECOND_ORDER_BUDGET) for name in _SECOND_ORDER}


def _second_order_figure(found):
    with matplotlib.rc_context(_STYLE):
        fig = plots.new_figure((10, 3.9))
        by_passes, by_time = fig.subplots(1, 2, sharey=True)
        for i, (name, run) in enumerate(found.items()):
            color, style = (_C[3], _C[5], _C[2])[i], plots.LINESTYLES[i]
            label = f"{name} ({run['steps']} steps)"
            for ax, key in ((by_passes, "passes"), (by_time, "seconds")):
                ax.semilogy(run[key], run["losses"], color=color, ls=style, marker=".", ms=3, label=label)
        by_passes.set_xlabel("passes: closure calls + curvature-vector products")
        by_time.set_xlabel("wall time inside step() (s)")
        by_passes.set_ylabel("full-batch training loss")
        by_passes.legend(frameon=False, fontsize=8)
        for ax in (by_passes, by_time):
            ax.grid(alpha=0.3, which="both")
        by_passes.set_title(f"budgets of {SECOND_ORDER_BUDGET} passes (a last step may overrun)")
        by_time.set_title("the same runs against time")
        fig.tight_layout()
    return fig


def _loss_at(run: dict[str, Any], key: str, limit: float) -> float:
    """The run's training loss after the last step that ended within ``limit`` (passes or seconds)."""
    inside = np.nonzero(run[key] <= limit)[0]
    return float(run["losses"][inside[-1]])


def hessian_free_kfac(directory: Path, options: ReportOptions | None = None) -> Section:
    """Adam against Hessian-free and K-FAC at equal budgets of passes, and against wall time."""
    found = measure_second_order()
    image = _save(_second_order_figure(found), directory, "second-order.png")
    names = list(found)
    final = {name: float(run["losses"][-1]) for name, run in found.items()}
    order = sorted(names, key=final.get)
    # at equal time: every run cut at the time the fastest-finishing run needed for its whole budget
    shortest = min(float(run["seconds"][-1]) for run in found.values())
    at_time = {name: _loss_at(run, "seconds", shortest) for name, run in found.items()}
    time_order = sorted(names, key=at_time.get)
    rows = [[name, _SECOND_ORDER[name], str(run["steps"]), str(run["closure_calls"]), str(run["products"]),
             f"{run['seconds'][-1]:.2f}", f"{final[name]:.3g}", f"{at_time[name]:.3g}"]
            for name, run in found.items()]
    hf = found["Hessian-free"]
    finding = (
        f"At an equal budget of about {SECOND_ORDER_BUDGET} passes, {order[0]} reached the lowest training "
        f"loss ({final[order[0]]:.3g}), then {order[1]} ({final[order[1]]:.3g}) and {order[2]} "
        f"({final[order[2]]:.3g}). Hessian-free spent its passes on {hf['steps']} outer steps — "
        f"{hf['products']} Gauss–Newton products and {hf['closure_calls']} closure calls — against Adam's "
        f"{found['Adam']['steps']} steps. Cut at {shortest:.2f} s, the time the quickest run needed for its "
        f"whole budget, the order is {', '.join(f'{n} ({at_time[n]:.3g})' for n in time_order)}"
        + (" — the same as by passes." if time_order == order else " — not the order by passes: a pass "
           "does not cost the same in every method.")
    )
    return Section(
        slug="second-order",
        title="Hessian-free and K-FAC against Adam: loss per pass and per second",
        equation=r"$HF:\ (G+\lambda I)\,p=-\nabla f\ \mathrm{by\ CG},\qquad "
        r"K\!-\!FAC:\ \Delta W=-\eta\,(G+\sqrt{\lambda}I)^{-1}\,\nabla_W f\,(A+\sqrt{\lambda}I)^{-1}$",
        lead=f"The digits MLP 64 → {SECOND_ORDER_HIDDEN} → tanh → 10, full batch (1,200 images), from the "
        "same initialisation, trained by torch's Adam, descentlab.second_order.HessianFree (Martens 2010: CG "
        "on the damped Gauss–Newton matrix, backtracking, Levenberg–Marquardt damping) and NaturalGradient "
        "with K-FAC (Martens & Grosse 2015), each until it has used "
        f"{SECOND_ORDER_BUDGET} passes. A pass is one closure call (forward + backward) or one "
        "curvature-vector product (a forward-mode and a reverse sweep through the saved graph): Adam and "
        "K-FAC use one closure call per step, Hessian-free a few closure calls plus one product per CG "
        "iteration. Hyperparameters were set by hand, not tuned per method on this run: "
        + "; ".join(f"{n} {h}" for n, h in _SECOND_ORDER.items())
        + ". Wall time counts only the optimizer's step(), on one thread of a shared machine.",
        finding=finding,
        image=image,
        headers=["optimizer", "settings", "steps", "closure calls", "curvature products", "seconds",
                 "final loss", f"loss at {shortest:.2f} s"],
        rows=rows,
    )
