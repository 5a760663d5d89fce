"""The claims: each quotes the notes, states its setup, measures and judges (see :mod:`descentlab.claims`).

Every experiment is small (a race of a few hundred steps, a network of a few thousand weights on
scikit-learn's digits) so that the whole set runs in about a minute on one core.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import plots
from ..lab import RaceResult, race
from ..landscapes import Landscape, get_landscape, least_squares
from ..optim import from_chain
from ..plots import COLORS, new_figure
from ..transforms import ScaleByLearningRate, chain
from ..transforms.base import Context, Transform, check_number
from . import Claim, Measurement

__all__ = ["CLAIMS"]


# -- helpers ------------------------------------------------------------------------------------------
def _race_figure(result: RaceResult, title: str):
    return lambda: plots.plot_race(result, title=title)


def _lines(title: str, xlabel: str, ylabel: str, series: Mapping[str, tuple[Any, Any]], *, logy: bool = False,
           logx: bool = False, marks: Mapping[str, float] | None = None):
    """A figure of named ``(x, y)`` series (one colour and style each), drawn when called."""

    def draw():
        figure = new_figure((6.8, 3.8))
        ax = figure.subplots()
        for index, (label, (x, y)) in enumerate(series.items()):
            style = plots.LINESTYLES[(index // len(COLORS)) % len(plots.LINESTYLES)]
            ax.plot(x, y, style, color=COLORS[index % len(COLORS)], linewidth=1.8, label=label)
        for label, value in (marks or {}).items():
            ax.axvline(value, color="#555555", linestyle=":", linewidth=1)
            ax.annotate(label, (value, 1), xycoords=("data", "axes fraction"), fontsize=8, va="top",
                        rotation=90, textcoords="offset points", xytext=(3, -2))
        if logy:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
        figure.tight_layout()
        return figure

    return draw


def _gap(run, landscape: Landscape) -> np.ndarray:
    return run.loss - min(landscape.minimum_values)


def _slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def _digits(seed: int = 0):
    from ..training._problems import digits

    return digits(seed=seed)


def _mlp(sizes, seed: int) -> nn.Sequential:
    from ..training._problems import mlp

    return mlp(sizes, seed=seed)


# -- 1. heavy ball ≡ momentum ---------------------------------------------------------------------------
def _heavy_ball() -> Measurement:
    result = race("two-minima", [("momentum (velocity form)", "sgd(lr=0.05, momentum=0.9)"),
                                 ("heavy ball", "heavyball(lr=0.05, momentum=0.9)")], steps=250)
    a, b = (run.trajectory for run in result.runs)
    return Measurement({"max_difference": float(np.abs(a - b).max()), "steps": 250,
                        "scale": float(np.abs(a).max())}, _race_figure(result, "momentum vs heavy ball"), result)


def _heavy_ball_predicate(n):
    holds = n["max_difference"] <= 1e-8 * max(1.0, n["scale"])
    return holds, (f"the two forms' iterates differ by at most {n['max_difference']:.1e} over {n['steps']} "
                   "steps in float64 — round-off: they are the same iteration written two ways")


# -- 2. the two Nesterov forms ---------------------------------------------------------------------------
def _nesterov_forms() -> Measurement:
    """Notes 001 (u_k = αu_{k−1} − η∇f(w_k + αu_{k−1}), w_{k+1} = w_k + u_k) against notes 000's look-ahead
    form, the library's NesterovLookahead (its true iterate w = ŵ + βp), and torch's nesterov=True."""
    from ..transforms import NesterovLookahead

    landscape = get_landscape("two-minima")
    lr, beta, steps = 0.05, 0.9, 200
    w, u = torch.tensor(landscape.start, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    notes_001 = [w.clone()]
    for _ in range(steps):
        ahead = (w + beta * u).requires_grad_(True)
        (g,) = torch.autograd.grad(landscape(ahead), ahead)
        u = beta * u - lr * g
        w = w + u
        notes_001.append(w.clone())
    notes_001 = torch.stack(notes_001).numpy()
    param = torch.tensor(landscape.start, dtype=torch.float64, requires_grad=True)
    rule = NesterovLookahead()
    opt = from_chain([param], chain(rule), lr=lr, momentum=beta)
    lookahead = [param.detach().clone()]
    for _ in range(steps):
        opt.zero_grad()
        landscape(param).backward()
        opt.step()
        lookahead.append(rule.true_params(param.detach(), opt.state[param], beta).clone())
    lookahead = torch.stack(lookahead).numpy()
    result = race(landscape, [("torch form: sgd(nesterov=True)", f"sgd(lr={lr}, momentum={beta}, nesterov=True)")],
                  steps=steps)
    torch_form = result.runs[0].trajectory
    # torch's parameters θ_k are the notes' w_k + α·u_k (the look-ahead of the next step), not w_k
    shifted = notes_001.copy()
    shifted[1:] = notes_001[1:] + beta * np.diff(notes_001, axis=0)
    numbers = {
        "lookahead_vs_notes_001": float(np.abs(lookahead - notes_001).max()),
        "torch_vs_notes_001": float(np.abs(torch_form - notes_001).max()),
        "torch_vs_notes_001_lookahead_point": float(np.abs(torch_form - shifted).max()),
        "steps": steps,
    }
    series = {"notes 001 velocity form": (notes_001[:, 0], notes_001[:, 1]),
              "notes 000 look-ahead (NesterovLookahead, true w)": (lookahead[:, 0], lookahead[:, 1]),
              "torch nesterov=True (stores w + αu)": (torch_form[:, 0], torch_form[:, 1])}
    return Measurement(numbers, _lines("Nesterov: three ways to write it (x, y paths)", "x", "y", series))


def _nesterov_predicate(n):
    same = n["lookahead_vs_notes_001"] <= 1e-10
    mapped = n["torch_vs_notes_001_lookahead_point"] <= 1e-10
    return same and mapped, (
        f"notes 000's look-ahead form and notes 001's velocity form agree to "
        f"{n['lookahead_vs_notes_001']:.1e}; "
        f"torch's nesterov=True iterates are the look-ahead points w + αu (agree to "
        f"{n['torch_vs_notes_001_lookahead_point']:.1e}), {n['torch_vs_notes_001']:.2g} away from w itself")


# -- 3. β ≥ 1 -------------------------------------------------------------------------------------------
def _beta_one() -> Measurement:
    specs = [(f"β = {b}", f"torch.sgd(lr=0.05, momentum={b})") for b in (0.9, 1.0, 1.05)]
    result = race("strongly-convex", specs, steps=300, errors="record")
    gaps = {run.label: _gap(run, result.landscape) for run in result.runs}
    one = result.runs[1]
    numbers = {
        "beta_0.9_final_gap": float(gaps["β = 0.9"][-1]),
        "beta_1.0_final_gap": float(gaps["β = 1.0"][-1]),
        "beta_1.0_max_distance": float(np.linalg.norm(one.trajectory, axis=1).max()),
        "beta_1.05_diverged_at": result.runs[2].diverged_at or 0,
        "beta_1.0_diverged": one.diverged_at is not None,
    }
    try:
        from ..optim import SGD

        SGD([torch.zeros(1, requires_grad=True)], lr=0.05, momentum=1.0)
        numbers["descentlab_refuses"] = "no"
    except ValueError as error:
        numbers["descentlab_refuses"] = str(error).split(",")[0]
    return Measurement(numbers, _race_figure(result, "momentum β = 0.9, 1 and 1.05 "
                                                     "(torch.optim.SGD)"), result)


def _beta_one_predicate(n):
    diverges = n["beta_1.05_diverged_at"] > 0
    return diverges, (
        f"β = 1.05 diverged at step {n['beta_1.05_diverged_at']}; β = 1 neither converged nor diverged (gap "
        f"{n['beta_1.0_final_gap']:.2g} after 300 steps, |w| ≤ {n['beta_1.0_max_distance']:.2g}: no "
        "friction, "
        f"it orbits); β = 0.9 reached gap {n['beta_0.9_final_gap']:.1e}. descentlab's SGD refuses β ≥ 1 "
        "before any step")


# -- 4. raising β needs a lower learning rate ---------------------------------------------------------------
def _largest_stable_lr(beta: float) -> float:
    """The largest η (bisection to 2 %) for which SGD with momentum β does not diverge on the κ = 100
    quadratic in 400 noiseless steps."""
    low, high = 1e-4, 1.0
    while high / low > 1.02:
        lr = math.sqrt(low * high)
        run = race("quadratic(kappa=100)", [f"sgd(lr={lr:.8g}, momentum={beta})"], steps=400).runs[0]
        low, high = (lr, high) if run.diverged_at is None and run.loss[-1] < run.loss[0] else (low, lr)
    return low


_FLOORS = [("β = 0.9, η = 0.01", "sgd(lr=0.01, momentum=0.9)"), ("β = 0.99, η = 0.01", "sgd(lr=0.01, momentum=0.99)"),
           ("β = 0.99, η = 0.001", "sgd(lr=0.001, momentum=0.99)")]


def _raise_beta() -> Measurement:
    lambda_max = 100.0
    stable = {beta: _largest_stable_lr(beta) for beta in (0.9, 0.99)}
    result = race("quadratic(kappa=100)", _FLOORS, start=(0.0, 0.0), steps=1500, noise=1.0, seed=1)
    floors = {run.label: float(np.mean(run.loss[500:])) for run in result.runs}
    numbers = {
        "stable_lr_beta_0.9": stable[0.9], "stable_lr_beta_0.99": stable[0.99],
        "theory_limit_0.9": 2 * 1.9 / lambda_max, "theory_limit_0.99": 2 * 1.99 / lambda_max,
        **{f"floor {label}": value for label, value in floors.items()},
        "raised_beta_same_lr": floors["β = 0.99, η = 0.01"] / floors["β = 0.9, η = 0.01"],
        "raised_beta_lr_over_10": floors["β = 0.99, η = 0.001"] / floors["β = 0.9, η = 0.01"],
    }
    series = {run.label: (np.arange(len(run.loss)), np.maximum(run.loss, 1e-12)) for run in result.runs}
    return Measurement(numbers, _lines("κ = 100 quadratic from its minimum, gradient noise σ = 1", "step k",
                                       "loss (log)", series, logy=True), result)


def _raise_beta_predicate(n):
    holds = n["raised_beta_same_lr"] >= 5 and 0.5 <= n["raised_beta_lr_over_10"] <= 2
    return holds, (
        f"the noise floor (mean loss over steps 500–1500) is {n['raised_beta_same_lr']:.1f}× higher at β = "
        "0.99 "
        f"than at 0.9 with the same η, and {n['raised_beta_lr_over_10']:.2f}× with η divided by 10; "
        "stability "
        f"itself does not ask for it: the largest stable η rises from {n['stable_lr_beta_0.9']:.3g} to "
        f"{n['stable_lr_beta_0.99']:.3g} (theory 2(1+β)/λ_max)")


# -- 5. plateau -----------------------------------------------------------------------------------------
_PLATEAU = {"landscape": "plateau", "start": [3.8, 1.0], "steps": 200, "noise": 0.0, "seed": 0,
            "optimizers": ["sgd(lr=0.5)", "sgd(lr=0.5, momentum=0.9)"]}


def _plateau() -> Measurement:
    result = race("plateau", [("GD", "sgd(lr=0.5)"), ("momentum", "sgd(lr=0.5, momentum=0.9)")], steps=200)
    gd, mom = result.runs
    numbers = {"gd_converged_at": gd.converged_at or 0, "momentum_converged_at": mom.converged_at or 0,
               "gd_moved": float(np.linalg.norm(gd.final_point - gd.trajectory[0])),
               "gd_final_loss": gd.final_loss, "momentum_final_loss": mom.final_loss, "steps": 200}
    return Measurement(numbers, _race_figure(result, "crossing a plateau (η = 0.5)"), result)


def _plateau_predicate(n):
    holds = n["momentum_converged_at"] > 0 and n["gd_converged_at"] == 0
    return holds, (f"momentum reached the well at step {n['momentum_converged_at']}; GD moved "
                   f"{n['gd_moved']:.2f} in {n['steps']} steps and ended at loss {n['gd_final_loss']:.3f}")


# -- 6. AdaGrad's effective rate ~ 1/√t, RMSprop's not -------------------------------------------------------
def _effective_rate(optimizer, param) -> float:
    state, group = optimizer.state[param], optimizer.param_groups[0]
    accumulator = state["sum"] if "sum" in state else state["square_avg"]
    return float((group["lr"] / (accumulator.sqrt() + group["eps"])).mean())


def _adagrad_decay() -> Measurement:
    racers = [("AdaGrad", "adagrad(lr=0.1)"), ("RMSprop", "rmsprop(lr=0.01)")]
    result = race("quadratic(kappa=10)", racers, start=(0.0, 0.0), steps=1000, noise=0.5, seed=0,
                  record=_effective_rate)
    transient = race("quadratic(kappa=10)", racers, steps=1000, noise=0.5, seed=0, record=_effective_rate)
    t = np.arange(1, 1001)
    window = slice(99, 1000)
    ada, rms = result["AdaGrad"].recorded, result["RMSprop"].recorded
    numbers = {"adagrad_slope": _slope(t[window], ada[window]), "rmsprop_slope": _slope(t[window], rms[window]),
               "adagrad_rate_100": float(ada[99]), "adagrad_rate_1000": float(ada[-1]),
               "rmsprop_rate_100": float(rms[99]), "rmsprop_rate_1000": float(rms[-1]),
               "from_start_adagrad_slope": _slope(t[window], transient["AdaGrad"].recorded[window]),
               "from_start_adagrad_fall": float(transient["AdaGrad"].recorded[0] / transient["AdaGrad"].recorded[-1]),
               "from_start_rmsprop_slope": _slope(t[window], transient["RMSprop"].recorded[window])}
    series = {"AdaGrad, noise only": (t, ada), "RMSprop, noise only": (t, rms),
              "1/√t (scaled)": (t, ada[99] * np.sqrt(100 / t)),
              "AdaGrad from (−1.5, 1.5)": (t, transient["AdaGrad"].recorded),
              "RMSprop from (−1.5, 1.5)": (t, transient["RMSprop"].recorded)}
    return Measurement(numbers, _lines("effective learning rate η/(√t_k + ε), κ = 10 quadratic, noise σ = "
                                       "0.5",
                                       "step k", "effective rate", series, logx=True, logy=True), result)


def _adagrad_decay_predicate(n):
    holds = -0.6 <= n["adagrad_slope"] <= -0.4 and abs(n["rmsprop_slope"]) <= 0.1
    return holds, (f"log-log slope of the effective rate over steps 100–1000 with gradients of steady size "
                   "(noise "
                   f"at the minimum): AdaGrad {n['adagrad_slope']:.2f} (1/√t is −0.5), RMSprop "
                   f"{n['rmsprop_slope']:.2f}; from the landscape's start the large early gradients "
                   "dominate t_k "
                   f"(AdaGrad's slope {n['from_start_adagrad_slope']:.2f}, its rate still fell "
                   f"{n['from_start_adagrad_fall']:.1f}×)")


# -- 7. AdaGrad and sparse features (notes 004) ----------------------------------------------------------------
def _sparse_landscape() -> Landscape:
    """Linear regression on a dense feature (every example) and a sparse one (1 example in 10), both with
    target weight 1: the gradient along the sparse weight is 10× smaller."""
    g = torch.Generator().manual_seed(0)
    n = 200
    dense = 1 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    sparse = torch.zeros(n, dtype=torch.float64)
    sparse[::10] = 1 + 0.1 * torch.randn(n // 10, generator=g, dtype=torch.float64)
    x = torch.stack([dense, sparse], 1)
    y = x.sum(1)

    def fn(w: Tensor) -> Tensor:
        return 0.5 * ((w[..., None, :] * x).sum(-1) - y).pow(2).mean(-1)

    return Landscape(name="sparse-features", fn=fn, dim=2, domain=((-0.5, 1.5), (-0.5, 1.5)), minima=((1.0, 1.0),),
                     minimum_values=(0.0,), start=(0.0, 0.0),
                     formula="z = ½·mean((w_d·x_dense + w_s·x_sparse − y)²), x_sparse ≠ 0 in 1 example of 10")


def _sparse() -> Measurement:
    landscape = _sparse_landscape()
    result = race(landscape, [("GD", "sgd(lr=0.5)"), ("AdaGrad", "adagrad(lr=0.5)")], steps=60)
    numbers = {}
    for run in result.runs:
        key = run.label.lower()
        w = run.trajectory[10]
        numbers[f"{key}_dense_at_10"], numbers[f"{key}_sparse_at_10"] = float(w[0]), float(w[1])
        numbers[f"{key}_ratio_at_10"] = float(w[1] / w[0]) if w[0] else 0.0
    return Measurement(numbers, _race_figure(result, "a dense and a sparse feature (η = 0.5)"), result)


def _sparse_predicate(n):
    holds = abs(math.log(n["adagrad_ratio_at_10"])) <= math.log(1.25) < abs(math.log(n["gd_ratio_at_10"]))
    return holds, (f"after 10 steps, progress along the sparse weight / along the dense one: AdaGrad "
                   f"{n['adagrad_ratio_at_10']:.2f}, GD {n['gd_ratio_at_10']:.2f} (1 = proportionate)")


# -- 8. rprop and mini-batches (notes 000) --------------------------------------------------------------------
def _rprop() -> Measurement:
    runs = {}
    for label, size, spec in (("rprop, full batch", None, "rprop(lr=0.01)"),
                              ("rprop, mini-batch 4", 4, "rprop(lr=0.01)"),
                              ("RMSprop, mini-batch 4", 4, "rmsprop(lr=0.01)")):
        result = race(least_squares(batch_size=size), [(label, spec)], steps=400, xtol=0.05)
        runs[label] = result
    merged = RaceResult(runs["rprop, full batch"].landscape, runs["rprop, full batch"].start, 400, 0,
                        [r.runs[0] for r in runs.values()])
    minimum = np.asarray(merged.landscape.minima[0])
    numbers = {}
    for label, result in runs.items():
        path = result.runs[0].trajectory
        numbers[label] = float(np.linalg.norm(path[-100:] - minimum, axis=1).mean())
        numbers[f"{label}: distance of the mean"] = float(np.linalg.norm(path[-100:].mean(0) - minimum))
    return Measurement(numbers, _race_figure(merged, "rprop and RMSprop, full and mini-batch (η = "
                                                     "0.01)"), merged)


def _rprop_predicate(n):
    bad, fixed, full = n["rprop, mini-batch 4"], n["RMSprop, mini-batch 4"], n["rprop, full batch"]
    holds = bad >= 3 * full and bad >= 3 * fixed
    return holds, (f"mean distance to the least-squares solution over the last 100 of 400 steps: rprop "
                   f"mini-batch {bad:.3f}, rprop full batch {full:.3f}, RMSprop mini-batch {fixed:.3f} — "
                   "rprop "
                   f"does fail with mini-batches, but RMSprop at the same η and batches is no closer "
                   "(distance of "
                   f"their average iterate: rprop {n['rprop, mini-batch 4: distance of the mean']:.3f}, "
                   "RMSprop "
                   f"{n['RMSprop, mini-batch 4: distance of the mean']:.3f})")


# -- 9. Adam's first step without bias correction (notes 003) --------------------------------------------------
class _UncorrectedAdam(Transform):
    """Adam's moments *without* bias correction, as notes 003's "Adam (almost)": ``m/(√v + ε)``."""

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8}
    state_keys = ("exp_avg", "exp_avg_sq")
    state_depends_on = ()

    def validate(self, hp):
        check_number("eps", hp["eps"], low=0.0, low_open=True)

    def init_state(self, param, hp):
        return {"exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}

    def update(self, u: Tensor, state: dict, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        state["exp_avg"].lerp_(u, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(u, u, value=1 - beta2)
        return state["exp_avg"] / (state["exp_avg_sq"].sqrt() + ctx.hp["eps"])


def _adam_bias() -> Measurement:
    from ..optim import Adam

    landscape = get_landscape("rosenbrock")
    steps, lr = 100, 1e-3
    sizes = {}
    for label, build in (("with bias correction", lambda p: Adam(p, lr=lr, betas=(0.9, 0.999))),
                         ("without", lambda p: from_chain(p, chain(_UncorrectedAdam(), ScaleByLearningRate()),
                                                          lr=lr))):
        param = torch.tensor(landscape.start, dtype=torch.float64, requires_grad=True)
        opt = build([param])
        previous, lengths = param.detach().clone(), []
        for _ in range(steps):
            opt.zero_grad()
            landscape(param).backward()
            opt.step()
            lengths.append(float((param.detach() - previous).norm()))
            previous = param.detach().clone()
        sizes[label] = np.asarray(lengths)
    ratio = sizes["without"] / sizes["with bias correction"]
    numbers = {"first_step_ratio": float(ratio[0]), "largest_ratio": float(ratio.max()),
               "largest_ratio_at": int(ratio.argmax()) + 1, "first_step_with": float(sizes["with bias correction"][0]),
               "first_step_without": float(sizes["without"][0]), "lr": lr}
    k = np.arange(1, steps + 1)
    return Measurement(numbers, _lines("Adam's step length ‖w_k − w_(k−1)‖, β₁ = 0.9, β₂ = 0.999, η = 1e-3",
                                       "step k", "step length", {label: (k, v) for label, v in sizes.items()},
                                       logy=True))


def _adam_bias_predicate(n):
    holds = n["first_step_ratio"] >= 10
    return holds, (f"the first step without bias correction is {n['first_step_ratio']:.2f}× the corrected "
                   "one "
                   f"((1 − β₁)/√(1 − β₂) = 3.16: the numerator is small too); the largest ratio, "
                   f"{n['largest_ratio']:.2f}×, comes at step {n['largest_ratio_at']}")


# -- 10. Adamax against Adam when gradients alternate between high and zero (notes 004) --------------------------
def _adamax() -> Measurement:
    from ..optim import Adam, Adamax

    steps = 300
    grads = np.zeros(steps)
    grads[::10] = 1.0  # a feature seen in one batch of ten
    rates = {}
    for label, cls in (("Adam", Adam), ("Adamax", Adamax)):
        param = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = cls([param], lr=0.01, betas=(0.9, 0.999))
        values = []
        for k in range(steps):
            param.grad = torch.tensor([grads[k]], dtype=torch.float64)
            opt.step()
            state = opt.state[param]
            step = int(state["step"])
            if label == "Adam":
                rate = 0.01 / (math.sqrt(float(state["exp_avg_sq"]) / (1 - 0.999**step)) + 1e-8)
            else:
                rate = 0.01 / float(state["exp_inf"])
            values.append(rate)
        rates[label] = np.asarray(values)
    tail = slice(100, steps)
    numbers = {f"{label}_rate_spread": float(v[tail].max() / v[tail].min()) for label, v in rates.items()}
    numbers.update({f"{label}_rate_mean": float(v[tail].mean()) for label, v in rates.items()})
    k = np.arange(1, steps + 1)
    return Measurement(numbers, _lines("per-coordinate rate η/√v̂ (Adam) and η/u (Adamax); gradient 1 every "
                                       "10th step, else 0", "step k", "effective rate",
                                       {label: (k, v) for label, v in rates.items()}, logy=True))


def _adamax_predicate(n):
    holds = n["Adamax_rate_spread"] < n["Adam_rate_spread"]
    return holds, (f"over steps 100–300 the effective rate varies {n['Adam_rate_spread']:.2f}× (max/min) for "
                   f"Adam and {n['Adamax_rate_spread']:.2f}× for Adamax")


# -- 11. a larger batch is like a lower learning rate (notes 002) ------------------------------------------------
def _batch_lr() -> Measurement:
    settings = {"batch 4, η = 0.1": (4, 0.1), "batch 16, η = 0.1": (16, 0.1), "batch 4, η = 0.025": (4, 0.025)}
    spread, runs = {}, []
    for label, (size, lr) in settings.items():
        values = []
        for seed in range(3):
            result = race(least_squares(batch_size=size), [(label, f"sgd(lr={lr})")], steps=600, seed=seed,
                          xtol=0.05)
            run = result.runs[0]
            minimum = np.asarray(result.landscape.minima[0])
            values.append(float((np.linalg.norm(run.trajectory[-300:] - minimum, axis=1) ** 2).mean()))
            if seed == 0:
                runs.append((result.landscape, run))
        spread[label] = float(np.mean(values))
    merged = RaceResult(runs[0][0], tuple(runs[0][0].start), 600, 0, [run for _, run in runs])
    numbers = dict(spread)
    numbers["ratio_big_batch_to_small_lr"] = spread["batch 16, η = 0.1"] / spread["batch 4, η = 0.025"]
    numbers["ratio_small_batch_to_big_batch"] = spread["batch 4, η = 0.1"] / spread["batch 16, η = 0.1"]
    return Measurement(numbers, _race_figure(merged, "SGD on 64 points: batch size against learning "
                                                     "rate"), merged)


def _batch_lr_predicate(n):
    similar = 0.5 <= n["ratio_big_batch_to_small_lr"] <= 2
    lower = n["ratio_small_batch_to_big_batch"] >= 2
    return similar and lower, (
        f"mean squared distance from the solution over the last 300 of 600 steps (3 seeds): batch 4 at η = "
        "0.1 "
        f"{n['batch 4, η = 0.1']:.2g}, batch 16 at η = 0.1 {n['batch 16, η = 0.1']:.2g}, batch 4 at η = "
        "0.025 "
        f"{n['batch 4, η = 0.025']:.2g} (4× the batch vs ¼ the rate: ratio "
        f"{n['ratio_big_batch_to_small_lr']:.2f})")


# -- 12. warm restarts (notes 002) -----------------------------------------------------------------------------
def _warm_restarts() -> Measurement:
    from ..optim import SGD
    from ..schedules import SCHEDULES

    x, y, xv, yv = _digits()
    model = _mlp([64, 32, 10], seed=0)
    opt = SGD(model.parameters(), lr=0.1)
    schedule = SCHEDULES["warm_restarts"](T_0=10, T_mult=2, eta_min=0.01, eta_max=0.1)  # the notes' sample
    epochs, size = 150, 100
    order_gen = torch.Generator().manual_seed(0)
    lrs, train, val = [], [], []
    loss_fn = nn.functional.cross_entropy
    for epoch in range(epochs):
        lr = schedule(epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        order = torch.randperm(len(y), generator=order_gen)
        for i in range(0, len(y), size):
            idx = order[i:i + size]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            train.append(float(loss_fn(model(x), y)))
            val.append(float(loss_fn(model(xv), yv)))
        lrs.append(lr)
    lrs, train, val = np.asarray(lrs), np.asarray(train), np.asarray(val)
    restarts = [t for t in range(1, epochs) if lrs[t] > lrs[t - 1]]
    spikes = [t for t in restarts if train[t] > train[t - 1]]
    ends = [t - 1 for t in restarts] + [epochs - 1]
    best = int(val.argmin())
    numbers = {"restarts": len(restarts), "restarts_with_a_loss_rise": len(spikes),
               "largest_rise": float(max((train[t] / train[t - 1] for t in restarts), default=1.0)),
               "best_val_epoch": best, "best_val_loss": float(val[best]),
               "best_at_lr_minimum": bool(any(abs(best - e) <= 1 for e in ends)),
               "lr_at_best": float(lrs[best]), "restart_epochs": ", ".join(map(str, restarts))}
    epochs_axis = np.arange(epochs)

    def draw():
        figure = new_figure((7, 3.8))
        ax = figure.subplots()
        ax.plot(epochs_axis, train, color=COLORS[0], label="training loss")
        ax.plot(epochs_axis, val, "--", color=COLORS[1], label="validation loss")
        ax.set_yscale("log")
        ax.axvline(best, color="#555555", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy (log)")
        twin = ax.twinx()
        twin.plot(epochs_axis, lrs, color=COLORS[2], alpha=0.6, linewidth=1, label="learning rate")
        twin.set_ylabel("learning rate")
        ax.set_title("digits MLP 64-32-10, SGD, the notes' warm restarts (T₀ = 10, T_mult = 2, 0.01…0.1)",
                     fontsize=9)
        lines = ax.get_lines()[:2] + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], frameon=False, fontsize=8)
        figure.tight_layout()
        return figure

    return Measurement(numbers, draw)


def _warm_restarts_predicate(n):
    holds = n["restarts_with_a_loss_rise"] >= n["restarts"] - 1 and n["best_at_lr_minimum"]
    return holds, (f"the training loss rose right after {n['restarts_with_a_loss_rise']} of {n['restarts']} "
                   f"restarts (by up to {n['largest_rise']:.2f}×); the best validation loss came at epoch "
                   f"{n['best_val_epoch']}, learning rate {n['lr_at_best']:.3g}")


# -- 13. the two-minima race (notes 001 / 003) -----------------------------------------------------------------
_TWO_MINIMA = [("GD", "sgd(lr=0.05)"), ("momentum", "sgd(lr=0.05, momentum=0.9)"),
               ("Nesterov", "sgd(lr=0.05, momentum=0.9, nesterov=True)"), ("AdaGrad", "adagrad(lr=0.5)"),
               ("RMSprop", "rmsprop(lr=0.01)"), ("Adam", "adam(lr=0.1)")]


def _two_minima() -> Measurement:
    result = race("two-minima", _TWO_MINIMA, steps=250)
    numbers = {}
    for run in result.runs:
        numbers[f"{run.label} minimum"] = "deep" if run.minimum == 0 else ("shallow" if run.minimum == 1 else "—")
        numbers[f"{run.label} iterations"] = run.iterations
    return Measurement(numbers, _race_figure(result, "two minima (notes 001): iterations in "
                                                     "brackets"), result)


def _two_minima_predicate(n):
    holds = n["momentum minimum"] == "deep" and n["GD minimum"] == "shallow"
    reached = "; ".join(f"{label} {n[f'{label} minimum']} [{n[f'{label} iterations']}]" for label, _ in _TWO_MINIMA)
    return holds, f"momentum jumped the local minimum, GD did not: {reached}"


# -- 14. a large learning rate cannot settle in a sharp minimum ----------------------------------------------------
def _sharp() -> Measurement:
    landscape = get_landscape("two-minima")
    deep = torch.tensor(landscape.minima[0], dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(landscape, deep)
    lam = float(torch.linalg.eigvalsh(hessian).max())
    start = [float(deep[0]) + 0.05, 0.03]
    below, above = 0.9 * 2 / lam, 1.1 * 2 / lam
    result = race(landscape, [(f"η = 0.9·2/λ_max = {below:.4f}", f"sgd(lr={below:.6g})"),
                              (f"η = 1.1·2/λ_max = {above:.4f}", f"sgd(lr={above:.6g})")], start=start, steps=200)
    low, high = result.runs
    numbers = {"lambda_max": lam, "limit": 2 / lam, "below_converged_at": low.converged_at or 0,
               "below_minimum": low.minimum if low.minimum is not None else -1,
               "above_converged_to_deep": high.minimum == 0,
               "above_final_distance": float(np.linalg.norm(high.final_point - deep.numpy()))}
    return Measurement(numbers, _race_figure(result, f"GD around the deep well, λ_max = {lam:.1f}"), result)


def _sharp_predicate(n):
    holds = n["below_converged_at"] > 0 and n["below_minimum"] == 0 and not n["above_converged_to_deep"]
    return holds, (f"λ_max = {n['lambda_max']:.2f} at the deep minimum, so 2/λ_max = {n['limit']:.4f}: just "
                   "below "
                   f"it GD settled at step {n['below_converged_at']}; just above it GD left the well (ended "
                   f"{n['above_final_distance']:.2f} away)")


# -- 15. ill-conditioning slows GD in proportion to κ (notes 003) -----------------------------------------------
def _kappa() -> Measurement:
    kappas = [10, 30, 100, 300]
    steps_needed, series = [], {}
    for kappa in kappas:
        result = race(f"quadratic(kappa={kappa})", [(f"κ = {kappa}", f"sgd(lr={1 / kappa:.8g})")], steps=3000)
        gap = _gap(result.runs[0], result.landscape)
        below = np.flatnonzero(gap <= 1e-6 * gap[0])
        steps_needed.append(int(below[0]) if below.size else 3000)
        series[f"κ = {kappa}"] = (np.arange(len(gap)), np.maximum(gap, 1e-16))
    numbers = {f"steps_kappa_{k}": s for k, s in zip(kappas, steps_needed)}
    numbers["slope"] = _slope(kappas, steps_needed)
    return Measurement(numbers, _lines("GD with η = 1/λ_max on quadratics of condition number κ", "step k",
                                       "f − f* (log)", series, logy=True))


def _kappa_predicate(n):
    holds = 0.85 <= n["slope"] <= 1.15
    counts = ", ".join(f"κ = {k}: {n[f'steps_kappa_{k}']}" for k in (10, 30, 100, 300))
    return holds, f"steps to lower the loss gap 10⁶-fold: {counts}; log-log slope {n['slope']:.2f} (1 = ∝ κ)"


# -- 16. gradient noise escapes a saddle (notes 002) -----------------------------------------------------------
_SADDLE = {"landscape": "saddle", "start": [0.0, 1.5], "steps": 200, "noise": 0.1, "seed": 0,
           "optimizers": ["sgd(lr=0.05)"]}


def _saddle() -> Measurement:
    exact = race("saddle", [("GD, exact gradient", "sgd(lr=0.05)")], start=(0.0, 1.5), steps=200, xtol=0.05)
    noisy = race("saddle", [("GD, noise σ = 0.1", "sgd(lr=0.05)")], start=(0.0, 1.5), steps=200, noise=0.1,
                 xtol=0.05)
    merged = RaceResult(exact.landscape, exact.start, 200, 0, exact.runs + noisy.runs)
    e, n = exact.runs[0], noisy.runs[0]
    numbers = {"exact_final_x": float(abs(e.final_point[0])), "exact_final_loss": e.final_loss,
               "noisy_converged_at": n.converged_at or 0, "noisy_final_loss": n.final_loss,
               "saddle_value": 0.0, "minimum_value": float(min(exact.landscape.minimum_values))}
    return Measurement(numbers, _race_figure(merged, "a saddle, starting on the ridge x = 0"), merged)


def _saddle_predicate(n):
    holds = n["exact_final_x"] < 1e-9 and n["noisy_converged_at"] > 0
    return holds, (f"exact GD sat at the saddle (|x| = {n['exact_final_x']:.0e}, loss "
                   f"{n['exact_final_loss']:.2g}); "
                   f"with noise σ = 0.1 it reached a minimum at step {n['noisy_converged_at']} (loss "
                   f"{n['noisy_final_loss']:.3f})")


# -- 17. clipping an exploding RNN gradient (notes 002) --------------------------------------------------------
def _rnn_run(lr: float, clip: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Losses and pre-clip gradient norms of 150 full-batch SGD steps of a tanh RNN whose recurrent weights
    have spectral radius 1.8, learning a clipped running sum over 40 steps."""
    from ..training._problems import exploding_rnn

    losses, norms = exploding_rnn(lr, clip, steps=150, radius=1.8, length=40)
    return np.asarray(losses), np.asarray(norms)


