"""Benchmark of descentlab's second-order solvers.

(a) Evaluation counts on standard unconstrained test problems (:mod:`mgh_problems`: Rosenbrock in
    2 and 100 dimensions and 25 more of Moré, Garbow & Hillstrom 1981, from their standard starts):
    BFGS, Newton, nonlinear CG and L-BFGS against ``scipy.optimize.minimize`` with the same method —
    BFGS, Newton-CG (SciPy's line-search Newton: a Newton direction and a Wolfe line search from
    t = 1, as descentlab's; trust-exact, SciPy's exact-Hessian trust-region Newton, is shown for
    reference), CG and L-BFGS-B (m = 10). Both sides start from the same point, stop at the same
    gradient tolerance ‖g‖_∞ ≤ 1e-5 (Newton-CG has none: a callback stops it there) and get the
    same f, ∇f and ∇²f (torch float64). A run has *solved* a problem when it ends with
    ‖g‖_∞ ≤ 1e-5 and f ≤ f* + 1e-5 max(1, |f*|), f* the best known minimum (MGH's table): a run
    that stops at another stationary point (Freudenstein–Roth's local minimum, the 100-D
    Rosenbrock's f = 3.987) has not. *Evaluations* are counted alike on both sides as points at
    which f and ∇f were evaluated — one closure call of a torch model gives both: descentlab's
    ``solver_state["func_evals"]`` (closure calls; Newton's Hessian comes from the gradient's graph
    of such a call), and for SciPy the distinct points at which its ``fun`` or ``jac`` was called,
    line searches included (SciPy's own nfev and njev, shown too, count calls: a point asked for
    twice counts once here; its Hessian calls are not counted). The
    summary: problems solved by each side, and the median ratio descentlab / SciPy of evaluations
    on the problems both solved.
(b) Rosenbrock in 2 and 100 dimensions: iterations, closure (function+gradient) evaluations, wall
    time and final value for each solver — Hessian-free and Krylov subspace descent too — next to
    ``scipy.optimize.minimize`` with the same method and gradient tolerance (‖g‖_∞ ≤ 1e-5).
(c) What the closure mechanism costs: one closure call as the solvers make it — plain, under the
    thread-local mode that detects the closure's style, and with the differentiable gradient
    curvature solvers need — against the bare call (``loss.backward()``, resp.
    ``loss.backward(create_graph=True)``), on Rosenbrock-100 and on the autoencoder of (d).
(d) Martens (2010)'s Hessian-free headline, scaled down: a deep (6 Linear layers) autoencoder on
    ``sklearn.datasets.load_digits`` trained by Hessian-free (Gauss–Newton, default
    hyperparameters), Adam (learning rate tuned on a grid) and K-FAC (learning rate tuned on the
    same-size grid), each for the same wall-time budget. Training loss against wall time and
    against gradient evaluations is drawn as a figure.

Usage::

    python benchmarks/second_order.py [--out runs/bench] [--budget 20] [--threads 1] [--markdown]

Tables go to stdout (``--markdown``: the evaluation counts also as the README's table), the figure
to ``<out>/second_order_autoencoder.png``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.optimize
import torch
from torch import nn

from descentlab import second_order as so
from descentlab._io import save_figure
from descentlab.second_order._closure import call_closure
from mgh_problems import PROBLEMS, Problem

GTOL = 1e-5


# -- (a) evaluation counts on standard test problems ------------------------------------------
@dataclass
class Run:
    evaluations: int  # points at which f and ∇f were evaluated
    iterations: int
    f: float
    g: float  # ‖∇f‖_∞ at the end
    solved: bool
    detail: str = ""  # SciPy: its nfev/njev


def is_solved(problem: Problem, f: float, g: float) -> bool:
    return math.isfinite(f) and g <= GTOL and f <= problem.f_star + 1e-5 * max(1.0, abs(problem.f_star))


def outcome(problem: Problem, x: torch.Tensor) -> tuple[float, float]:
    """f and ‖∇f‖_∞ at x, evaluated outside every count."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    return float(problem.f(x)), torch.func.grad(problem.f)(x).abs().max().item()


def max_iterations(problem: Problem) -> int:
    return max(1000, 200 * problem.n)  # SciPy's BFGS, CG and Newton-CG default to 200 n


