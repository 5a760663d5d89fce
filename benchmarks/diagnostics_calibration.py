"""Where the default thresholds of descentlab.diagnostics come from: planted cases vs healthy controls.

Prints, for every label, the measured value of each planted pathology and each healthy control on
load_digits MLPs (``descentlab.diagnostics.planted``), the threshold, and the margins
(planted/threshold, threshold/control, planted/control). Also reruns the learning-rate sweep that
defines the "best lr" of the unstable-lr case.

    PYTHONPATH=src python benchmarks/diagnostics_calibration.py          # about a minute on one core
"""

from __future__ import annotations

import math

import torch
from torch import nn

from descentlab.diagnostics import Probe, Thresholds, activation_stats, classify_plateau, gradient_flow
from descentlab.diagnostics.planted import BEST_LR, _mse_onehot, digits, mlp, run_case
from descentlab.diagnostics.statistics import point_evidence

T = Thresholds()
ROWS: list[tuple[str, str, float, float, str]] = []


def row(label: str, case: str, value: float, threshold: float, kind: str) -> None:
    ROWS.append((label, case, value, threshold, kind))


def gradient_cases(x, y) -> None:
    cases = {
        "20-layer sigmoid, default init": ("planted", "vanishing", lambda s: mlp(20, "sigmoid", seed=s)),
        "20-layer tanh, N(0, 16/fan_in)": (
            "planted",
            "exploding",
            lambda s: mlp(20, "tanh", init=("normal", 4.0), seed=s),
        ),
        "20-layer tanh, Xavier": ("control", "both", lambda s: mlp(20, "tanh", init="xavier", seed=s)),
        "20-layer ReLU, Kaiming": ("control", "both", lambda s: mlp(20, "relu", init="kaiming", seed=s)),
    }
    for name, (kind, label, build) in cases.items():
        ratios = []
        for seed in range(3):
            model = build(seed)
            ratios.append(gradient_flow(model, nn.functional.cross_entropy(model(x), y)).ratio)
        worst_low, worst_high = min(ratios), max(ratios)
        if label in ("vanishing", "both"):
            row("vanishing", name, worst_high if kind == "planted" else worst_low, T.vanishing_ratio, kind)
        if label in ("exploding", "both"):
            row("exploding", name, worst_low if kind == "planted" else worst_high, T.exploding_ratio, kind)


def activation_cases(x) -> None:
    cases = {
        "4-layer sigmoid, N(0, 64/fan_in)": (
            "planted",
            "saturated",
            lambda s: mlp(4, "sigmoid", init=("normal", 8.0), seed=s),
        ),
        "4-layer sigmoid, default init": ("control", "saturated", lambda s: mlp(4, "sigmoid", seed=s)),
        "4-layer tanh, default init": ("control", "saturated", lambda s: mlp(4, "tanh", seed=s)),
        "4-layer tanh, Xavier": ("control", "saturated", lambda s: mlp(4, "tanh", init="xavier", seed=s)),
        "4-layer ReLU, bias -10": ("planted", "dead-relu", lambda s: mlp(4, "relu", bias=-10.0, seed=s)),
        "4-layer ReLU, default init": ("control", "dead-relu", lambda s: mlp(4, "relu", seed=s)),
        "4-layer ReLU, Kaiming": ("control", "dead-relu", lambda s: mlp(4, "relu", init="kaiming", seed=s)),
    }
    for name, (kind, label, build) in cases.items():
        values = []
        for seed in range(3):
            stats = activation_stats(build(seed), x)
            per_layer = stats.saturated if label == "saturated" else stats.dead
            # planted: the *least* affected layer must still be flagged ("in every layer" for dead-relu
            # and at least one for saturated); control: the most affected layer must stay below.
            values.append(min(per_layer) if (kind == "planted" and label == "dead-relu") else max(per_layer))
        value = min(values) if kind == "planted" else max(values)
        threshold = T.saturated_fraction if label == "saturated" else T.dead_fraction
        row(label, name, value, threshold, kind)


def lr_sweep(x, y) -> float:
    print("learning-rate sweep (3-layer tanh, squared error, SGD momentum 0.9, 100 full-batch steps)")
    best, best_loss = None, math.inf
    for k in range(-4, 4):
        lr = 10 ** (k / 2)
        finals = []
        for seed in range(3):
            model = mlp(3, "tanh", seed=seed)
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            for _ in range(100):
                opt.zero_grad()
                loss = _mse_onehot(model(x), y)
                loss.backward()
                opt.step()
            finals.append(float(loss.detach()))
        ok = all(math.isfinite(v) for v in finals)
        print(f"  lr {lr:8.4g}: final losses {', '.join(f'{v:.3g}' for v in finals)}")
        if ok and max(finals) < best_loss:
            best, best_loss = lr, max(finals)
    print(
        f"  best lr (finite for every seed, lowest worst-seed loss): {best:g}; "
        f"planted.BEST_LR = {BEST_LR:g}\n"
    )
    return best