def _largest_jump(losses: np.ndarray) -> float:
    """The largest one-step rise of the loss (a ratio), ``inf`` if it stopped being finite."""
    if not np.isfinite(losses).all():
        return math.inf
    return float(np.max(losses[1:] / losses[:-1]))


def _rnn_clipping() -> Measurement:
    curves, numbers = {}, {}
    for lr in (0.05, 0.2):
        for label, clip in (("no clipping", None), ("clip by norm, c = 1", 1.0)):
            losses, norms = _rnn_run(lr, clip)
            key = f"η = {lr}, {label}"
            curves[key] = losses
            numbers[f"{key}: final loss"] = float(losses[-1])
            numbers[f"{key}: largest jump"] = _largest_jump(losses)
            numbers[f"{key}: max gradient "
                    "norm"] = float(np.nanmax(np.where(np.isfinite(norms), norms, np.nan)))
            numbers[f"{key}: non-finite"] = not np.isfinite(losses).all()
    k = np.arange(1, 151)
    return Measurement(numbers, _lines("tanh RNN 1-16-1 over 40 steps, spectral radius 1.8, full-batch SGD",
                                       "step", "training loss (log)", {key: (k, v) for key, v in curves.items()},
                                       logy=True))


def _rnn_predicate(n):
    un, cl = "η = 0.2, no clipping", "η = 0.2, clip by norm, c = 1"
    exploded = n[f"{un}: non-finite"] or n[f"{un}: largest jump"] >= 10
    tamed = not n[f"{cl}: non-finite"] and n[f"{cl}: largest jump"] < 2
    slow_un, slow_cl = "η = 0.05, no clipping", "η = 0.05, clip by norm, c = 1"
    return exploded and tamed, (
        f"at η = 0.2 the unclipped gradient exploded (loss jump {n[f'{un}: largest jump']:.3g}×, "
        f"{'non-finite' if n[f'{un}: non-finite'] else 'finite'} at the end) while the clipped run's largest "
        f"rise was {n[f'{cl}: largest jump']:.2f}× and it ended at {n[f'{cl}: final loss']:.3g}; at η = 0.05 "
        f"nothing exploded (gradient norm ≤ {n[f'{slow_un}: max gradient norm']:.3g}) and clipping changed "
        "the "
        f"final loss from {n[f'{slow_un}: final loss']:.3g} to {n[f'{slow_cl}: final loss']:.3g}")