class CountedProblem:
    """f, ∇f and ∇²f for SciPy, recording every point at which f or ∇f is asked for."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.points: set[bytes] = set()
        self._grad = torch.func.grad(problem.f)
        self._hess = torch.func.hessian(problem.f)

    def _at(self, x: np.ndarray) -> torch.Tensor:
        self.points.add(np.asarray(x, dtype=np.float64).tobytes())
        return torch.tensor(x, dtype=torch.float64)

    def fun(self, x: np.ndarray) -> float:
        return float(self.problem.f(self._at(x)))

    def jac(self, x: np.ndarray) -> np.ndarray:
        return self._grad(self._at(x)).numpy()

    def hess(self, x: np.ndarray) -> np.ndarray:  # not an evaluation of f: not recorded
        return self._hess(torch.tensor(x, dtype=torch.float64)).numpy()


def run_scipy_method(problem: Problem, method: str) -> Run:
    counted = CountedProblem(problem)
    maxiter = max_iterations(problem)
    options: dict = {"gtol": GTOL, "maxiter": maxiter}
    extra: dict = {}
    if method == "L-BFGS-B":
        options.update(maxcor=10, ftol=0.0, maxfun=20 * maxiter)
    if method in ("Newton-CG", "trust-exact"):
        extra["hess"] = counted.hess
    if method == "Newton-CG":  # no gradient tolerance: stop it at ‖g‖∞ ≤ GTOL from a callback
        options = {"xtol": 1e-300, "maxiter": maxiter}

        def stop_when_stationary(intermediate_result):
            if outcome(problem, intermediate_result.x)[1] <= GTOL:
                raise StopIteration

        extra["callback"] = stop_when_stationary
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        result = scipy.optimize.minimize(
            counted.fun, np.array(problem.x0), jac=counted.jac, method=method, options=options, **extra
        )
    f, g = outcome(problem, result.x)
    detail = f"{result.nfev}/{result.njev}"
    return Run(len(counted.points), int(result.nit), f, g, is_solved(problem, f, g), detail)


def run_descentlab_solver(problem: Problem, factory) -> Run:
    p = nn.Parameter(torch.tensor(problem.x0, dtype=torch.float64))
    maxiter = max_iterations(problem)
    opt = factory([p], max_iter=maxiter, max_eval=20 * maxiter, tolerance_grad=GTOL, tolerance_change=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.step(lambda: problem.f(p))  # one step() runs the whole minimisation
    state = opt.solver_state
    f, g = outcome(problem, p.detach())
    return Run(state["func_evals"], state["n_iter"], f, g, is_solved(problem, f, g))


# (descentlab solver, its factory, SciPy's method)
COMPARISONS = [
    ("BFGS", lambda p, **kw: so.BFGS(p, **kw), "BFGS"),
    ("Newton", lambda p, **kw: so.Newton(p, **kw), "Newton-CG"),
    ("Newton", lambda p, **kw: so.Newton(p, **kw), "trust-exact"),
    ("NonlinearCG (PR+)", lambda p, **kw: so.NonlinearCG(p, **kw), "CG"),
    ("LBFGS (m=10)", lambda p, **kw: so.LBFGS(p, history_size=10, **kw), "L-BFGS-B"),
]


def evaluation_table(markdown: bool = False) -> dict[tuple[str, str], dict]:
    """Per comparison: the per-problem table, then problems solved and the median ratio."""
    ours: dict[tuple[str, str], Run] = {}
    summaries = {}
    for name, factory, method in COMPARISONS:
        print(f"\n{name} vs scipy {method}: f+g evaluations / iterations (SciPy: also nfev/njev)")
        print(f"{'problem':32s} {'descentlab':>16s} {'scipy':>24s} {'ratio':>6s}")
        ratios, solved = [], [0, 0]
        for problem in PROBLEMS:
            if (name, problem.name) not in ours:
                ours[name, problem.name] = run_descentlab_solver(problem, factory)
            mine, theirs = ours[name, problem.name], run_scipy_method(problem, method)
            solved[0] += mine.solved
            solved[1] += theirs.solved
            ratio = ""
            if mine.solved and theirs.solved:
                ratios.append(mine.evaluations / theirs.evaluations)
                ratio = f"{ratios[-1]:.2f}"
            mark = {True: " ", False: "✗"}
            print(
                f"{problem.name:32s} {mine.evaluations:6d} / {mine.iterations:5d} {mark[mine.solved]}  "
                f"{theirs.evaluations:6d} ({theirs.detail:>9s}) / {theirs.iterations:5d} "
                f"{mark[theirs.solved]} {ratio:>6s}"
            )
            summaries.setdefault((name, method), {})[problem.name] = (mine, theirs)
        median = statistics.median(ratios) if ratios else math.nan
        print(
            f"solved: descentlab {solved[0]}, scipy {solved[1]} of {len(PROBLEMS)}; median ratio "
            f"descentlab/scipy on the {len(ratios)} both solved: {median:.3f}  (✗: not solved)"
        )
    if markdown:
        print_markdown(summaries)
    return summaries


def print_markdown(summaries: dict) -> None:
    """The README's table: evaluations descentlab / SciPy per problem and method."""
    keys = list(summaries)
    print("\n| problem | " + " | ".join(f"{n} / {m}" for n, m in keys) + " |")
    print("|---|" + "---|" * len(keys))

    def cell(run: Run) -> str:
        return f"{run.evaluations}" if run.solved else f"({run.evaluations})"

    for problem in PROBLEMS:
        row = [f"{cell(summaries[k][problem.name][0])} / {cell(summaries[k][problem.name][1])}" for k in keys]
        print(f"| {problem.name} | " + " | ".join(row) + " |")
    solved, medians = [], []
    for k in keys:
        runs = list(summaries[k].values())
        both = [a.evaluations / b.evaluations for a, b in runs if a.solved and b.solved]
        solved.append(f"{sum(a.solved for a, _ in runs)} / {sum(b.solved for _, b in runs)}")
        medians.append(f"**{statistics.median(both):.2f}** ({len(both)})")
    print("| solved | " + " | ".join(solved) + " |")
    print("| median ratio (both solved) | " + " | ".join(medians) + " |")


