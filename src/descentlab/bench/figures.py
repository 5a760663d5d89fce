"""The figures of the benchmark report, drawn from stored trial rows (matplotlib ``Figure`` + Agg canvas,
no pyplot; the house style inside ``rc_context`` only).

Every function takes the rows of :func:`descentlab.bench.report.collect` (and what it needs besides)
and returns a :class:`matplotlib.figure.Figure`; nothing here trains or reads the clock.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np

from ..plots import COLORS, new_figure
from .scoring import R_MAX, expected_best, performance_ratios, reach_probability, workload_times
from .spaces import search_space
from .workloads import get_workload

__all__ = [
    "colors_for",
    "best_per_study",
    "profile_figure",
    "curves_figure",
    "tuning_figure",
    "reach_figure",
    "lr_figure",
    "heatmap_figure",
    "starting_points_figure",
    "generalisation_figure",
    "STYLE",
]

STYLE = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
Rows = Sequence[Mapping[str, Any]]


def colors_for(optimizers: Sequence[str]) -> dict[str, str]:
    return {name: COLORS[i % len(COLORS)] for i, name in enumerate(optimizers)}


def _oriented(value: float, mode: str) -> float:
    if not math.isfinite(value):
        return -math.inf
    return -value if mode == "min" else value


def rank_key(row: Mapping[str, Any]) -> tuple[float, float]:
    """Better trials sort first: sooner to target, then the better best metric."""
    mode = get_workload(row["workload"]).mode
    time = row["steps_to_target"] if row["status"] == "reached" else math.inf
    return (time, -_oriented(row["best_metric"], mode))


def best_per_study(rows: Rows, ruleset: str = "external") -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """``{(workload, optimizer): [the best trial of each study]}`` (AlgoPerf: the fastest to target)."""
    groups: dict[tuple[str, str, int], list] = defaultdict(list)
    for row in rows:
        if row["ruleset"] == ruleset and (ruleset != "self" or row["trial"] == 0):
            groups[row["workload"], row["optimizer"], row["study"]].append(row)
    best: dict[tuple[str, str], list] = defaultdict(list)
    for (w, o, _), members in sorted(groups.items()):
        best[w, o].append(min(members, key=rank_key))
    return dict(best)


def _legend(ax, **options) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)


def _grid(count: int, columns: int = 2) -> tuple[int, int]:
    columns = min(columns, count)
    return math.ceil(count / columns), columns


def _log_metric(workload: str) -> bool:
    return get_workload(workload).mode == "min"


#: losses below this are drawn at it on log axes (f − f* can come out a rounding error below 0)
FLOOR = 1e-16


def _drawn(values, workload: str):
    if not _log_metric(workload):
        return values
    return [max(float(v), FLOOR) if math.isfinite(v) else v for v in values]


def _ratio_points(ratios: Mapping[str, float]) -> tuple[list[float], list[float]]:
    values = sorted(r for r in ratios.values() if r <= R_MAX)
    n = len(ratios)
    xs, ys = [1.0], [0.0]
    for i, r in enumerate(values, start=1):
        xs += [r, r]
        ys += [ys[-1], i / n]
    xs.append(R_MAX)
    ys.append(ys[-1])
    return xs, ys


def profile_figure(rows: Rows, optimizers: Sequence[str], rulesets: Sequence[str], measure: str = "steps"):
    """ρ(τ) on [1, 4] for each ruleset that is scored (one panel each), with each optimizer's score."""
    from .scoring import benchmark_score

    scored = [r for r in rulesets if r in ("external", "self") and any(x["ruleset"] == r for x in rows)]
    colors = colors_for(optimizers)
    with matplotlib.rc_context(STYLE):
        figure = new_figure((5.2 * len(scored), 3.6))
        axes = figure.subplots(1, len(scored), squeeze=False)[0]
        for ax, ruleset in zip(axes, scored):
            times = workload_times(rows, ruleset, measure)
            ratios = performance_ratios(times)
            scores = benchmark_score(times)
            order = sorted(ratios, key=lambda s: (-scores[s], optimizers.index(s) if s in optimizers else 99))
            for s in order:
                xs, ys = _ratio_points(ratios[s])
                ax.plot(
                    xs,
                    ys,
                    color=colors.get(s, "#444"),
                    lw=2,
                    drawstyle="default",
                    label=f"{s}  B = {scores[s]:.3f}",
                )
            ax.set_xlim(1, R_MAX)
            ax.set_ylim(-0.03, 1.03)
            if not any(scores.values()):  # a workload's time is the median over studies (or seeds)
                some = any(r["ruleset"] == ruleset and r["status"] == "reached" for r in rows)
                text = (
                    "no optimizer's median run reached a target\n(some single runs did: see the table)"
                    if some
                    else "no optimizer reached any target"
                )
                ax.text(2.5, 0.5, text, ha="center", va="center", color="#b42318")
            label = {"external": "tuned (external ruleset)", "self": "defaults (self ruleset)"}[ruleset]
            ax.set_title(f"{label}: time in {measure}")
            ax.set_xlabel("τ  (time ÷ fastest optimizer's time on the workload)")
            ax.set_ylabel("ρ(τ): fraction of workloads")
            _legend(ax, loc="lower right")
        figure.tight_layout()
    return figure