# -- 18. reverse mode: the whole gradient in one pass (notes 002) ----------------------------------------------
def _timed(fn, repeat: int = 5) -> float:
    import time

    best = math.inf
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def _autodiff() -> Measurement:
    from torch.func import jvp, vjp

    sizes = [4, 16, 64, 256]
    reverse, forward, numbers = [], [], {}
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        a = torch.randn(64, n, generator=g, dtype=torch.float64) / n**0.5
        x = torch.randn(n, dtype=torch.float64, generator=g)

        def f(v, a=a):
            return torch.tanh(a @ v).pow(2).sum()  # n inputs, one output

        basis = torch.eye(n, dtype=torch.float64)
        rev = _timed(lambda f=f, x=x: vjp(f, x)[1](torch.ones((), dtype=torch.float64)))
        fwd = _timed(lambda f=f, x=x, basis=basis: [jvp(f, (x,), (basis[i],))[1] for i in range(len(basis))])
        g_rev = vjp(f, x)[1](torch.ones((), dtype=torch.float64))[0]
        g_fwd = torch.stack([jvp(f, (x,), (basis[i],))[1] for i in range(n)])
        numbers[f"agree_{n}"] = float((g_rev - g_fwd).abs().max())
        reverse.append(rev)
        forward.append(fwd)
    numbers.update({f"forward_over_reverse_{n}": f / r for n, f, r in zip(sizes, forward, reverse)})
    # the crossover: 2 inputs, m outputs — the Jacobian takes 2 forward passes or m reverse ones
    wide_forward, wide_reverse = [], []
    for m in sizes:
        b = torch.randn(m, 2, generator=torch.Generator().manual_seed(m), dtype=torch.float64)
        x2 = torch.tensor([0.3, -0.2], dtype=torch.float64)

        def h(v, b=b):
            return torch.tanh(b @ v)

        eye_in, eye_out = torch.eye(2, dtype=torch.float64), torch.eye(m, dtype=torch.float64)
        wide_forward.append(_timed(lambda h=h, x2=x2, e=eye_in: [jvp(h, (x2,), (e[i],))[1] for i in range(2)]))
        _, pullback = vjp(h, x2)
        wide_reverse.append(_timed(lambda p=pullback, e=eye_out: [p(e[i]) for i in range(len(e))]))
    numbers.update({f"wide_reverse_over_forward_{m}": r / f for m, r, f in zip(sizes, wide_reverse, wide_forward)})
    numbers["gradient_passes_reverse"], numbers["gradient_passes_forward_256"] = 1, 256
    series = {"reverse (vjp), f: Rⁿ → R": (sizes, reverse), "forward (n × jvp), f: Rⁿ → R": (sizes, forward),
              "reverse (m × vjp), h: R² → Rᵐ": (sizes, wide_reverse), "forward (2 × jvp), h: R² → Rᵐ":
              (sizes, wide_forward)}
    return Measurement(numbers, _lines("time for the gradient / Jacobian (best of 5)", "n inputs / m outputs",
                                       "seconds", series, logx=True, logy=True))