# -- (b) Rosenbrock ------------------------------------------------------------------------
def rosenbrock(p: torch.Tensor) -> torch.Tensor:
    return torch.sum(100.0 * (p[1:] - p[:-1] ** 2) ** 2 + (1 - p[:-1]) ** 2)


def start_point(n: int) -> list[float]:
    return [-1.2, 1.0] if n == 2 else [-1.2 if i % 2 == 0 else 1.0 for i in range(n)]


def run_descentlab(name: str, factory, n: int, max_steps: int = 20_000) -> dict:
    p = nn.Parameter(torch.tensor(start_point(n), dtype=torch.float64))
    opt = factory([p])

    def closure():
        opt.zero_grad()
        loss = rosenbrock(p)
        loss.backward()
        return loss

    begin = time.perf_counter()
    steps = 0
    while steps < max_steps:
        opt.step(closure)
        steps += 1
        grad = torch.func.grad(rosenbrock)(p.detach())
        if grad.abs().max().item() <= GTOL:
            break
    elapsed = time.perf_counter() - begin
    state = opt.solver_state
    return dict(
        solver=name,
        iterations=state["n_iter"],
        evaluations=state["func_evals"],
        seconds=elapsed,
        f=float(rosenbrock(p.detach())),
    )


def run_scipy(method: str, n: int) -> dict:
    x0 = np.array(start_point(n))
    options = {"gtol": GTOL}
    if method == "L-BFGS-B":
        options.update(maxcor=10, ftol=0.0, maxiter=20_000)
    if method == "Newton-CG":
        options = {"xtol": 1e-10}
    extra = {"hess": scipy.optimize.rosen_hess} if method == "Newton-CG" else {}
    begin = time.perf_counter()
    result = scipy.optimize.minimize(
        scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der, method=method, options=options, **extra
    )
    elapsed = time.perf_counter() - begin
    return dict(
        solver=f"scipy {method}",
        iterations=result.nit,
        evaluations=result.nfev,
        seconds=elapsed,
        f=float(result.fun),
    )


def rosenbrock_table(n: int) -> list[dict]:
    lbfgs = dict(max_iter=20_000, max_eval=100_000, tolerance_grad=GTOL, tolerance_change=0.0)
    rows = [
        run_descentlab("BFGS", lambda p: so.BFGS(p, **lbfgs), n),
        run_scipy("BFGS", n),
        run_descentlab("LBFGS (m=10)", lambda p: so.LBFGS(p, history_size=10, **lbfgs), n),
        run_scipy("L-BFGS-B", n),
        run_descentlab("NonlinearCG PR+", lambda p: so.NonlinearCG(p, **lbfgs), n),
        run_scipy("CG", n),
        run_descentlab("Newton", lambda p: so.Newton(p, **lbfgs), n),
        run_scipy("Newton-CG", n),
        run_descentlab("HessianFree (Hessian)", lambda p: so.HessianFree(p), n, max_steps=2000),
        run_descentlab("KrylovSubspaceDescent", lambda p: so.KrylovSubspaceDescent(p), n, max_steps=2000),
    ]
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'solver':28s} {'iterations':>10s} {'f+g evals':>10s} {'seconds':>9s} {'final f':>11s}")
    for r in rows:
        print(
            f"{r['solver']:28s} {r['iterations']:10d} {r['evaluations']:10d} "
            f"{r['seconds']:9.3f} {r['f']:11.3e}"
        )


