"""Figures of races and schedules, drawn by matplotlib's Agg renderer (no display needed).

* :func:`plot_race` — the landscape's contours, every trajectory, the minima (★ global, ◆ local) and
  the start, next to the loss gap ``f(w) − f*`` against the step on a log scale; the legend reads
  ``name [iterations]`` as in the notes.
* :func:`plot_recorded` — what ``race(..., record=fn)`` read from each optimizer after every step.
* :func:`plot_schedule` / :func:`plot_schedules` — learning rate against step.
* :func:`animate_race` — the race as an animated GIF (matplotlib blitting, frames saved by Pillow).

Figures are :class:`matplotlib.figure.Figure` objects with their own ``FigureCanvasAgg``
(:func:`new_figure`): pyplot is never imported, the process's backend is never switched, no figure
is registered with pyplot, and the house style is applied inside ``matplotlib.rc_context`` only, so
``rcParams`` are as they were afterwards. Every ``save`` goes through :func:`save_figure`, which
writes a temporary file in the target folder and renames it, so a crash never leaves half an image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._io import atomic_write, save_figure
from .lab import RaceResult
from .landscapes import Landscape
from .validation import check_bool, check_callable, check_int, check_positive

__all__ = [
    "save_figure",
    "new_figure",
    "plot_landscape",
    "plot_trajectories",
    "plot_race",
    "plot_losses",
    "plot_recorded",
    "plot_schedule",
    "plot_schedules",
    "animate_race",
    "paced_steps",
    "render_equation",
    "COLORS",
    "LINESTYLES",
]

#: Okabe & Ito's colour-blind-safe palette (black moved last: it is the start marker's colour), then
#: two more distinct hues; past ten optimizers the line style changes (:data:`LINESTYLES`).
COLORS = ["#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#0072B2", "#F0E442", "#882255",
          "#44AA99", "#000000"]
LINESTYLES = ["-", "--", ":", "-."]
_STYLE = {"axes.spines.top": False, "axes.spines.right": False, "font.size": 10, "axes.titlesize": 11}


def new_figure(figsize: tuple[float, float], dpi: float | None = None) -> Figure:
    """An empty figure rendered by its own Agg canvas, outside pyplot (nothing global changes)."""
    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _check_race(result: RaceResult) -> None:
    if not isinstance(result, RaceResult):
        raise ValueError(f"result must be a RaceResult (from lab.race), got {type(result).__name__}")


def _grid(landscape: Landscape, resolution: int = 220) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    (x0, x1), (y0, y1) = landscape.domain[:2]
    xs, ys = np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution)
    grid_x, grid_y = np.meshgrid(xs, ys)
    points = torch.from_numpy(np.stack([grid_x, grid_y], axis=-1))
    with torch.no_grad():
        z = landscape(points).numpy()
    return grid_x, grid_y, z


def plot_landscape(landscape: Landscape, ax: Axes, resolution: int = 220, fast: bool = False) -> None:
    """Filled contours of a 2-D landscape with its minima marked (★ global, ◆ local).

    Levels are quantiles of ``f − min f`` on the grid, so steep and flat regions both show structure.
    ``fast`` draws the fill as an image (for animations, where every frame is redrawn).
    """
    check_int("resolution", resolution, low=2)
    check_bool("fast", fast)
    grid_x, grid_y, z = _grid(landscape, resolution)
    gap = z - z.min()
    levels = np.unique(np.quantile(gap, np.linspace(0, 1, 24) ** 1.6))
    if fast:
        bands = np.digitize(gap, levels)
        ax.imshow(bands, origin="lower", cmap="Blues_r", alpha=0.85, aspect="auto", interpolation="bilinear",
                  extent=(grid_x[0, 0], grid_x[0, -1], grid_y[0, 0], grid_y[-1, 0]))
    else:
        ax.contourf(grid_x, grid_y, gap, levels=levels, cmap="Blues_r", alpha=0.85)
        ax.contour(grid_x, grid_y, gap, levels=levels, colors="white", linewidths=0.5, alpha=0.7)
    best = min(landscape.minimum_values)
    for point, value in zip(landscape.minima, landscape.minimum_values):
        is_global = value <= best + 1e-9
        ax.plot(point[0], point[1], marker="*" if is_global else "D", markersize=15 if is_global else 8,
                color="gold" if is_global else "white", markeredgecolor="black", zorder=6, linestyle="none")
    (x0, x1), (y0, y1) = landscape.domain[:2]
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x" if landscape.name != "least-squares" else "slope a")
    ax.set_ylabel("y" if landscape.name != "least-squares" else "intercept b")
    ax.set_aspect("auto")


def _legend_label(run) -> str:
    return f"{run.label} [{run.iterations}]"


def _style(index: int) -> tuple[str, str]:
    """Colour and line style of the ``index``-th run: ten colours, then the next line style."""
    return COLORS[index % len(COLORS)], LINESTYLES[(index // len(COLORS)) % len(LINESTYLES)]


#: a white outline under every path, so that no colour disappears into the landscape's blues
HALO = [patheffects.Stroke(linewidth=4.2, foreground="white", alpha=0.9), patheffects.Normal()]


def _frame(result: RaceResult) -> tuple[tuple[float, float], tuple[float, float]]:
    """The region worth showing: the paths, the minima and the start, with a margin, inside the domain
    (the whole domain when the paths fill most of it)."""
    (x0, x1), (y0, y1) = result.landscape.domain[:2]
    points = [np.asarray(result.landscape.minima)[:, :2], np.asarray([result.start[:2]])]
    points += [run.trajectory[np.isfinite(run.trajectory).all(1), :2] for run in result.runs]
    allp = np.concatenate([p for p in points if len(p)])
    inside = allp[(allp[:, 0] >= x0) & (allp[:, 0] <= x1) & (allp[:, 1] >= y0) & (allp[:, 1] <= y1)]
    lo, hi = inside.min(0), inside.max(0)
    pad = np.maximum(0.12 * (hi - lo), 0.06 * np.array([x1 - x0, y1 - y0]))
    lo, hi = np.maximum(lo - pad, [x0, y0]), np.minimum(hi + pad, [x1, y1])
    if (hi - lo).prod() > 0.6 * (x1 - x0) * (y1 - y0):
        return (x0, x1), (y0, y1)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def plot_trajectories(result: RaceResult, ax: Axes, markevery: int | None = None) -> None:
    """Every run's path on top of the landscape's contours; the start is a black dot."""
    _check_race(result)
    if markevery is not None:
        check_int("markevery", markevery, low=1)
    plot_landscape(result.landscape, ax)
    for index, run in enumerate(result.runs):
        path = run.trajectory
        color, style = _style(index)
        ax.plot(path[:, 0], path[:, 1], linestyle=style, color=color, linewidth=1.8, alpha=0.95, zorder=4,
                marker="o", markersize=2.5, markevery=markevery or max(1, len(path) // 60),
                label=_legend_label(run), path_effects=HALO)
        ax.plot(path[-1, 0], path[-1, 1], "o", color=color, markersize=7, markeredgecolor="black", zorder=5)
    (fx0, fx1), (fy0, fy1) = _frame(result)
    ax.set_xlim(fx0, fx1)
    ax.set_ylim(fy0, fy1)
    ax.plot(*result.start[:2], "o", color="black", markersize=8, zorder=7)
    ax.annotate("start", result.start[:2], textcoords="offset points", xytext=(6, 6), fontsize=9,
                fontweight="bold")


AXES = {"steps": "step k", "evaluations": "loss-and-gradient evaluations", "seconds": "wall time (s)"}


def plot_losses(result: RaceResult, ax: Axes, axis: str = "steps") -> None:
    """``f(w_k) − f*`` on a log scale (f* = the global minimum's value) against the step ``k``, the number
    of loss-and-gradient evaluations (``axis="evaluations"``) or the wall time (``"seconds"``)."""
    _check_race(result)
    if axis not in AXES:
        raise ValueError(f"axis must be one of {tuple(AXES)}, got {axis!r}")
    best = min(result.landscape.minimum_values)
    floor = 1e-16
    right = 0.0
    for index, run in enumerate(result.runs):
        gap = np.maximum(run.loss - best, floor)
        x = {"steps": np.arange(len(gap)), "evaluations": run.evaluations, "seconds": run.seconds}[axis]
        x = np.arange(len(gap)) if x is None else np.asarray(x)[: len(gap)]
        right = max(right, float(x[-1]) if len(x) else 0.0)
        color, style = _style(index)
        # overlapping curves stay distinguishable: each its own dash pattern and marker phase
        ax.semilogy(x, gap, color=color, linewidth=1.6, linestyle=style if index < len(COLORS) else "--",
                    marker="os^vD<>ph*"[index % 10], markersize=3.5,
                    markevery=(index * 3 % max(1, len(gap) // 8 or 1), max(1, len(gap) // 8)),
                    label=_legend_label(run))
        if run.diverged_at is not None or run.failed_at is not None:
            ax.plot(x[-1], gap[-1], "x", color=color, markersize=10, mew=2)
    ax.set_xlabel(AXES[axis])
    ax.set_ylabel(r"$f(w_k) - f^\ast$ (log scale)")
    ax.set_xlim(0, result.steps if axis == "steps" else max(right, 1e-9))
    ax.grid(True, which="major", alpha=0.3)


def plot_race(result: RaceResult, title: str | None = None, axis: str = "steps") -> Figure:
    """Contours with trajectories (left) and the loss gap on a log scale (right), legend below both.

    ``axis`` sets the loss panel's x axis: ``"steps"``, ``"evaluations"`` or ``"seconds"``.
    """
    _check_race(result)
    with matplotlib.rc_context(_STYLE):
        if result.landscape.dim == 2:
            figure = new_figure((11, 4.6))
            left, right = figure.subplots(1, 2, width_ratios=[1.15, 1])
            plot_trajectories(result, left)
            left.set_title("paths (★ global minimum, ◆ local)")
        else:
            figure = new_figure((7, 4.6))
            right = figure.subplots()
        plot_losses(result, right, axis=axis)
        right.set_title("loss gap to the global minimum")
        handles, labels = right.get_legend_handles_labels()
        legend_rows = -(-len(labels) // 3)
        figure.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), frameon=False,
                      bbox_to_anchor=(0.5, 0.0))
        figure.suptitle(title or f"{result.landscape.name}: {result.landscape.formula}", fontsize=12)
        figure.tight_layout(rect=(0, 0.015 + 0.05 * legend_rows, 1, 1))
    return figure


def plot_recorded(result: RaceResult, ylabel: str, title: str | None = None, log: bool = True) -> Figure:
    """What ``race(..., record=fn)`` read after every step (``Run.recorded``), one line per run.

    The demo draws AdaGrad's and RMSprop's effective learning rates ``η/(√t_k + ε)`` this way.
    """
    _check_race(result)
    check_bool("log", log)
    missing = [run.label for run in result.runs if run.recorded is None]
    if missing:
        raise ValueError(f"result: runs {missing} recorded nothing; race them with record=fn")
    with matplotlib.rc_context(_STYLE):
        figure = new_figure((6.5, 3.2))
        ax = figure.subplots()
        draw = ax.semilogy if log else ax.plot
        for index, run in enumerate(result.runs):
            draw(np.arange(1, len(run.recorded) + 1), run.recorded, color=COLORS[index % len(COLORS)],
                 linewidth=2, label=run.label)
        ax.set_xlabel("step k")
        ax.set_ylabel(ylabel)
        if title is not None:
            ax.set_title(title)
        ax.legend(frameon=False)
        ax.grid(True, alpha=0.3)
        figure.tight_layout()
    return figure


def plot_schedule(schedule: Callable[[int], float], steps: int, ax: Axes | None = None,
                  label: str | None = None, color: str = COLORS[0]) -> Figure:
    """The learning rate ``schedule(t)`` for ``t = 0 … steps − 1``."""
    check_callable("schedule", schedule, "schedule(t) -> float")
    check_int("steps", steps, low=1)
    with matplotlib.rc_context(_STYLE):
        if ax is None:
            figure = new_figure((7, 3.6))
            ax = figure.subplots()
        else:
            figure = ax.figure
        t = np.arange(steps)
        lr = np.array([float(schedule(int(k))) for k in t])
        ax.plot(t, lr, color=color, linewidth=2)
        decades = lr.min() > 0 and lr.max() / lr.min() >= 100  # a schedule that decays by decades
        ax.set_xlabel("step t")
        ax.set_xlim(0, steps - 1)
        if decades:
            ax.set_yscale("log")
            ax.set_ylabel("learning rate η(t) (log)")
        else:
            ax.fill_between(t, lr, alpha=0.12, color=color)
            ax.set_ylabel("learning rate η(t)")
            ax.set_ylim(bottom=min(0.0, lr.min()))
        ax.set_title(label or repr(schedule), fontsize=10)
        ax.grid(True, alpha=0.3)
    return figure


def plot_schedules(schedules: Mapping[str, Callable[[int], float]], steps: int, columns: int = 3) -> Figure:
    """A gallery: one small panel per schedule."""
    if not isinstance(schedules, Mapping) or not schedules:
        raise ValueError(f"schedules must be a non-empty mapping label -> schedule, got {schedules!r}")
    for label, schedule in schedules.items():
        check_callable(f"schedules[{label!r}]", schedule, "schedule(t) -> float")
    check_int("steps", steps, low=1)
    check_int("columns", columns, low=1)
    count = len(schedules)
    rows = -(-count // columns)
    with matplotlib.rc_context(_STYLE):
        figure = new_figure((4.2 * columns, 2.9 * rows))
        axes = figure.subplots(rows, columns, squeeze=False)
        for index, (label, schedule) in enumerate(schedules.items()):
            color = COLORS[index % len(COLORS)]
            plot_schedule(schedule, steps, ax=axes.flat[index], label=label, color=color)
        for ax in axes.flat[count:]:
            ax.set_visible(False)
        figure.tight_layout()
    return figure


def paced_steps(result: RaceResult, frames: int) -> np.ndarray:
    """The steps to show in ``frames`` frames, spaced so that every frame shows the same amount of motion
    (summed over the runs, in units of the plotting box): early steps, where paths move fast, get many
    frames, and the animation does not freeze once the quick runs have settled. Always starts at 0 and
    ends at the last step."""
    (x0, x1), (y0, y1) = result.landscape.domain[:2]
    scale = np.array([x1 - x0, y1 - y0])
    motion = np.zeros(result.steps + 1)
    for run in result.runs:
        path = run.trajectory[:, :2] / scale
        step = np.linalg.norm(np.diff(path, axis=0), axis=1)
        step = np.where(np.isfinite(step), np.minimum(step, 1.0), 0.0)
        motion[1: len(step) + 1] += step
    total = np.cumsum(motion)
    if total[-1] <= 0:
        return np.unique(np.linspace(0, result.steps, frames).astype(int))
    targets = np.linspace(0, total[-1], frames)
    chosen = np.searchsorted(total, targets, side="left")
    return np.unique(np.concatenate([[0], np.minimum(chosen, result.steps), [result.steps]]))


def animate_race(result: RaceResult, path: str | os.PathLike, frames: int = 50, fps: int = 12) -> Path:
    """Write the race as an animated GIF: every path growing step by step over the contours.

    The contours, axes and legend are drawn once; each frame only redraws the paths on top of that
    background (matplotlib blitting) and Pillow assembles the frames. Frames are paced by the paths'
    motion (:func:`paced_steps`), and each shows its step.
    """
    from PIL import Image

    _check_race(result)
    check_int("frames", frames, low=1)
    check_positive("fps", fps)
    if result.landscape.dim != 2:
        raise ValueError(f"gif: only 2-D landscapes can be animated, {result.landscape.name} has "
                         f"{result.landscape.dim} dimensions")
    with matplotlib.rc_context(_STYLE):
        figure = new_figure((6, 4.8), dpi=80)
        ax = figure.subplots()
        plot_landscape(result.landscape, ax, resolution=160, fast=True)
        ax.plot(*result.start[:2], "o", color="black", markersize=7, zorder=7)
        artists = []
        for index, run in enumerate(result.runs):
            color, style = _style(index)
            (line,) = ax.plot([], [], linestyle=style, color=color, linewidth=1.8, label=_legend_label(run),
                              zorder=4, path_effects=HALO)
            (head,) = ax.plot([], [], "o", color=color, markeredgecolor="black", markersize=7, zorder=5)
            artists.append((run, line, head))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False, fontsize=8)
        ax.set_title(f"{result.landscape.name}")
        clock = ax.text(0.02, 0.96, "", transform=ax.transAxes, fontsize=10, fontweight="bold", va="top")
        figure.tight_layout()
        figure.canvas.draw()
        background = figure.canvas.copy_from_bbox(figure.bbox)
        images = []
        for k in paced_steps(result, frames):
            figure.canvas.restore_region(background)
            for run, line, head in artists:
                upto = min(int(k), len(run.trajectory) - 1)
                line.set_data(run.trajectory[: upto + 1, 0], run.trajectory[: upto + 1, 1])
                head.set_data([run.trajectory[upto, 0]], [run.trajectory[upto, 1]])
                ax.draw_artist(line)
                ax.draw_artist(head)
            clock.set_text(f"step {k}")
            ax.draw_artist(clock)
            figure.canvas.blit(figure.bbox)
            rgba = np.asarray(figure.canvas.buffer_rgba())
            frame = Image.fromarray(rgba[..., :3].copy())
            images.append(frame.quantize(256, Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    duration = int(1000 / fps)
    durations = [duration] * (len(images) - 1) + [duration * 12]  # linger on the final frame
    return atomic_write(Path(path), lambda tmp: images[0].save(
        tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0))


def render_equation(latex: str, path: str | os.PathLike | None = None, fontsize: int = 15) -> str:
    """Render a mathtext equation (``$...$``) to an SVG string, and to ``path`` if given."""
    if not isinstance(latex, str) or not latex:
        raise ValueError(f"latex must be a non-empty string such as '$x^2$', got {latex!r}")
    check_positive("fontsize", fontsize)
    figure = new_figure((0.01, 0.01))
    figure.text(0, 0, latex, fontsize=fontsize, color="#1b2a3a")
    buffer = io.StringIO()
    # no date and fixed glyph ids: the same equation gives the same bytes (reproducible pages)
    with matplotlib.rc_context({"svg.hashsalt": "descentlab"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.04, transparent=True,
                       metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    if path is not None:
        atomic_write(Path(path), lambda tmp: Path(tmp).write_text(svg))
    return svg