def _autodiff_predicate(n):
    grows = n["forward_over_reverse_256"] >= 10 and n["forward_over_reverse_256"] > n["forward_over_reverse_4"]
    crossover = n["wide_reverse_over_forward_256"] >= 10
    agree = all(n[f"agree_{k}"] <= 1e-10 for k in (4, 16, 64, 256))
    return grows and crossover and agree, (
        f"for a scalar loss of n inputs, n jvps took {n['forward_over_reverse_4']:.1f}× one vjp at n = 4 and "
        f"{n['forward_over_reverse_256']:.0f}× at n = 256 (same gradient to 1e-10); with 2 inputs and 256 "
        "outputs "
        f"the Jacobian by reverse mode took {n['wide_reverse_over_forward_256']:.0f}× forward mode's")


# -- 19. larger batches end in sharper minima (Keskar et al. 2016; notes 002) ------------------------------------
def _sharpness(model, x, y) -> float:
    from ..curvature import hessian_operator, top_eigenpairs

    op = hessian_operator(model, nn.functional.cross_entropy, x, y)
    values, _ = top_eigenpairs(op, 1, num_steps=20, generator=torch.Generator().manual_seed(0))
    return float(values[0])


def _keskar() -> Measurement:
    x, y, xv, yv = _digits()
    epochs, lr = 20, 0.1
    found: dict[str, list[float]] = {"batch 16": [], "batch 600": []}
    accuracy: dict[str, list[float]] = {"batch 16": [], "batch 600": []}
    for seed in range(3):
        for label, size in (("batch 16", 16), ("batch 600", 600)):
            model = _mlp([64, 32, 10], seed=seed)
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(epochs):
                order = torch.randperm(len(y), generator=gen)
                for i in range(0, len(y), size):
                    idx = order[i:i + size]
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                    opt.step()
            found[label].append(_sharpness(model, x, y))
            with torch.no_grad():
                accuracy[label].append(float((model(xv).argmax(1) == yv).float().mean()))
    numbers = {f"lambda_max {label}": float(np.mean(v)) for label, v in found.items()}
    numbers.update({f"seeds {label}": [round(v, 3) for v in vals] for label, vals in found.items()})
    numbers.update({f"val accuracy {label}": float(np.mean(v)) for label, v in accuracy.items()})
    numbers["sharper_in_every_seed"] = all(b > s for s, b in zip(found["batch 16"], found["batch 600"]))

    def draw():
        figure = new_figure((6, 3.6))
        ax = figure.subplots()
        for index, (label, values) in enumerate(found.items()):
            ax.scatter(np.full(len(values), index) + np.linspace(-0.08, 0.08, len(values)), values, s=50,
                       color=COLORS[index], edgecolor="black", zorder=3, label=label)
        ax.set_xticks([0, 1], list(found))
        ax.set_ylabel("λ_max of the training-loss Hessian")
        ax.set_title(f"digits MLP 64-32-10, SGD η = {lr}, {epochs} epochs, 3 seeds", fontsize=10)
        ax.grid(True, alpha=0.3)
        figure.tight_layout()
        return figure

    return Measurement(numbers, draw)