# -- (c) the closure mechanism's overhead ----------------------------------------------------
def _per_call(fn, repeats: int) -> float:
    for _ in range(max(3, repeats // 10)):
        fn()
    begin = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - begin) / repeats


def _overhead_row(params: list[torch.Tensor], loss_fn, repeats: int, rounds: int) -> dict[str, float]:
    def torch_style(create_graph=False):
        for q in params:
            q.grad = None
        loss = loss_fn()
        loss.backward(create_graph=create_graph)
        return loss

    def bare_graph():  # what the solvers did before (under a patched Tensor.backward)
        torch_style(create_graph=True)
        for q in params:
            q.grad = q.grad.detach()

    timings = {
        "bare": torch_style,
        "detect": lambda: call_closure(torch_style, params),
        "bare+graph": bare_graph,
        "capture": lambda: call_closure(torch_style, params, create_graph=True),
        "returns loss": lambda: call_closure(loss_fn, params, create_graph=True),
    }
    samples: dict[str, list[float]] = {key: [] for key in timings}
    with warnings.catch_warnings():  # bare+graph: torch warns about .grad with create_graph=True
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(rounds):  # interleaved, so that a busy machine slows every variant alike
            for key, fn in timings.items():
                samples[key].append(_per_call(fn, repeats))
    return {key: float(np.median(values)) * 1e6 for key, values in samples.items()}


def closure_overhead_table(rounds: int = 9) -> None:
    """Microseconds per closure call, median of ``rounds`` rounds."""
    p = nn.Parameter(torch.tensor(start_point(100), dtype=torch.float64))
    model = autoencoder(0)
    data = torch.rand(1797, 64, generator=torch.Generator().manual_seed(0))
    rows = {
        "Rosenbrock 100-D": _overhead_row([p], lambda: rosenbrock(p), 500, rounds),
        "autoencoder, 1797 × 64": _overhead_row(
            list(model.parameters()), lambda: nn.functional.mse_loss(model(data), data), 20, rounds
        ),
    }
    print(
        f"\nClosure call, µs (median of {rounds} rounds). bare: the closure itself; detect: under the mode "
        "that finds its style (first call of a step); bare+graph: backward(create_graph=True); capture: "
        "the curvature solvers' call; returns loss: a closure without backward, differentiated by the solver"
    )
    print(f"{'':24s} {'bare':>9s} {'detect':>9s} {'bare+graph':>11s} {'capture':>9s} {'returns loss':>13s}")
    for name, m in rows.items():
        print(
            f"{name:24s} {m['bare']:9.1f} {m['detect']:9.1f} {m['bare+graph']:11.1f} "
            f"{m['capture']:9.1f} {m['returns loss']:13.1f}"
        )


# -- (d) deep autoencoder on digits -------------------------------------------------------
def digits() -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().data / 16.0, dtype=torch.float32)


def autoencoder(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    sizes = [64, 48, 32, 8, 32, 48, 64]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def train(method: str, data: torch.Tensor, budget: float, seed: int = 0, **hp) -> dict:
    model = autoencoder(seed)
    loss_fn = nn.functional.mse_loss
    if method == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=hp["lr"])
    elif method == "kfac":
        opt = so.NaturalGradient(
            model.parameters(), model=model, lr=hp["lr"], damping=hp.get("damping", 0.03)
        )
    else:
        opt = so.HessianFree(model.parameters())
    curvature_batch = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:512]]

    def closure():
        opt.zero_grad()
        out = model(data)
        loss = loss_fn(out, data)
        loss.backward()
        return loss, out

    def curvature_closure():
        opt.zero_grad()
        out = model(curvature_batch)
        loss = loss_fn(out, curvature_batch)
        loss.backward()
        return loss, out

    with torch.no_grad():
        times, evals, losses = [0.0], [0], [float(loss_fn(model(data), data))]
    grad_evals, elapsed, products = 0, 0.0, 0
    while elapsed < budget:
        begin = time.perf_counter()
        if method == "adam":
            closure()
            opt.step()
            grad_evals += 1
        elif method == "kfac":
            opt.step(closure)
            grad_evals += 1
        else:
            opt.step(closure, curvature_closure=curvature_closure)
            # closure calls + CG's curvature products (each ≈ one gradient evaluation on the curvature batch)
            products += opt.solver_state["cg_iterations"] + 1
            grad_evals = opt.solver_state["func_evals"] + products
        elapsed += time.perf_counter() - begin
        with torch.no_grad():
            losses.append(float(loss_fn(model(data), data)))
        times.append(elapsed)
        evals.append(grad_evals)
    return dict(method=method, hp=hp, times=times, evals=evals, losses=losses)


