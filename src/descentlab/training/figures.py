"""The training-practice figures of the demo report, with the findings measured while drawing them.

:func:`training_practice_figures` runs five small experiments on CPU (about half a minute in all, on
scikit-learn's digits and a random RNN) and writes one PNG each; the returned dict holds the paths,
the measured numbers and a one-sentence caption built from those numbers (nothing is hard-coded).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, WeightedRandomSampler

from .._io import writable_directory
from ._state import rng_state, set_rng_state
from .early_stopping import EarlyStopping
from .loop import accuracy, fit
from .noise import batch_gradient_variance, gradient_noise
from .plots import plot_batch_balance, plot_early_stopping, plot_gradient_noise, plot_range_test, plot_tbptt
from .range_test import DEFAULT_RULE, lr_range_test
from .samplers import StratifiedBatchSampler, class_weights
from .tbptt import SavedTensorMemory, tbptt

__all__ = ["training_practice_figures"]


def _range_test(directory: Path) -> dict[str, Any]:
    from ._problems import batches, digits, mlp

    x, y, _, _ = digits()
    loss_fn = nn.functional.cross_entropy
    model = mlp([64, 64, 10], seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    result = lr_range_test(
        model, opt, loss_fn, batches(x, y, 64, seed=0, epochs=20), seeds=3, probe=(x[:512], y[:512])
    )
    suggested = result.suggest()
    # the check: a quarter-decade grid of fixed rates, training loss after 150 steps (one seed)
    grid = [10 ** (-3 + 0.25 * i) for i in range(15)]
    finals = []
    for lr in grid:
        net = mlp([64, 64, 10], seed=0)
        sgd = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
        for inputs, targets in batches(x, y, 64, seed=0, epochs=20)[:150]:
            sgd.zero_grad()
            loss_fn(net(inputs), targets).backward()
            sgd.step()
        with torch.no_grad():
            value = float(loss_fn(net(x), y))
        finals.append(value if math.isfinite(value) else math.inf)
    best = grid[min(range(len(grid)), key=finals.__getitem__)]
    path = directory / "range_test.png"
    fig = plot_range_test(result, title="Range test, digits MLP 64-64-10, SGD + momentum 0.9 (3 seeds)")
    ax = fig.axes[0]
    ax.axvline(best, color="#2ca02c", lw=3, alpha=0.35, label=f"grid best (150 steps): {best:.2g}")
    ax.legend(fontsize=7, loc="upper left")
    from .plots import save

    save(fig, path)
    curvature = result.curvature_lr
    caption = (
        f"The {DEFAULT_RULE!r} rule suggests η = {suggested:.2g} for SGD + momentum on digits, "
        f"{suggested / best:.2f}× the best fixed rate {best:.2g} of a quarter-decade grid; "
        f"the curvature limit 2/λ_max = {curvature:.2g} lies "
        f"{math.log10(curvature / suggested):.1f} decades above."
    )
    return {
        "path": str(path),
        "suggested_lr": suggested,
        "rule": DEFAULT_RULE,
        "grid_best_lr": best,
        "ratio": suggested / best,
        "curvature_lr": curvature,
        "lambda_max": result.lambda_max,
        "suggestions": result.suggestions(),
        "caption": caption,
    }


def _early_stopping(directory: Path) -> dict[str, Any]:
    from ._problems import batches, digits, mlp

    x, y, xv, yv = digits(200)
    g = torch.Generator().manual_seed(1)
    noisy = y.clone()
    flip = torch.rand(len(y), generator=g) < 0.3
    noisy[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=g)
    model = mlp([64, 256, 256, 10], seed=0)
    stopper = EarlyStopping(patience=10)
    history = fit(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-3),
        batches(x, noisy, 20, seed=0),
        epochs=200,
        loss_fn=nn.functional.cross_entropy,
        val=[(xv[:300], yv[:300])],
        metrics={"acc": accuracy},
        early_stopping=stopper,
        progress=False,
    )
    path = directory / "early_stopping.png"
    val_loss, train_loss = history.metric("val_loss"), history.metric("train_loss")
    plot_early_stopping(
        train_loss,
        val_loss,
        stopper,
        path,
        title="Early stopping, 200 digits with 30 % label noise, MLP 64-256-256-10, Adam",
    )
    best, stop = stopper.best_step, stopper.stopped_step
    caption = (
        f"With 30 % noisy labels the validation loss bottoms out at epoch {best} ({val_loss[best]:.3f}) and "
        f"has risen to {val_loss[stop]:.3f} when patience {stopper.patience} stops the run at epoch {stop}, "
        f"while the training loss kept falling ({train_loss[best]:.3f} → {train_loss[stop]:.3f}); "
        f"the epoch-{best} weights are restored."
    )
    return {
        "path": str(path),
        "best_epoch": best,
        "stopped_epoch": stop,
        "best_val_loss": val_loss[best],
        "val_loss_at_stop": val_loss[stop],
        "train_loss_at_best": train_loss[best],
        "train_loss_at_stop": train_loss[stop],
        "caption": caption,
    }


def tbptt_measurements(ks: list[int] | None = None, T: int = 64) -> dict[str, Any]:
    """Memory held for backward and gradient error of truncated BPTT against k, on a random RNN
    (``nn.RNN(8, 32)``, a linear read-out, MSE to random targets, batch 4, sequence length T)."""
    ks = ks or [1, 2, 4, 8, 16, 32, T]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        rnn, head = nn.RNN(8, 32, batch_first=True), nn.Linear(32, 1)
        x, y = torch.randn(4, T, 8), torch.randn(4, T, 1)
    params = list(rnn.parameters()) + list(head.parameters())

    def step(chunk, hidden):
        inputs, targets = chunk
        out, hidden = rnn(inputs, hidden)
        return (head(out) - targets).pow(2).sum() / y.numel(), hidden

    def run(k: int) -> tuple[torch.Tensor, int]:
        for p in params:
            p.grad = None
        with SavedTensorMemory() as memory:
            tbptt(step, (x, y), k)
        return torch.cat([p.grad.reshape(-1) for p in params]), memory.peak

    full, full_memory = run(T)
    memory, errors = [], []
    for k in ks:
        g, peak = run(k)
        memory.append(peak / full_memory)
        errors.append(float((g - full).norm() / full.norm()))
    return {"ks": ks, "T": T, "memory_ratio": memory, "gradient_error": errors, "full_bytes": full_memory}


def _tbptt(directory: Path) -> dict[str, Any]:
    found = tbptt_measurements()
    path = directory / "tbptt.png"
    plot_tbptt(
        found["ks"],
        found["memory_ratio"],
        found["gradient_error"],
        found["T"],
        path,
        title=f"Truncated BPTT, nn.RNN(8, 32), T = {found['T']}",
    )
    ks, memory, errors = found["ks"], found["memory_ratio"], found["gradient_error"]
    quarter = ks.index(found["T"] // 4)
    found.update(
        path=str(path),
        caption=(
            f"Chunks of k = T/4 = {ks[quarter]} steps hold {memory[quarter]:.2f}× the memory of full BPTT "
            f"for backward, at a gradient error of {errors[quarter]:.1%}; the error falls from "
            f"{errors[0]:.0%} at k = 1 to 0 at k = T."
        ),
    )
    return found


def _batches(directory: Path, batch_size: int = 40, shown: int = 60) -> dict[str, Any]:
    from ._problems import digits

    x, y, _, _ = digits(1797)
    keep = []
    for c in range(10):  # an imbalanced subset: 150, 112, 84, … 13 examples per class
        index = torch.nonzero(y == c).flatten()
        keep.append(index[: max(10, int(150 * 0.75**c))])
    labels = y[torch.cat(keep)]
    weights = class_weights(labels)[labels]
    g = torch.Generator().manual_seed(0)
    weighted = list(
        BatchSampler(
            WeightedRandomSampler(weights.double(), 20 * len(labels), generator=g), batch_size, drop_last=True
        )
    )
    stratified = []
    sampler = StratifiedBatchSampler(labels, batch_size, generator=torch.Generator().manual_seed(0))
    while len(stratified) < len(weighted):
        stratified.extend(sampler)
    stratified = stratified[: len(weighted)]

    def table(batches):
        return torch.stack([torch.bincount(labels[torch.tensor(b)], minlength=10) for b in batches]).numpy()

    counts = {
        "WeightedRandomSampler + class_weights": table(weighted),
        "StratifiedBatchSampler": table(stratified),
    }
    missing = {name: float((t == 0).any(axis=1).mean()) for name, t in counts.items()}
    path = directory / "balanced_batches.png"
    plot_batch_balance(
        counts,
        path,
        shown=shown,
        title=f"Balanced mini-batches of {batch_size} on an imbalanced digits subset "
        f"({len(labels)} examples, 10 to 150 per class; first {shown} batches)",
    )
    weighted_name = "WeightedRandomSampler + class_weights"
    caption = (
        f"Weighted sampling balances only on average: {missing[weighted_name]:.0%} of "
        f"{len(weighted)} batches "
        f"of {batch_size} miss at least one class, and a class's count per batch ranges "
        f"{int(counts[weighted_name].min())}–{int(counts[weighted_name].max())}; the stratified sampler "
        f"puts exactly {batch_size // 10} of each class in every batch."
    )
    return {
        "path": str(path),
        "batch_size": batch_size,
        "n": len(labels),
        "batches": len(weighted),
        "missing_class_fraction": missing,
        "caption": caption,
    }


def _gradient_noise(directory: Path) -> dict[str, Any]:
    from ._problems import batches, digits, mlp

    x, y, _, _ = digits(512)
    loss_fn = nn.functional.cross_entropy
    model = mlp([64, 32, 10], seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for inputs, targets in batches(x, y, 32, seed=0, epochs=2):
        opt.zero_grad()
        loss_fn(model(inputs), targets).backward()
        opt.step()
    noise = gradient_noise(model, loss_fn, x, y)
    sizes = [4, 8, 16, 32, 64, 128, 256]
    measured = batch_gradient_variance(
        model, loss_fn, x, y, sizes, draws=200, generator=torch.Generator().manual_seed(0)
    )
    ratios = [measured[b] / noise.batch_variance(b) for b in sizes]
    path = directory / "gradient_noise.png"
    plot_gradient_noise(
        sizes,
        [measured[b] for b in sizes],
        noise.trace_cov,
        noise.n,
        path,
        title=f"Gradient noise against batch size, digits MLP 64-32-10 (N = {noise.n})",
    )
    worst = max(abs(r - 1) for r in ratios)
    caption = (
        f"The variance of a batch gradient follows tr Σ / B · (N − B)/(N − 1) within {worst:.0%} for "
        f"B = {sizes[0]} … {sizes[-1]} (Monte Carlo, 200 batches each); doubling B halves it, "
        f"as dividing η by √2 "
        f"would, and the critical batch tr Σ / ‖ḡ‖² is {noise.critical_batch:.0f}."
    )
    return {
        "path": str(path),
        "trace_cov": noise.trace_cov,
        "grad_norm_sq": noise.grad_norm_sq,
        "critical_batch": noise.critical_batch,
        "batch_sizes": sizes,
        "measured": [measured[b] for b in sizes],
        "ratio_to_formula": ratios,
        "caption": caption,
    }


def training_practice_figures(directory: str | os.PathLike) -> dict[str, Any]:
    """Draw the five training-practice figures into ``directory`` and return the measured findings:
    ``{"range_test": {...}, "early_stopping": {...}, "tbptt": {...}, "balanced_batches": {...},
    "gradient_noise": {...}}``, each with ``path``, its numbers and a ``caption`` made from them.
    Every RNG it touches is put back; needs scikit-learn (digits)."""
    directory = writable_directory(directory, "directory")
    before = rng_state()  # importing scikit-learn alone moves Python's global RNG
    try:
        torch.manual_seed(0)
        return {
            "range_test": _range_test(directory),
            "early_stopping": _early_stopping(directory),
            "tbptt": _tbptt(directory),
            "balanced_batches": _batches(directory),
            "gradient_noise": _gradient_noise(directory),
        }
    finally:
        set_rng_state(before)
