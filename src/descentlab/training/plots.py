"""Figures of the training-practice tools, drawn on ``matplotlib.figure.Figure`` + Agg.

Nothing here imports pyplot or switches matplotlib's backend; every figure is written atomically
(a temporary file in the target folder, then a rename) by :func:`save`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._io import atomic_write

if TYPE_CHECKING:
    from .early_stopping import EarlyStopping
    from .loop import History
    from .range_test import RangeTest

__all__ = [
    "save",
    "plot_range_test",
    "plot_early_stopping",
    "plot_tbptt",
    "plot_batch_balance",
    "plot_gradient_noise",
    "plot_history",
]

BLUE, ORANGE, GREEN, RED, PURPLE, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#7f7f7f"
RULE_MARKERS = {
    "valley": ("v", GREEN),
    "minimum/10": ("s", ORANGE),
    "steepest": ("^", PURPLE),
    "combined": ("o", RED),
}


def new_figure(width: float = 6.4, height: float = 4.0, dpi: int = 110) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) through a temporary file and a rename."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, bbox_inches="tight"))


def _finish(fig: Figure, path) -> Figure:
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig


def plot_range_test(result: RangeTest, path=None, *, title: str | None = None) -> Figure:
    """Loss against the learning rate (log scale): raw losses (faint), the smoothed curve (a min–max band
    over seeds when there are several), a marker per rule and the 2/λ_max line when known."""
    from .range_test import RULES

    fig = new_figure()
    ax = fig.add_subplot()
    first = result.runs[0]
    lrs = np.asarray(first.lrs)
    ax.plot(lrs, first.losses, color=BLUE, alpha=0.25, lw=0.8, label="raw loss")
    if len(result.runs) > 1:
        n = min(len(run.smoothed) for run in result.runs)
        stack = np.array([run.smoothed[:n] for run in result.runs])
        ax.fill_between(
            lrs[:n],
            np.nanmin(stack, 0),
            np.nanmax(stack, 0),
            color=BLUE,
            alpha=0.2,
            label=f"smoothed, band over {len(result.runs)} seeds",
        )
        ax.plot(lrs[:n], np.nanmedian(stack, 0), color=BLUE, lw=1.6, label="smoothed (median)")
    else:
        ax.plot(lrs, first.smoothed, color=BLUE, lw=1.6, label=f"smoothed (β = {result.smooth:g})")
    finite = np.asarray([v for v in first.smoothed if np.isfinite(v)])
    raw = np.asarray(first.losses[: int(np.argmin(finite)) + 1])
    low = min(float(finite.min()), float(raw[np.isfinite(raw)].min()))
    high = float(np.asarray(first.smoothed)[: max(2, len(finite) // 10)].max())
    for rule in RULES:
        lr = result.suggest(rule)
        y = float(np.interp(np.log10(lr), np.log10(lrs[: len(finite)]), finite))
        marker, color = RULE_MARKERS[rule]
        ax.plot([lr], [y], marker=marker, color=color, ms=8, ls="none", zorder=5, label=f"{rule}: {lr:.2g}")
    if result.curvature_lr is not None:
        ax.axvline(
            result.curvature_lr, color=GREY, ls="--", lw=1.2, label=f"2/λ_max = {result.curvature_lr:.2g}"
        )
    ax.set_xscale("log")
    span = max(high - low, 1e-12)
    ax.set_ylim(low - 0.1 * span, high + 0.6 * span)
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("training loss")
    ax.set_title(title or "Learning-rate range test (Smith 2017)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left")
    return _finish(fig, path)


def plot_early_stopping(
    train_loss: Sequence[float],
    val_loss: Sequence[float],
    stopper: EarlyStopping,
    path=None,
    *,
    title: str | None = None,
    extra: Mapping[str, Sequence[float]] | None = None,
) -> Figure:
    """Training and validation loss per epoch, the best epoch and the stop marked."""
    fig = new_figure()
    ax = fig.add_subplot()
    epochs = np.arange(len(train_loss))
    ax.plot(epochs, train_loss, color=BLUE, label="training loss")
    ax.plot(epochs[: len(val_loss)], val_loss, color=ORANGE, label="validation loss")
    for name, values in (extra or {}).items():
        ax.plot(np.arange(len(values)), values, color=GREY, ls=":", label=name)
    if stopper.best_step is not None:
        ax.axvline(
            stopper.best_step,
            color=GREEN,
            ls="--",
            lw=1.2,
            label=f"best (epoch {stopper.best_step}): {stopper.best:.3f}, restored",
        )
    if stopper.stopped_step is not None:
        ax.axvline(
            stopper.stopped_step,
            color=RED,
            ls="--",
            lw=1.2,
            label=f"stopped (epoch {stopper.stopped_step}, patience {stopper.patience})",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title or "Early stopping", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_tbptt(
    ks: Sequence[int],
    memory: Sequence[float],
    errors: Sequence[float],
    sequence_length: int,
    path=None,
    *,
    title: str | None = None,
) -> Figure:
    """Two panels against the truncation length k: memory saved for backward (relative to full BPTT)
    and the relative gradient error ‖g_k − g_T‖ / ‖g_T‖."""
    fig = new_figure(9.0, 3.6)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ax1.plot(ks, memory, marker="o", color=BLUE, label="measured (saved tensors)")
    ax1.plot(ks, [k / sequence_length for k in ks], color=GREY, ls="--", label="k / T")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("truncation length k")
    ax1.set_ylabel("peak memory saved for backward / full BPTT")
    ax1.grid(alpha=0.3, which="both")
    ax1.legend(fontsize=8)
    positive = [(k, e) for k, e in zip(ks, errors) if e > 0]
    ax2.plot([k for k, _ in positive], [e for _, e in positive], marker="o", color=ORANGE)
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel("truncation length k")
    ax2.set_ylabel("‖g_k − g_full‖ / ‖g_full‖")
    ax2.grid(alpha=0.3, which="both")
    fig.suptitle(title or f"Truncated BPTT on a sequence of length T = {sequence_length}", fontsize=10)
    return _finish(fig, path)


def plot_batch_balance(
    counts: Mapping[str, np.ndarray], path=None, *, shown: int | None = None, title: str | None = None
) -> Figure:
    """Per-class counts in every batch, one panel per sampler: ``counts[name]`` is ``[batches, classes]``.
    The panels show the first ``shown`` batches on one colour scale; the share of batches missing a
    class in each title is over all of them."""
    fig = new_figure(4.2 * len(counts), 3.6)
    vmax = max(1, max(int(np.asarray(t).max()) for t in counts.values()))
    for i, (name, table) in enumerate(counts.items()):
        ax = fig.add_subplot(1, len(counts), i + 1)
        table = np.asarray(table)
        image = ax.imshow(
            table[:shown].T, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0, vmax=vmax
        )
        missing = float((table == 0).any(axis=1).mean())
        ax.set_title(f"{name}\n{100 * missing:.0f} % of {len(table)} batches miss a class", fontsize=9)
        ax.set_xlabel("batch")
        ax.set_ylabel("class")
        fig.colorbar(image, ax=ax, label="examples in the batch")
    fig.suptitle(title or "Balanced mini-batches (notes 000)", fontsize=10)
    return _finish(fig, path)


def plot_gradient_noise(
    batch_sizes: Sequence[int],
    measured: Sequence[float],
    trace_cov: float,
    n: int,
    path=None,
    *,
    title: str | None = None,
) -> Figure:
    """E‖g_B − ḡ‖² against B (log–log): Monte-Carlo points, tr Σ/B · (N − B)/(N − 1) and the 1/B line."""
    fig = new_figure()
    ax = fig.add_subplot()
    b = np.asarray(batch_sizes, dtype=float)
    dense = np.geomspace(b.min(), b.max(), 100)
    ax.plot(dense, trace_cov / dense, color=GREY, ls="--", label="tr Σ / B (with replacement)")
    ax.plot(
        dense,
        trace_cov / dense * (n - dense) / (n - 1),
        color=BLUE,
        label="tr Σ / B · (N − B)/(N − 1) (without replacement)",
    )
    ax.plot(b, measured, "o", color=ORANGE, label="measured (Monte Carlo)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("E‖g_B − ḡ‖²")
    ax.set_title(title or f"Gradient noise against batch size (N = {n})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_history(
    history: History,
    path=None,
    *,
    metric: str | None = None,
    metric_label: str | None = None,
    title: str | None = None,
) -> Figure:
    """A :func:`~descentlab.training.fit` run: the training loss of every step (faint) and its mean per
    epoch, the validation loss per epoch, the best epoch and the stop of early stopping; with
    ``metric`` (e.g. ``"val_acc"``) a second panel draws it per epoch. The x axis counts the epochs
    completed, so epoch ``i`` of the history (counted from 0) ends at ``i + 1``."""
    fig = new_figure(9.0 if metric else 6.4, 3.8)
    ax = fig.add_subplot(1, 2, 1) if metric else fig.add_subplot()
    per_epoch = history.epochs[0]["step"] if history.epochs and history.epochs[0]["step"] else 1
    steps = np.asarray(history.steps, dtype=float) / per_epoch
    ax.plot(steps, history.loss, color=BLUE, alpha=0.25, lw=0.7, label="training loss (each step)")
    ends = np.asarray([e["step"] for e in history.epochs], dtype=float) / per_epoch
    ax.plot(ends, history.metric("train_loss"), color=BLUE, marker=".", label="training loss (epoch mean)")
    val = history.metric("val_loss")
    if val:
        ax.plot(ends[: len(val)], val, color=ORANGE, marker=".", label="validation loss")
    if history.best_epoch is not None and history.best_epoch < len(ends):
        best = history.epochs[history.best_epoch]
        value = f": {best['val_loss']:.3f}" if "val_loss" in best else ""
        ax.axvline(ends[history.best_epoch], color=GREEN, ls="--", lw=1.2,
                   label=f"best after {history.best_epoch + 1} epochs{value} (restored)")
    if history.stopped_epoch is not None:
        ax.axvline(ends[history.stopped_epoch], color=RED, ls="--", lw=1.2,
                   label=f"early stopping after {history.stopped_epoch + 1} epochs")
    drawn = np.asarray([v for v in (*history.loss, *val) if np.isfinite(v)])
    if len(drawn) and drawn.min() > 0 and drawn.max() / drawn.min() > 100:
        ax.set_yscale("log")  # losses over several decades: the gap between train and val stays visible
    ax.set_xlabel("epochs completed")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if metric:
        ax2 = fig.add_subplot(1, 2, 2)
        values = history.metric(metric)
        ax2.plot(ends[: len(values)], values, color=PURPLE, marker=".")
        ax2.set_xlabel("epochs completed")
        ax2.set_ylabel(metric_label or metric)
        ax2.grid(alpha=0.3)
    fig.suptitle(title or "Training run", fontsize=10)
    return _finish(fig, path)