def monitored_cases() -> None:
    for name in ("healthy", "unstable-lr", "vanishing"):
        monitor, m = run_case(name, steps=40)
        if name == "healthy":
            row(
                "unstable-lr",
                "healthy run at the best lr (max over 40 steps)",
                m["sharpness_max"],
                m["sharpness_bound"],
                "control",
            )
            row(
                "update-ratio-high",
                "healthy run at the best lr (max)",
                m["update_ratio_max"],
                T.update_ratio_high,
                "control",
            )
            row(
                "update-ratio-low",
                "healthy run at the best lr (min)",
                m["update_ratio_min"],
                T.update_ratio_low,
                "control",
            )
        elif name == "vanishing":
            row(
                "update-ratio-low",
                "20-layer sigmoid (step 0, first layer)",
                monitor.history[0]["update_ratio"][0],
                T.update_ratio_low,
                "planted",
            )
        elif name == "unstable-lr":
            row(
                "unstable-lr", "100 x best lr (step 0)", m["sharpness_first"], m["sharpness_bound"], "planted"
            )
            row(
                "update-ratio-high",
                "100 x best lr (step 0, smallest layer)",
                min(monitor.history[0]["update_ratio"]),
                T.update_ratio_high,
                "planted",
            )
            flagged = min(f.step for f in monitor.flags if f.label == "unstable-lr")
            print(
                f"unstable-lr run: flag at step {flagged}, first rise of the loss at step "
                f"{m['first_rise_step']}, non-finite at step {m['nonfinite_step']}"
            )
    for lr, name in ((1e-3, "Adam 1e-3 (default), 4-layer ReLU Kaiming, cross-entropy"),):
        x, y = digits(512)
        model = mlp(4, "relu", init="kaiming")
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        from descentlab.diagnostics import watch

        with watch(model, opt, every=5) as monitor:
            for _ in range(40):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        ratios = [v for s in monitor.history.steps for v in monitor.history[s].get("update_ratio", [])]
        row("update-ratio-high", name + " (max)", max(ratios), T.update_ratio_high, "control")
        row("update-ratio-low", name + " (min)", min(ratios), T.update_ratio_low, "control")


def plateau_cases(x, y) -> None:
    probe = Probe(x, y, nn.functional.cross_entropy)
    saddle = mlp(3, "tanh", scale=1e-3)
    ev = point_evidence(saddle, probe)
    row(
        "plateau:saddle (gradient)",
        "3-layer tanh, weights x 1e-3: |g|",
        ev["grad_norm"],
        T.grad_tiny,
        "planted",
    )
    row(
        "plateau:saddle (curvature)",
        "3-layer tanh, weights x 1e-3: -λmin/λmax",
        -ev["lambda_min"] / ev["lambda_max"],
        T.negative_curvature,
        "planted",
    )
    with torch.no_grad():
        loss = float(nn.functional.cross_entropy(saddle(x), y))
    gap = abs(loss - ev["trivial_loss"]) / ev["trivial_loss"]
    row(
        "plateau:saddle (trivial gap)",
        "3-layer tanh, weights x 1e-3: |L - L0|/L0",
        gap,
        T.trivial_rel_gap,
        "planted",
    )
    fresh = mlp(3, "tanh")
    ev = point_evidence(fresh, probe)
    row(
        "plateau:saddle (gradient)",
        "3-layer tanh, default init: |g|",
        ev["grad_norm"],
        T.grad_tiny,
        "control",
    )
    trained = mlp(3, "tanh")
    opt = torch.optim.SGD(trained.parameters(), lr=0.3, momentum=0.9)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(trained(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    ev = point_evidence(trained, probe)
    row(
        "plateau:saddle (curvature)",
        "trained 3-layer tanh: -λmin/λmax",
        -ev["lambda_min"] / ev["lambda_max"],
        T.negative_curvature,
        "control (not at the trivial loss)",
    )
    label = classify_plateau(losses, model=trained, probe=probe).label
    print(f"trained net (300 steps, loss {losses[-1]:.2g}): classify_plateau -> {label}")


def main() -> None:
    torch.set_num_threads(1)
    x, y = digits(256)
    gradient_cases(x, y)
    activation_cases(x)
    xs, ys = digits(512)
    lr_sweep(xs, ys)
    monitored_cases()
    plateau_cases(xs, ys)
    print(f"\n{'label':28s} {'case':58s} {'value':>10s} {'threshold':>10s}  kind     margin")
    for label, case, value, threshold, kind in ROWS:
        margin = value / threshold if value else math.inf
        if margin < 1:
            margin = 1 / margin
        print(f"{label:28s} {case:58s} {value:10.3g} {threshold:10.3g}  {kind:8s} {margin:8.3g}x")


if __name__ == "__main__":
    main()
