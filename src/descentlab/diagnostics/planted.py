"""Planted pathologies and healthy controls on load_digits MLPs — where the default thresholds come from.

Data: scikit-learn's ``load_digits`` (1,797 8×8 images, 10 classes), features standardised, the first
``n`` examples. Models: :func:`mlp` — ``depth`` linear layers of width 64 with an activation between.

==================  ==============================================================  ====================
case                model and run                                                   expected label
==================  ==============================================================  ====================
``healthy``         3 layers, tanh, default init; squared error on one-hot targets, none
                    SGD momentum 0.9 at the best learning rate (1.0, see below)
``vanishing``       20 layers, sigmoid, torch default init                          ``vanishing``
``exploding``       20 layers, tanh, weights N(0, 16/fan_in)                        ``exploding``
``saturated``       4 layers, sigmoid, weights N(0, 64/fan_in)                      ``saturated``
``dead-relu``       4 layers, ReLU, biases −10                                      ``dead-relu``
``unstable-lr``     the healthy run at 100 × the best learning rate                 ``unstable-lr``
``plateau:saddle``  3 layers, tanh, weights × 1e-3 and biases 0 (cross-entropy)     ``plateau:saddle``
==================  ==============================================================  ====================

The best learning rate of the healthy run: over the half-decade grid 0.01 … 31.6, the one with the
lowest loss after 100 full-batch steps (512 examples) that stays finite for seeds 0, 1, 2 is 1.0
(3.16 diverges for seeds 1 and 2; ``benchmarks/diagnostics_calibration.py`` reproduces the sweep).

:func:`diagnosis_figures` runs every case under :func:`~.monitor.watch`, writes its dashboard and
returns the flags and the measured values with a caption made from them. Needs scikit-learn.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import writable_directory
from ..validation import check_int
from .monitor import Monitor, watch
from .statistics import Probe

__all__ = ["digits", "mlp", "CASES", "Case", "run_case", "diagnosis_figures", "BEST_LR"]

BEST_LR = 1.0
_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU}


def digits(n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` load_digits examples, features standardised (float32), and their labels."""
    x, y = _digits()
    return x[:n].clone(), y[:n].clone()


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def mlp(
    depth: int,
    activation: str,
    *,
    width: int = 64,
    init: str | tuple[str, float] = "default",
    bias: float | None = None,
    scale: float | None = None,
    seed: int = 0,
) -> nn.Sequential:
    """``depth`` linear layers 64 → width → … → 10 with ``activation`` between them.

    ``init``: ``"default"`` (torch's), ``"xavier"`` (Glorot normal, gain 1 as in the paper and the
    notes), ``"kaiming"`` (He normal for ReLU), or ``("normal", σ)`` for weights N(0, σ²/fan_in);
    ``bias`` sets every bias; ``scale`` multiplies every weight and sets the biases to 0."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    fan = 64
    for _ in range(depth - 1):
        layers += [nn.Linear(fan, width), _ACTIVATIONS[activation]()]
        fan = width
    layers.append(nn.Linear(fan, 10))
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for m in model:
            if not isinstance(m, nn.Linear):
                continue
            if init == "xavier":
                nn.init.xavier_normal_(m.weight)
            elif init == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(init, tuple):
                nn.init.normal_(m.weight, 0.0, init[1] / math.sqrt(m.in_features))
            if bias is not None:
                m.bias.fill_(bias)
            if scale is not None:
                m.weight.mul_(scale)
                m.bias.zero_()
    return model


def _mse_onehot(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(outputs, nn.functional.one_hot(targets, 10).to(outputs.dtype))


@dataclass(frozen=True)
class Case:
    """A planted pathology (``expect`` its label) or a healthy control (``expect=None``)."""

    name: str
    title: str
    build: Callable[[], nn.Module]
    expect: str | None
    loss: str = "cross_entropy"  # or "mse" (squared error on one-hot targets)
    lr: float = 0.1
    momentum: float = 0.9
    every: int = 5
    curvature_every: int | None = 20

    @property
    def loss_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return _mse_onehot if self.loss == "mse" else nn.functional.cross_entropy


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case(
            "healthy",
            "3-layer tanh MLP, default init, SGD momentum 0.9 at the best lr (1.0)",
            lambda: mlp(3, "tanh"),
            None,
            loss="mse",
            lr=BEST_LR,
            curvature_every=5,
        ),
        Case(
            "vanishing", "20-layer sigmoid MLP, torch default init", lambda: mlp(20, "sigmoid"), "vanishing"
        ),
        Case(
            "exploding",
            "20-layer tanh MLP, weights N(0, 16/fan_in)",
            lambda: mlp(20, "tanh", init=("normal", 4.0)),
            "exploding",
            lr=0.01,
        ),
        Case(
            "saturated",
            "4-layer sigmoid MLP, weights N(0, 64/fan_in)",
            lambda: mlp(4, "sigmoid", init=("normal", 8.0)),
            "saturated",
        ),
        Case("dead-relu", "4-layer ReLU MLP, biases -10", lambda: mlp(4, "relu", bias=-10.0), "dead-relu"),
        Case(
            "unstable-lr",
            "the healthy run at 100 × the best lr (100)",
            lambda: mlp(3, "tanh"),
            "unstable-lr",
            loss="mse",
            lr=100 * BEST_LR,
            every=1,
            curvature_every=1,
        ),
        Case(
            "plateau:saddle",
            "3-layer tanh MLP, weights × 1e-3, biases 0",
            lambda: mlp(3, "tanh", scale=1e-3),
            "plateau:saddle",
            lr=0.1,
            momentum=0.0,
        ),
    )
}


def run_case(case: Case | str, *, steps: int = 40, n: int = 512) -> tuple[Monitor, dict[str, Any]]:
    """Train the case's model full-batch on ``n`` digits for ``steps`` steps under :func:`watch`
    (stopping at the first non-finite loss) and return the monitor and the measured values."""
    case = CASES[case] if isinstance(case, str) else case
    x, y = digits(n)
    model = case.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=case.lr, momentum=case.momentum)
    probe = Probe(x, y, case.loss_fn)
    losses = []
    with watch(
        model, optimizer, every=case.every, probe=probe, curvature_every=case.curvature_every
    ) as monitor:
        for _ in range(steps):
            optimizer.zero_grad()
            loss = case.loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            monitor.log(loss=loss)
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                break
    return monitor, measured(monitor, losses)


def measured(monitor: Monitor, losses: list[float]) -> dict[str, Any]:
    """The numbers the captions quote: worst values per quantity and the loss milestones."""
    h = monitor.history
    out: dict[str, Any] = {"steps": monitor.steps, "trivial_loss": monitor.trivial_loss}
    ratios = [h[s]["grad_ratio"] for s in h.steps if "grad_ratio" in h[s]]
    finite = [r for r in ratios if math.isfinite(r) and r > 0]
    if finite:
        out["grad_ratio_min"], out["grad_ratio_max"] = min(finite), max(finite)
        out["grad_ratio_first"] = ratios[0]
    for key in ("dead", "saturated", "update_ratio"):
        cells = [v for s in h.steps if key in h[s] for v in h[s][key] if math.isfinite(v)]
        if cells:
            out[f"{key}_max"] = max(cells)
            if key == "update_ratio":
                out["update_ratio_min"] = min(cells)
            if key == "dead":
                out["dead_min"] = min(cells)
    sharp = [v for v in h.series("sharpness")[1] if math.isfinite(v)]
    if sharp:
        out["sharpness_max"], out["sharpness_first"] = max(sharp), sharp[0]
        out["sharpness_bound"] = h.series("sharpness_bound")[1][-1]
    lam_min = [v for v in h.series("lambda_min")[1] if math.isfinite(v)]
    lam_max = [v for v in h.series("lambda_max")[1] if math.isfinite(v)]
    if lam_min and lam_max:
        out["lambda_min_last"], out["lambda_max_last"] = lam_min[-1], lam_max[-1]
    out["loss_first"], out["loss_last"] = losses[0], losses[-1]
    rises = [i for i in range(1, len(losses)) if losses[i] > losses[i - 1]]
    out["first_rise_step"] = rises[0] if rises else None
    nonfinite = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    out["nonfinite_step"] = nonfinite[0] if nonfinite else None
    return out


def _caption(case: Case, m: dict[str, Any], flags: list[dict[str, Any]], t) -> str:
    raised = list(dict.fromkeys(f["label"] for f in flags))
    if not raised:
        said = "no flag raised"
    elif case.expect in raised:
        others = [label for label in raised if label != case.expect]
        said = f"raised {case.expect}" + (f" (also {', '.join(others)})" if others else "")
    else:
        said = f"raised {', '.join(raised)} but not {case.expect}"
    if case.name == "vanishing":
        core = (
            f"the first layer's gradient is {m['grad_ratio_min']:.2g} times the last layer's "
            f"(vanishing below {t.vanishing_ratio:g})"
        )
    elif case.name == "exploding":
        core = (
            f"the first layer's gradient is {m['grad_ratio_max']:.2g} times the last layer's "
            f"(exploding above {t.exploding_ratio:g})"
        )
    elif case.name == "saturated":
        core = (
            f"up to {m['saturated_max']:.0%} of a layer's sigmoid activations are saturated "
            f"(threshold {t.saturated_fraction:.0%})"
        )
    elif case.name == "dead-relu":
        share = (
            f"{m['dead_min']:.0%}"
            if f"{m['dead_min']:.0%}" == f"{m['dead_max']:.0%}"
            else f"{m['dead_min']:.0%} to {m['dead_max']:.0%}"
        )
        core = f"{share} of each layer's ReLU units never fire (threshold {t.dead_fraction:.0%})"
    elif case.name == "unstable-lr":
        rise = m["first_rise_step"]
        core = (
            f"η·λ_max = {m['sharpness_first']:.3g} against the bound {m['sharpness_bound']:.3g} at step 0; "
            f"the loss first rises at step {rise} and is non-finite at step {m['nonfinite_step']}"
        )
    elif case.name == "plateau:saddle":
        core = (
            f"the loss stays at {m['loss_last']:.4f} (trivial predictor {m['trivial_loss']:.4f}) with "
            f"λ_min = {m.get('lambda_min_last', math.nan):.2g} < 0"
        )
    else:
        parts = [f"gradient ratio {m['grad_ratio_min']:.2g}–{m['grad_ratio_max']:.2g}"]
        if "sharpness_max" in m:
            parts.append(f"η·λ_max ≤ {m['sharpness_max']:.2g} (bound {m['sharpness_bound']:.3g})")
        parts.append(f"update ratio {m['update_ratio_min']:.2g}–{m['update_ratio_max']:.2g}")
        core = ", ".join(parts)
    return f"{case.title}: {core}; {said}."


def diagnosis_figures(
    directory: str | os.PathLike, *, steps: int = 40, cases: list[str] | None = None
) -> dict[str, Any]:
    """Run the cases of :data:`CASES` (all by default), write ``diagnosis-<case>.png`` dashboards into
    ``directory`` and return, per case, ``{"path", "expected", "labels", "flags", "measured",
    "caption"}``; about 15 s on one core for all seven.

    The caption is one sentence generated from the measurements (no number is typed in by hand)."""
    folder = writable_directory(directory, "directory")
    names = list(CASES) if cases is None else list(cases)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"cases must be names from {tuple(CASES)}, got {unknown}")
    check_int("steps", steps, low=1)
    results: dict[str, Any] = {}
    for case in (CASES[n] for n in names):
        monitor, values = run_case(case, steps=steps)
        path = folder / f"diagnosis-{case.name.replace(':', '-')}.png"
        monitor.plot(path)
        flags = [f.to_dict() for f in monitor.flags]
        results[case.name] = {
            "path": str(Path(path)),
            "expected": case.expect,
            "labels": list(dict.fromkeys(f["label"] for f in flags)),
            "flags": flags,
            "measured": values,
            "caption": _caption(case, values, flags, monitor.thresholds),
        }
    return results