def _keskar_predicate(n):
    holds = n["sharper_in_every_seed"]
    return holds, (f"λ_max at the end: batch 16 {n['lambda_max batch 16']:.3g}, batch 600 "
                   f"{n['lambda_max batch 600']:.3g} (mean of 3 seeds, equal epochs); validation accuracy "
                   f"{n['val accuracy batch 16']:.1%} vs {n['val accuracy batch 600']:.1%}")


# -- 20. RMSprop's sensitivity to its initial learning rate, and its oscillation (notes 004) ----------------------
_RMS_LRS = (0.003, 0.01, 0.03, 0.1)


def _rmsprop_sensitivity() -> Measurement:
    result = race("quadratic(kappa=10)", [(f"RMSprop η = {lr}", f"rmsprop(lr={lr})") for lr in _RMS_LRS], steps=300)
    numbers = {}
    for lr, run in zip(_RMS_LRS, result.runs):
        tail = run.trajectory[-50:]
        numbers[f"final_gap_{lr}"] = float(_gap(run, result.landscape)[-1])
        numbers[f"oscillation_{lr}"] = float(np.linalg.norm(tail - tail.mean(0), axis=1).mean())
    numbers["gap_spread"] = max(numbers[f"final_gap_{lr}"] for lr in _RMS_LRS) / \
        max(min(numbers[f"final_gap_{lr}"] for lr in _RMS_LRS), 1e-300)
    numbers["oscillation_slope"] = _slope(_RMS_LRS, [numbers[f"oscillation_{lr}"] for lr in _RMS_LRS])
    return Measurement(numbers, _race_figure(result, "RMSprop at four learning rates, κ = 10"), result)