def _band(
    curves: list[tuple[list[float], list[float]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    steps = sorted({s for xs, _ in curves for s in xs})
    table = np.full((len(curves), len(steps)), np.nan)
    index = {s: i for i, s in enumerate(steps)}
    for row, (xs, ys) in enumerate(curves):
        for x, y in zip(xs, ys):
            table[row, index[x]] = y
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(table, axis=0)
            q1 = np.nanpercentile(table, 25, axis=0)
            q3 = np.nanpercentile(table, 75, axis=0)
    return np.array(steps, dtype=float), median, q1, q3


def curves_figure(rows: Rows, workloads: Sequence[str], optimizers: Sequence[str]):
    """Per workload, the metric against steps: median and IQR band over the studies' best trials
    (external, solid) and the median over seeds of the defaults (self, dashed); the target line."""
    tuned, defaults = best_per_study(rows, "external"), best_per_study(rows, "self")
    colors = colors_for(optimizers)
    nrows, ncols = _grid(len(workloads))
    with matplotlib.rc_context(STYLE):
        figure = new_figure((5.4 * ncols, 3.5 * nrows))
        axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, w in zip(axes, workloads):
            workload = get_workload(w)
            for o in optimizers:
                for group, style in ((tuned, "-"), (defaults, "--")):
                    members = group.get((w, o), [])
                    curves = [(r["curve"].get("step", []), r["curve"].get("metric", [])) for r in members]
                    curves = [c for c in curves if c[0]]
                    if not curves:
                        continue
                    curves = [(xs, _drawn(ys, w)) for xs, ys in curves]
                    steps, median, q1, q3 = _band(curves)
                    label = o if style == "-" else None
                    ax.plot(
                        steps, median, style, color=colors[o], lw=1.8 if style == "-" else 1.1, label=label
                    )
                    if style == "-" and len(curves) > 1:
                        ax.fill_between(steps, q1, q3, color=colors[o], alpha=0.15, lw=0)
            ax.axhline(workload.target, color="black", lw=1, ls=":", label=f"target {workload.target:g}")
            if _log_metric(w):
                ax.set_yscale("log")
            else:
                ax.set_ylim(max(0.0, workload.target - 0.25), 1.0)
            ax.set_title(
                f"{w}: {workload.metric} ({'lower' if workload.mode == 'min' else 'higher'} is better)"
            )
            ax.set_xlabel("optimizer steps")
            ax.set_ylabel(workload.metric)
        for ax in axes[len(workloads) :]:
            ax.set_visible(False)
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(
            handles,
            labels,
            loc="upper center",
            ncol=min(8, len(labels)),
            frameon=False,
            bbox_to_anchor=(0.5, 1.0),
        )
        figure.tight_layout(rect=(0, 0, 1, 0.94))
    return figure


def _pool(rows: Rows, w: str, o: str, ruleset: str = "external") -> list[Mapping[str, Any]]:
    return [r for r in rows if r["workload"] == w and r["optimizer"] == o and r["ruleset"] == ruleset]


def tuning_figure(rows: Rows, workloads: Sequence[str], optimizers: Sequence[str]):
    """Expected best metric after k trials drawn from the pool of external trials (exact)."""
    colors = colors_for(optimizers)
    nrows, ncols = _grid(len(workloads))
    with matplotlib.rc_context(STYLE):
        figure = new_figure((5.4 * ncols, 3.3 * nrows))
        axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, w in zip(axes, workloads):
            workload = get_workload(w)
            for o in optimizers:
                pool = _pool(rows, w, o)
                if not pool:
                    continue
                values = _drawn([r["best_metric"] for r in pool], w)
                ks = list(range(1, len(pool) + 1))
                ys = [expected_best(values, k, workload.mode) for k in ks]
                ax.plot(ks, ys, "-o", ms=3, color=colors[o], label=o)
            ax.axhline(workload.target, color="black", lw=1, ls=":")
            if _log_metric(w):
                ax.set_yscale("log")
            ax.set_title(f"{w}: expected best {workload.metric} after k trials")
            ax.set_xlabel("k: trials of the search (drawn from the run's pool)")
            ax.set_ylabel(f"best {workload.metric}")
        for ax in axes[len(workloads) :]:
            ax.set_visible(False)
        _legend(axes[0], loc="best")
        figure.tight_layout()
    return figure


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def reach_figure(
    rows: Rows, workloads: Sequence[str], optimizers: Sequence[str], palette: Sequence[str] | None = None
):
    """The probability that at least one of k trials drawn from the pool reaches the target.

    ``palette``: the run's optimizers, so that a figure of a few of them keeps the colours of the others.
    Curves often coincide (two optimizers with the same count of reaching trials): each optimizer has its
    own marker, and each later one is drawn thinner on top, so that the one beneath still shows."""
    colors = colors_for(palette or optimizers)
    nrows, ncols = _grid(len(workloads))
    with matplotlib.rc_context(STYLE):
        figure = new_figure((5.4 * ncols, 3.1 * nrows))
        axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, w in zip(axes, workloads):
            for o in optimizers:
                pool = _pool(rows, w, o)
                if not pool:
                    continue
                reached = [r["status"] == "reached" for r in pool]
                ks = list(range(1, len(pool) + 1))
                i = list(optimizers).index(o)
                ax.plot(
                    ks,
                    [reach_probability(reached, k) for k in ks],
                    marker=MARKERS[i % len(MARKERS)],
                    ms=max(2.5, 7 - 0.8 * i),
                    lw=max(0.8, 3 - 0.4 * i),
                    color=colors[o],
                    label=o,
                )
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{w}: P(one of k trials reaches the target)")
            ax.set_xlabel("k: trials of the search")
            ax.set_ylabel("probability")
        for ax in axes[len(workloads) :]:
            ax.set_visible(False)
        _legend(axes[0], loc="lower right")
        figure.tight_layout()
    return figure


def lr_figure(rows: Rows, workloads: Sequence[str], optimizers: Sequence[str]):
    """Best metric of every trial against its learning rate (external: dots; self defaults: stars);
    diverged trials as × on the worse edge."""
    colors = colors_for(optimizers)
    nrows, ncols = _grid(len(workloads))
    with matplotlib.rc_context(STYLE):
        figure = new_figure((5.4 * ncols, 3.4 * nrows))
        axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, w in zip(axes, workloads):
            workload = get_workload(w)
            finite = [
                r["best_metric"] for r in rows if r["workload"] == w and math.isfinite(r["best_metric"])
            ]
            if not finite:
                continue
            worst = max(finite) if workload.mode == "min" else min(finite)
            for o in optimizers:
                for ruleset, marker, size in (("external", "o", 18), ("self", "*", 70)):
                    pool = [r for r in _pool(rows, w, o, ruleset) if "lr" in r["config"]]
                    if not pool:
                        continue
                    ok = [r for r in pool if r["status"] != "diverged" and math.isfinite(r["best_metric"])]
                    bad = [r for r in pool if r not in ok]
                    ax.scatter(
                        [r["config"]["lr"] for r in ok],
                        _drawn([r["best_metric"] for r in ok], w),
                        s=size,
                        marker=marker,
                        color=colors[o],
                        alpha=0.8,
                        label=o if ruleset == "external" else None,
                    )
                    if bad:
                        ax.scatter(
                            [r["config"]["lr"] for r in bad],
                            [worst] * len(bad),
                            s=30,
                            marker="x",
                            color=colors[o],
                            alpha=0.9,
                        )
            ax.axhline(workload.target, color="black", lw=1, ls=":")
            ax.set_xscale("log")
            if _log_metric(w):
                ax.set_yscale("log")
            ax.set_title(f"{w}: best {workload.metric} against lr (× diverged, ★ defaults)")
            ax.set_xlabel("learning rate")
            ax.set_ylabel(f"best {workload.metric}")
        for ax in axes[len(workloads) :]:
            ax.set_visible(False)
        _legend(axes[0], loc="best", ncol=2)
        figure.tight_layout()
    return figure


def momentum_key(config: Mapping[str, Any]) -> str | None:
    for key in ("betas[0]", "momentum"):
        if key in config:
            return key
    return None


def heatmap_figure(rows: Rows, workload: str, optimizers: Sequence[str], bins: int = 6):
    """lr × β₁ (or momentum) cells of one workload: the best metric of the trials in each cell; cells
    whose trials all diverged are marked ×, empty cells stay blank."""
    spec = get_workload(workload)
    panels = [o for o in optimizers if any(momentum_key(r["config"]) for r in _pool(rows, workload, o))]
    if not panels:
        return None
    finite = [
        r["best_metric"]
        for r in rows
        if r["workload"] == workload
        and r["ruleset"] == "external"
        and math.isfinite(r["best_metric"])
        and r["status"] != "diverged"
    ]
    vmin, vmax = (min(finite), max(finite)) if finite else (0.0, 1.0)
    cmap = matplotlib.colormaps["viridis" if spec.mode == "max" else "viridis_r"]
    norm = (
        matplotlib.colors.LogNorm(vmin=max(vmin, 1e-12), vmax=max(vmax, 1e-11))
        if spec.mode == "min"
        else matplotlib.colors.Normalize(vmin=vmin, vmax=vmax)
    )
    columns = min(3, len(panels))
    nrows = math.ceil(len(panels) / columns)
    with matplotlib.rc_context({**STYLE, "axes.grid": False}):
        figure = new_figure((3.4 * columns + 1.0, 3.0 * nrows + 0.4))
        figure.set_layout_engine("constrained")
        grid_axes = figure.subplots(nrows, columns, squeeze=False).ravel()
        for ax in grid_axes[len(panels) :]:
            ax.set_visible(False)
        axes = grid_axes[: len(panels)]
        image = None
        for ax, o in zip(axes, panels):
            pool = _pool(rows, workload, o)
            key = momentum_key(pool[0]["config"])
            lr = next(d for d in search_space(o).dimensions if d.name == "lr")  # the axis: the whole range
            lo, hi = math.log10(lr.anchor + lr.low), math.log10(lr.anchor + lr.high)
            x_edges = np.linspace(lo, hi + 1e-9, bins + 1)
            y_edges = np.linspace(-2, 0 + 1e-9, 5)  # log10(1 − β) from 0.01 to 1
            grid = np.full((len(y_edges) - 1, bins), np.nan)
            diverged = np.zeros_like(grid, dtype=bool)
            seen = np.zeros_like(grid, dtype=bool)
            for r in pool:
                x = np.searchsorted(x_edges, math.log10(r["config"]["lr"]), side="right") - 1
                gap = max(1e-2, min(1.0, 1 - float(r["config"][key])))
                y = np.searchsorted(y_edges, math.log10(gap), side="right") - 1
                x, y = min(max(x, 0), bins - 1), min(max(y, 0), len(y_edges) - 2)
                seen[y, x] = True
                value = r["best_metric"]
                if r["status"] == "diverged" or not math.isfinite(value):
                    diverged[y, x] = diverged[y, x] or np.isnan(grid[y, x])
                    continue
                diverged[y, x] = False
                value = max(value, FLOOR) if spec.mode == "min" else value
                if np.isnan(grid[y, x]) or _oriented(value, spec.mode) > _oriented(grid[y, x], spec.mode):
                    grid[y, x] = value
            ax.set_facecolor("#eef1f5")  # no trial in the cell
            image = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(grid), cmap=cmap, norm=norm)
            for yy in range(grid.shape[0]):
                for xx in range(grid.shape[1]):
                    if seen[yy, xx] and diverged[yy, xx] and np.isnan(grid[yy, xx]):
                        cx, cy = (x_edges[xx] + x_edges[xx + 1]) / 2, (y_edges[yy] + y_edges[yy + 1]) / 2
                        ax.plot(cx, cy, marker="x", color="#b42318", ms=10, mew=2)
            ax.set_title(o)
            ax.set_xlabel("log10 lr")
            ax.set_ylabel(f"log10(1 − {key})")
        if image is not None:
            bar = figure.colorbar(image, ax=list(axes), shrink=0.85)
            bar.set_label(f"best {spec.metric}")
        figure.suptitle(
            f"{workload}: lr × {('β₁ / momentum')}, best {spec.metric} per cell (× all diverged)", fontsize=10
        )
    return figure


def starting_points_figure(rows: Rows, workloads: Sequence[str], lrs: Sequence[float]):
    """The notes' Adam starting points (β = 0.9, 0.999; lr ∈ lrs; median over seeds, IQR bar) against
    tuned Adam (median over studies of the best trial), per workload: best metric reached."""
    nrows, ncols = _grid(len(workloads), 4)
    with matplotlib.rc_context(STYLE):
        figure = new_figure((3.3 * ncols, 3.0 * nrows))
        axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
        tuned = best_per_study(rows, "external")
        for ax, w in zip(axes, workloads):
            spec = get_workload(w)
            labels, medians, lows, highs, colors = [], [], [], [], []
            for t, lr in enumerate(lrs):
                values = _drawn(
                    [
                        r["best_metric"]
                        for r in rows
                        if r["workload"] == w
                        and r["optimizer"] == "adam"
                        and r["ruleset"] == "self"
                        and r["trial"] == t
                    ],
                    w,
                )
                labels.append(f"lr {lr:g}")
                colors.append("#7f7f7f")
                medians.append(np.median(values) if values else np.nan)
                lows.append(np.percentile(values, 25) if values else np.nan)
                highs.append(np.percentile(values, 75) if values else np.nan)
            values = _drawn([r["best_metric"] for r in tuned.get((w, "adam"), [])], w)
            labels.append("tuned")
            colors.append(COLORS[1])
            medians.append(np.median(values) if values else np.nan)
            lows.append(np.percentile(values, 25) if values else np.nan)
            highs.append(np.percentile(values, 75) if values else np.nan)
            x = np.arange(len(labels))
            medians, lows, highs = map(np.array, (medians, lows, highs))
            ax.errorbar(
                x, medians, yerr=[medians - lows, highs - medians], fmt="none", ecolor="#333", capsize=3
            )
            ax.scatter(x, medians, color=colors, s=40, zorder=3)
            ax.axhline(spec.target, color="black", ls=":", lw=1)
            ax.set_xticks(x, labels, rotation=30)
            if spec.mode == "min":
                ax.set_yscale("log")
            ax.set_title(f"{w}: best {spec.metric}")
        for ax in axes[len(workloads) :]:
            ax.set_visible(False)
        figure.tight_layout()
    return figure


def generalisation_figure(rows: Rows, workloads: Sequence[str], optimizers: Sequence[str]):
    """Per workload with a held-out split: final training loss (x) against the final validation metric
    (y) of the best trial of each study, per optimizer (notes 001's claim)."""
    colors = colors_for(optimizers)
    best = best_per_study(rows, "external")
    nrows, ncols = _grid(len(workloads), 3)
    with matplotlib.rc_context(STYLE):
        figure = new_figure((4.2 * ncols, 3.4 * nrows))
        axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, w in zip(axes, workloads):
            spec = get_workload(w)
            for o in optimizers:
                members = [
                    r
                    for r in best.get((w, o), [])
                    if math.isfinite(r["final_train_loss"]) and math.isfinite(r["final_metric"])
                ]
                if members:
                    ax.scatter(
                        [r["final_train_loss"] for r in members],
                        [r["final_metric"] for r in members],
                        color=colors[o],
                        s=36,
                        label=o,
                        alpha=0.85,
                    )
            ax.set_xscale("log")
            if spec.mode == "min":
                ax.set_yscale("log")
            ax.set_title(f"{w}")
            ax.set_xlabel("final training loss (whole training set)")
            ax.set_ylabel(f"final validation {spec.metric}")
        for ax in axes[len(workloads) :]:
            ax.set_visible(False)
        _legend(axes[0], loc="best")
        figure.tight_layout()
    return figure
