"""The six-panel dashboard of a watched run (matplotlib ``Figure`` + ``FigureCanvasAgg``, no pyplot).

1. training and validation loss, every flag marked at its step;
2. per-layer gradient norm as a layer × step heat map, log colour (vanishing gradients show as a
   vertical gradient of colour: dark first layers, bright last ones);
3. update/parameter ratio ‖Δw‖/‖w‖ per layer, with the healthy band around 1e-3 and the warning
   thresholds;
4. dead (ReLU) or saturated (tanh, sigmoid) fraction per activation layer × step, cells above the
   threshold marked;
5. the effective sharpness η·λ_max against the optimizer's stability bound;
6. the learning rate of every step, and the momentum (β or β₁) when the optimizer has one.

The file is written atomically (a temporary file, then one rename).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure

from .._io import atomic_write

if TYPE_CHECKING:
    from .monitor import Monitor

__all__ = ["plot_dashboard"]

_LABEL_COLORS = {
    "vanishing": "#1f77b4",
    "exploding": "#d62728",
    "saturated": "#ff7f0e",
    "dead-relu": "#7f7f7f",
    "update-ratio-high": "#bcbd22",
    "update-ratio-low": "#17becf",
    "unstable-lr": "#9467bd",
    "plateau:saddle": "#8c564b",
    "plateau:saturation": "#e377c2",
    "plateau:lr-too-small": "#2ca02c",
    "converged": "#006400",
    "overfitting": "#000000",
}
_FLOOR = 1e-12  # zeros on log axes are drawn here and said so


def _layer_ticks(ax, names: list[str]) -> None:
    n = len(names)
    stride = max(1, math.ceil(n / 20))
    ticks = list(range(0, n, stride))
    ax.set_yticks(ticks)
    ax.set_yticklabels([names[i] for i in ticks], fontsize=7)


def _steps_extent(steps: list[int]) -> np.ndarray:
    s = np.asarray(steps, dtype=float)
    if len(s) == 1:
        return np.array([s[0] - 0.5, s[0] + 0.5])
    mid = (s[1:] + s[:-1]) / 2
    return np.concatenate([[s[0] - (mid[0] - s[0])], mid, [s[-1] + (s[-1] - mid[-1])]])


def _mark_flags(ax, flags, labels_only: set[str] | None = None) -> None:
    for flag in flags:
        if flag.step is None or (labels_only is not None and flag.label not in labels_only):
            continue
        ax.axvline(flag.step, color=_LABEL_COLORS.get(flag.label, "k"), lw=1.2, ls=":", alpha=0.9)


def _empty(ax, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.35", wrap=True
    )
    ax.set_xticks([])
    ax.set_yticks([])


def _loss_panel(ax, monitor: Monitor) -> None:
    h = monitor.history
    steps, train = h.series("loss")
    vsteps, val = h.series("val_loss")
    if not steps and not vsteps:
        _empty(ax, "no loss logged (call monitor.log(loss=...))")
        ax.set_title("loss")
        return
    if steps:
        ax.plot(steps, train, color="#1f77b4", lw=1.4, label="train loss")
    if vsteps:
        ax.plot(vsteps, val, "o-", color="#ff7f0e", ms=3, lw=1.0, label="validation loss")
    finite = [v for v in train + val if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")
    seen = set()
    for flag in monitor.flags:
        if flag.step is None:
            continue
        label = None if flag.label in seen else f"{flag.label} (step {flag.step})"
        seen.add(flag.label)
        ax.axvline(flag.step, color=_LABEL_COLORS.get(flag.label, "k"), lw=1.4, ls=":", label=label)
    if monitor.trivial_loss is not None:
        ax.axhline(monitor.trivial_loss, color="0.5", lw=0.8, ls="--", label="trivial predictor")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title("loss, with the flags raised")
    ax.legend(fontsize=7, loc="best")


def _gradient_panel(fig, ax, monitor: Monitor) -> None:
    h = monitor.history
    steps, values = h.layer_series("grad_norm")
    ax.set_title("gradient norm ‖∂L/∂w‖ per layer (log colour)")
    if not steps:
        _empty(ax, "no observed step yet")
        return
    finite = np.isfinite(values)
    data = np.where(finite & (values > 0), values, np.nan)
    positive = data[np.isfinite(data)]
    if positive.size == 0:
        _empty(ax, "every gradient is zero or non-finite")
        return
    low, high = positive.min(), positive.max()
    if high <= low:
        low, high = low / 10, high * 10
    cmap = _cmap("viridis")
    cmap.set_bad("#d0d0d0")  # exactly zero
    x_edges, y_edges = _steps_extent(steps), np.arange(len(h.layers) + 1) - 0.5
    mesh = ax.pcolormesh(
        x_edges, y_edges, np.ma.masked_invalid(data), norm=LogNorm(low, high), cmap=cmap, shading="flat"
    )
    notes = []
    if (~finite).any():
        ax.pcolormesh(
            x_edges,
            y_edges,
            np.ma.masked_where(finite, np.ones_like(values)),
            cmap=ListedColormap(["#e41a1c"]),
            shading="flat",
        )
        notes.append("red: NaN or inf")
    if (finite & (values == 0)).any():
        notes.append("grey: exactly zero")
    ax.set_ylim(len(h.layers) - 0.5, -0.5)  # first layer on top
    _layer_ticks(ax, h.layers)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("layer (input at the top)")
    fig.colorbar(mesh, ax=ax, label="gradient norm")
    if notes:
        ax.text(1.0, -0.16, ", ".join(notes), transform=ax.transAxes, ha="right", fontsize=7, color="0.2")
    _mark_flags(ax, monitor.flags, {"vanishing", "exploding"})


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name].copy()


def _update_panel(ax, monitor: Monitor) -> None:
    t = monitor.thresholds
    h = monitor.history
    steps, values = h.layer_series("update_ratio")
    ax.set_title("update / parameter ratio ‖Δw‖/‖w‖ per layer")
    if not steps:
        _empty(ax, "no observed step yet")
        return
    ax.axhspan(1e-4, 1e-2, color="#2ca02c", alpha=0.08)
    ax.axhline(1e-3, color="#2ca02c", lw=1.0, label="healthy ≈ 1e-3")
    ax.axhline(t.update_ratio_high, color="#bcbd22", lw=1.0, ls="--", label=f"high > {t.update_ratio_high:g}")
    ax.axhline(t.update_ratio_low, color="#17becf", lw=1.0, ls="--", label=f"low < {t.update_ratio_low:g}")
    cmap = _cmap("viridis")
    n = len(h.layers)
    clipped = False
    for i, name in enumerate(h.layers):
        row = values[i]
        clipped |= bool((row[np.isfinite(row)] <= _FLOOR).any())
        ax.plot(
            steps,
            np.clip(row, _FLOOR, None),
            color=cmap(i / max(n - 1, 1)),
            lw=1.0,
            label=name if n <= 6 else None,
        )
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("‖Δw‖ / ‖w‖")
    note = f"colour: layer depth (first {h.layers[0]}, last {h.layers[-1]})" if n > 6 else ""
    if clipped:
        note += ("; " if note else "") + f"zeros drawn at {_FLOOR:g}"
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=7, color="0.3")
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    _mark_flags(ax, monitor.flags, {"update-ratio-high", "update-ratio-low"})


def _activation_panel(fig, ax, monitor: Monitor) -> None:
    t = monitor.thresholds
    h = monitor.history
    ax.set_title("dead (ReLU) / saturated (tanh, sigmoid) fraction per layer")
    if not h.activation_layers:
        _empty(ax, "no ReLU, tanh or sigmoid module watched")
        return
    dsteps, dead = h.layer_series("dead")
    if not dsteps:
        _empty(
            ax,
            "no activation statistics: no forward hook fired at the observed steps\n"
            "(a torch.compile'd model ignores hooks added after compilation: pass probe=)",
        )
        return
    _, saturated = h.layer_series("saturated")
    kinds = h.activation_kinds
    data = np.array([dead[i] if k == "relu" else saturated[i] for i, k in enumerate(kinds)])
    bounds = np.array([t.dead_fraction if k == "relu" else t.saturated_fraction for k in kinds])
    mesh = ax.pcolormesh(
        _steps_extent(dsteps),
        np.arange(len(kinds) + 1) - 0.5,
        np.ma.masked_invalid(data),
        norm=Normalize(0, 1),
        cmap=_cmap("magma_r"),
        shading="flat",
    )
    over = np.argwhere(np.nan_to_num(data) > bounds[:, None])
    if over.size:
        ax.scatter(
            [dsteps[j] for _, j in over],
            [i for i, _ in over],
            marker="s",
            s=22,
            facecolors="none",
            edgecolors="#00c8ff",
            lw=1.2,
            label="above threshold",
        )
        ax.legend(fontsize=7, loc="upper right")
    ax.set_ylim(len(kinds) - 0.5, -0.5)
    _layer_ticks(ax, [f"{n} ({k})" for n, k in zip(h.activation_layers, kinds)])
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("activation layer")
    fig.colorbar(
        mesh, ax=ax, label=f"fraction (dead > {t.dead_fraction:g}, saturated > {t.saturated_fraction:g})"
    )


def _sharpness_panel(ax, monitor: Monitor) -> None:
    h = monitor.history
    steps, values = h.series("sharpness")
    ax.set_title("effective sharpness η·λ_max vs the stability bound")
    pairs = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
    if not pairs:
        lsteps, lam = h.series("lambda_max")
        if lsteps:
            ax.plot(lsteps, lam, "o-", ms=3, color="#9467bd", label="λ_max (no bound for this optimizer)")
            ax.set_xlabel("optimizer step")
            ax.set_ylabel("λ_max")
            ax.legend(fontsize=7)
            return
        _empty(ax, "curvature not estimated\n(watch(..., probe=Probe(x, y, loss_fn), curvature_every=k))")
        return
    s, v = zip(*pairs)
    ax.plot(s, v, "o-", ms=3, color="#9467bd", label="η·λ_max (effective)")
    bsteps, bounds = h.series("sharpness_bound")
    if bounds:
        bound = bounds[-1]
        ax.axhline(bound, color="#d62728", ls="--", lw=1.2, label=f"stability bound {bound:.3g}")
        top = max(max(v), bound) * 3
        ax.axhspan(bound, top, color="#d62728", alpha=0.06)
        ax.text(
            0.01,
            0.97,
            "locally unstable step (not necessarily divergence)",
            transform=ax.transAxes,
            va="top",
            fontsize=7,
            color="#d62728",
        )
    if min(v) > 0:
        ax.set_yscale("log")
        if bounds:
            ax.set_ylim(min(min(v), bounds[-1]) / 3, max(max(v), bounds[-1]) * 3)
    lsteps, lam_min = h.series("lambda_min")
    last = [
        (s_, v_, h[s_].get("lambda_max", math.nan)) for s_, v_ in zip(lsteps, lam_min) if math.isfinite(v_)
    ]
    if last:
        s_, v_, top_ = last[-1]
        negative = math.isfinite(top_) and v_ < -monitor.thresholds.negative_curvature * abs(top_)
        ax.text(
            0.01,
            0.03,
            f"λ_min = {v_:.3g} at step {s_}" + (" (negative curvature)" if negative else ""),
            transform=ax.transAxes,
            va="bottom",
            fontsize=7,
            color="0.25",
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("η·λ_max")
    ax.legend(fontsize=7, loc="lower right")
    _mark_flags(ax, monitor.flags, {"unstable-lr"})


def _lr_panel(ax, monitor: Monitor) -> None:
    h = monitor.history
    ax.set_title("learning rate (and momentum)")
    if not h.lr:
        _empty(ax, "no optimizer step yet")
        return
    ax.plot(range(len(h.lr)), h.lr, color="#1f77b4", lw=1.4, label="learning rate (group 0)")
    positive = [v for v in h.lr if v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, max(h.lr) * 1.15 if max(h.lr) > 0 else 1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    msteps, momentum = h.series("momentum")
    if momentum:
        twin = ax.twinx()
        twin.plot(msteps, momentum, "s", ms=3, color="#ff7f0e", label="momentum β / β₁")
        twin.set_ylabel("β")
        twin.set_ylim(-0.05, 1.05)
        twin.legend(fontsize=7, loc="lower right")
    ax.legend(fontsize=7, loc="upper right")


def plot_dashboard(
    monitor: Monitor, path: str | os.PathLike, *, title: str | None = None, dpi: int = 110
) -> Path:
    """Draw the six panels of ``monitor`` and write them to ``path`` (format from the suffix)."""
    fig = Figure(figsize=(13, 12))
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 2, gridspec_kw={"hspace": 0.38, "wspace": 0.28})
    fig.subplots_adjust(left=0.07, right=0.96, top=0.93, bottom=0.05)
    _loss_panel(axes[0, 0], monitor)
    _gradient_panel(fig, axes[0, 1], monitor)
    _update_panel(axes[1, 0], monitor)
    _activation_panel(fig, axes[1, 1], monitor)
    _sharpness_panel(axes[2, 0], monitor)
    _lr_panel(axes[2, 1], monitor)
    labels = list(dict.fromkeys(f.label for f in monitor.flags))
    head = title or f"{type(monitor.model).__name__} trained by {type(monitor.optimizer).__name__}"
    fig.suptitle(
        f"{head} — {monitor.steps} steps, " + (f"flags: {', '.join(labels)}" if labels else "no flag raised"),
        fontsize=12,
    )
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=suffix, dpi=dpi))