def _rmsprop_predicate(n):
    holds = n["gap_spread"] >= 100 and n["oscillation_slope"] >= 0.7
    return holds, (f"sensitive, yes: over a 33× range of η the final loss gap spans {n['gap_spread']:.2g}×; "
                   "but "
                   f"the larger rates converged instead of oscillating (mean distance of the last 50 "
                   "iterates from "
                   f"their average: {n['oscillation_0.003']:.2g} at η = 0.003, still on its way, and "
                   f"{n['oscillation_0.1']:.2g} at η = 0.1)")


def _race_request(landscape: str, optimizers, steps: int, start=None, noise: float = 0.0, seed: int = 0):
    specs = [spec for _, spec in optimizers] if optimizers and isinstance(optimizers[0], tuple) else list(optimizers)
    land = get_landscape(landscape)
    return {"landscape": landscape, "start": list(start or land.start), "optimizers": specs, "steps": steps,
            "noise": noise, "seed": seed}


CLAIMS: list[Claim] = [
    Claim("heavy-ball-is-momentum",
          "The other one is logically equivalent to the previous, but it update the weights in one step and "
          "is "
          "called Stochastic Heavy Ball Method",
          "notes 000", "SGD with momentum β = 0.9 (velocity form p ← βp + g, w ← w − ηp) and HeavyBall "
          "(w ← w − η∇L + β(w − w_prev)), η = 0.05, 250 steps from (1.6, 1.2) on two-minima, float64.",
          _heavy_ball, _heavy_ball_predicate, "holds",
          _race_request("two-minima", ["sgd(lr=0.05, momentum=0.9)", "heavyball(lr=0.05, momentum=0.9)"], 250)),
    Claim("nesterov-forms-agree",
          "we take an intermediate step where we update the weights according to the previous momentum and "
          "then "
          "we compute the new momentum in this new position",
          "notes 000", "Notes 000's look-ahead form (NesterovLookahead), notes 001's velocity form (NumPy-free "
          "torch transcription) and torch's nesterov=True, η = 0.05, β = 0.9, 200 steps on two-minima.",
          _nesterov_forms, _nesterov_predicate, "holds",
          _race_request("two-minima", ["sgd(lr=0.05, momentum=0.9, nesterov=True)"], 200)),
    Claim("momentum-beta-above-one-diverges",
          "If β = 0, then we are doing gradient descent, if β > 1 then we will have numerical instabilities.",
          "notes 000", "torch.optim.SGD (descentlab refuses β ≥ 1) with η = 0.05 and β = 0.9, 1 and 1.05, 300 "
          "steps on the strongly convex quadratic.",
          _beta_one, _beta_one_predicate, "holds",
          _race_request("strongly-convex", ["torch.sgd(lr=0.05, momentum=0.9)", "torch.sgd(lr=0.05, momentum=1.0)",
                                            "torch.sgd(lr=0.05, momentum=1.05)"], 300)),
    Claim("raising-beta-needs-lower-lr",
          "When we increase β, then the learning rate must decrease accordingly (e.g. from 0.9 to 0.99, "
          "learning-rate must be divided by a factor of 10)",
          "notes 000", "SGD with momentum on the κ = 100 quadratic: the noise floor (mean loss over steps "
          "500–1500 from the minimum, gradient noise σ = 1, seed 1) of β = 0.9 at η = 0.01 against β = 0.99 "
          "at "
          "η = 0.01 and at η = 0.001; and the largest η that does not diverge in 400 noiseless steps "
          "(bisection) for both β.", _raise_beta, _raise_beta_predicate, "holds",
          _race_request("quadratic(kappa=100)", _FLOORS, 1500, start=(0.0, 0.0), noise=1.0, seed=1)),
    Claim("momentum-crosses-plateaus",
          "once the momentum builds up, we will easily pass over plateaus as the ball will continue to roll "
          "over",
          "notes 000", "GD and SGD with momentum 0.9, both η = 0.5, 200 steps from (3.8, 1) on the plateau "
          "1 − exp(−(x² + y²)/2).", _plateau, _plateau_predicate, "holds", _PLATEAU),
    Claim("adagrad-rate-decays-rmsprop-does-not",
          "unboundedly increases during training ... the update may become null.",
          "notes 001", "AdaGrad η = 0.1 and RMSprop η = 0.01 (ρ = 0.99) on the κ = 10 quadratic with gradient "
          "noise σ = 0.5 (seed 0), 1000 steps from the minimum (gradients of steady size) and from the "
          "landscape's start; the effective rate η/(√t_k + ε) averaged over coordinates, its log-log slope "
          "over "
          "steps 100–1000.", _adagrad_decay, _adagrad_decay_predicate, "holds",
          _race_request("quadratic(kappa=10)", ["adagrad(lr=0.1)", "rmsprop(lr=0.01)"], 1000, noise=0.5)),
    Claim("adagrad-moves-proportionately-on-sparse-features",
          "It demonstrated the ability to make proportionate movements in the direction of sparse features, "
          "despite their small updates.",
          "notes 004", "Full-batch linear regression, a dense feature (every example) and a sparse one (1 in 10), "
          "both target weights 1, from (0, 0); GD and AdaGrad, both η = 0.5, 60 steps.",
          _sparse, _sparse_predicate, "holds"),
    Claim("rprop-fails-with-mini-batches",
          "rprop does not work with mini-batches as the sign of the gradient changes frequently",
          "notes 000", "Fitting a line to 64 points: rprop full batch, rprop with batches of 4 and RMSprop with "
          "batches of 4, all η = 0.01, 400 steps, seed 0.", _rprop, _rprop_predicate, "refuted"),
    Claim("adam-without-bias-correction-takes-a-huge-first-step",
          "We end up taking a very very large gradient step at the very beginning of optimization.",
          "notes 003", "Adam with and without bias correction (notes 003's 'Adam (almost)'), β₁ = 0.9, "
          "β₂ = 0.999, η = 1e-3, 100 steps on Rosenbrock from (−1.5, 2); the step lengths compared.",
          _adam_bias, _adam_bias_predicate, "refuted"),
    Claim("adamax-keeps-a-steadier-rate",
          "In scenarios where gradients alternate between high and zero values, the Max Norm maintains a "
          "more "
          "consistent learning rate compared to the L2 Norm.",
          "notes 004", "Adam and Adamax, η = 0.01, β = (0.9, 0.999), one weight whose gradient is 1 every 10th "
          "step and 0 otherwise, 300 steps; the spread (max/min) of the effective rate over steps 100–300.",
          _adamax, _adamax_predicate, "holds"),
    Claim("larger-batch-is-like-lower-lr",
          "Decreases the variance of the updates, making convergence more stable. From this perspective, "
          "increasing the batch size has very similar effects to decreasing the learning rate.",
          "notes 002", "SGD fitting a line to 64 points: batch 4 at η = 0.1, batch 16 at η = 0.1 and batch 4 at "
          "η = 0.025, 600 steps, 3 seeds; the mean squared distance from the solution over the last 300 "
          "steps.",
          _batch_lr, _batch_lr_predicate, "holds"),
    Claim("warm-restarts-spike-then-improve",
          "Note that warm restarts can temporarily make the model's performance worse. The best model can "
          "usually be found when the learning rate is at its minimum.",
          "notes 002", "MLP 64-32-10 on 1200 digits, SGD, batches of 100, 150 epochs under the notes' sample "
          "schedule (t_i = 10, t_mult = 2, 0.01 … 0.1, per epoch); losses on the full training and "
          "validation "
          "sets after every epoch.", _warm_restarts, _warm_restarts_predicate, "refuted"),
    Claim("momentum-jumps-local-minima",
          "Can jump local minima", "notes 001",
          "The notes' two-minima function from (1.6, 1.2), 250 steps: GD η = 0.05, momentum and Nesterov "
          "(η = 0.05, α = 0.9), AdaGrad η = 0.5, RMSprop η = 0.01, Adam η = 0.1; which well each settles in "
          "and "
          "after how many iterations.", _two_minima, _two_minima_predicate, "holds",
          _race_request("two-minima", _TWO_MINIMA, 250)),
    Claim("large-lr-cannot-settle-in-a-sharp-minimum",
          "constant and too large: erratic and oscillatory descent",
          "notes 001", "GD near the deep minimum of two-minima (start 0.05, 0.03 off it), η = 0.9·2/λ_max and "
          "1.1·2/λ_max with λ_max the Hessian's largest eigenvalue there, 200 steps.",
          _sharp, _sharp_predicate, "holds"),
    Claim("ill-conditioning-slows-gd-like-kappa",
          "In valleys of the lanscape of the loss function (small but consistent gradients), the gradient "
          "descent is very slow.", "notes 001",
          "GD with η = 1/λ_max on rotated quadratics with κ = 10, 30, 100, 300, 3000-step budget each; the "
          "steps until the loss gap has fallen 10⁶-fold.", _kappa, _kappa_predicate, "holds"),
    Claim("noise-escapes-a-saddle",
          "The problem can be partially solved by using a noisy estimate of the gradient, which SGD does "
          "implicitly.", "notes 002",
          "GD η = 0.05 from (0, 1.5), exactly on the ridge of x⁴/4 − x²/2 + y², 200 steps, with the exact "
          "gradient "
          "and with gradient noise σ = 0.1 (seed 0).", _saddle, _saddle_predicate, "holds", _SADDLE),
    Claim("clipping-tames-exploding-gradients",
          "Gradient clipping can be an effective antidote.", "notes 002",
          "A tanh RNN (1 → 16 → 1) over 40 steps predicting a clipped running sum, recurrent weights scaled "
          "to "
          "spectral radius 1.8, full-batch SGD with η = 0.2 (and 0.05), 150 steps, with and without "
          "clipping by "
          "global norm c = 1 (same initialisation).", _rnn_clipping, _rnn_predicate, "holds"),
    Claim("reverse-mode-needs-one-pass",
          "Reverse mode takes an output (eg the loss) and differentiates it with respect to all inputs. ... "
          "it "
          "can be used to get the derivatives for all the parameters in one pass.",
          "notes 002", "torch.func.vjp (one pass) against n torch.func.jvp passes for the gradient of "
          "f(x) = Σ tanh(Ax)² with n = 4 … 256 inputs (A 64 × n), and the Jacobian of h: R² → Rᵐ (m = 4 … "
          "256) "
          "both ways; best of 5 timings, float64.", _autodiff, _autodiff_predicate, "holds"),
    Claim("larger-batches-reach-sharper-minima",
          "Hypothesized by Keskar et al. (2016) to have worse generalization performance since they result "
          "in "
          "sharper local minima being reached.", "notes 002",
          "MLP 64-32-10 on 1200 digits, SGD η = 0.1, 20 epochs with batches of 16 or 600, seeds 0–2; λ_max "
          "of "
          "the full training loss's Hessian (20 Lanczos steps) at the end.", _keskar, _keskar_predicate, "refuted"),
    Claim("rmsprop-is-sensitive-to-its-learning-rate",
          "One notable aspect of RMSprop is its sensitivity to the initial learning rate ... RMSprop may "
          "exhibit oscillations around the minima during optimization.", "notes 004",
          "RMSprop (ρ = 0.99) with η = 0.003, 0.01, 0.03, 0.1 on the κ = 10 quadratic from (−1.5, 1.5), 300 "
          "steps; the final loss gap and the mean distance of the last 50 iterates from their average.",
          _rmsprop_sensitivity, _rmsprop_predicate, "refuted",
          _race_request("quadratic(kappa=10)", [f"rmsprop(lr={lr})" for lr in _RMS_LRS], 300)),
]