def autoencoder_benchmark(budget: float, out: Path) -> list[dict]:
    data = digits()
    print(
        f"\nDeep autoencoder 64-48-32-8-32-48-64 (tanh, sigmoid output, MSE) on load_digits "
        f"({len(data)} images), {budget:g} s per run, full-batch gradients"
    )
    tuning_budget = budget / 2
    results = {}
    for method, grid in (("adam", [1e-3, 3e-3, 1e-2, 3e-2]), ("kfac", [0.1, 0.3, 1.0])):
        trials = [train(method, data, tuning_budget, lr=lr) for lr in grid]
        for t in trials:
            print(
                f"  tuning {method:5s} lr={t['hp']['lr']:<6g} "
                f"loss after {tuning_budget:g} s: {t['losses'][-1]:.5f}"
            )
        best = min(trials, key=lambda t: t["losses"][-1])
        results[method] = train(method, data, budget, lr=best["hp"]["lr"])
    results["hessian-free"] = train("hf", data, budget)
    print(
        f"\n{'method':14s} {'setting':12s} {'steps':>6s} {'grad evals':>10s} {'final loss':>11s} "
        f"{'loss @ 25%':>11s} {'loss @ 50%':>11s}"
    )
    for name, r in results.items():
        setting = f"lr={r['hp']['lr']:g}" if r["hp"] else "defaults"

        def at(fraction, r=r):
            index = max(i for i, t in enumerate(r["times"]) if t <= fraction * budget)
            return r["losses"][index]

        print(
            f"{name:14s} {setting:12s} {len(r['times']) - 1:6d} {r['evals'][-1]:10d} {r['losses'][-1]:11.5f} "
            f"{at(0.25):11.5f} {at(0.5):11.5f}"
        )
    plot(results, out / "second_order_autoencoder.png", budget)
    return list(results.values())


def plot(results: dict, path: Path, budget: float) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=120)
    FigureCanvasAgg(fig)
    by_time, by_evals = fig.subplots(1, 2)
    for name, r in results.items():
        label = f"{name} (lr={r['hp']['lr']:g})" if r["hp"] else f"{name} (defaults)"
        by_time.plot(r["times"], r["losses"], label=label)
        by_evals.plot(r["evals"], r["losses"], label=label)
    for ax, xlabel in (
        (by_time, "wall time (s)"),
        (by_evals, "gradient evaluations (HF: + curvature products)"),
    ):
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training MSE")
        ax.grid(alpha=0.3)
    by_evals.set_xscale("log")
    by_time.legend(fontsize=8)
    fig.suptitle(
        f"Deep autoencoder on digits: Hessian-free vs tuned Adam vs K-FAC ({budget:g} s each)", fontsize=10
    )
    fig.tight_layout()
    save_figure(fig, path)
    print(f"\nfigure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="folder for the figure")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of training per autoencoder run")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--markdown", action="store_true", help="the evaluation counts as a Markdown table")
    parser.add_argument("--skip-evaluations", action="store_true", help="skip the evaluation-count table")
    parser.add_argument("--skip-rosenbrock", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true", help="skip the closure-overhead table")
    parser.add_argument("--skip-autoencoder", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_evaluations:
        evaluation_table(args.markdown)
    if not args.skip_rosenbrock:
        for n in (2, 100):
            print_table(
                f"Rosenbrock {n}-D from {'(-1.2, 1)' if n == 2 else '(-1.2, 1, -1.2, 1, ...)'}, "
                f"stop at ‖g‖∞ ≤ {GTOL:g}",
                rosenbrock_table(n),
            )
    if not args.skip_overhead:
        closure_overhead_table()
    if not args.skip_autoencoder:
        autoencoder_benchmark(args.budget, args.out)


if __name__ == "__main__":
    main()
