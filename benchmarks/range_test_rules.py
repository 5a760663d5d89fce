"""Which range-test rule to make the default: every rule against the grid-best fixed learning rate.

For each problem × optimizer: the best fixed lr on a quarter-decade grid (training loss on the whole
training set after ``STEPS`` steps, mean over 3 seeds; a seed fixes the initialisation and the batch
order) and each rule's suggestion (geometric mean over the same 3 seeds; the range test runs with its
defaults: 1e-7 → 10 in 100 steps, β = 0.98, diverge 4). A rule passes when suggestion / best is in
[1/3, 3]. Problems: digits (MLP 64-64-10, cross-entropy) and a teacher–student MSE regression
(MLP 16-64-1) — the second problem checks a rule chosen on the first.

    PYTHONPATH=src python benchmarks/range_test_rules.py
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

import descentlab.optim as dl
from descentlab.training import RULES, lr_range_test
from descentlab.training._problems import batches, digits, mlp, teacher_regression

STEPS = 150
BATCH = 64
SEEDS = (0, 1, 2)

OPTIMIZERS = {
    "SGD+momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "Adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "descentlab SGD+momentum": lambda params, lr: dl.SGD(params, lr=lr, momentum=0.9),
    "descentlab Adam": lambda params, lr: dl.Adam(params, lr=lr),
}


def problems():
    x, y, _, _ = digits()
    xr, yr = teacher_regression()
    return {
        "digits": (x, y, [64, 64, 10], nn.functional.cross_entropy),
        "regression": (xr, yr, [16, 64, 1], nn.functional.mse_loss),
    }


def train_loss(x, y, sizes, loss_fn, make_opt, lr, seed):
    model = mlp(sizes, seed=seed)
    opt = make_opt(model.parameters(), lr)
    for inputs, targets in batches(x, y, BATCH, seed=seed, epochs=20)[:STEPS]:
        opt.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        opt.step()
    with torch.no_grad():
        value = float(loss_fn(model(x), y))
    return value if math.isfinite(value) else math.inf


def grid_best(x, y, sizes, loss_fn, make_opt, low=-5.0, high=1.0):
    grid = [10 ** (low + 0.25 * i) for i in range(int((high - low) / 0.25) + 1)]
    means = [
        sum(train_loss(x, y, sizes, loss_fn, make_opt, lr, s) for s in SEEDS) / len(SEEDS) for lr in grid
    ]
    best = min(range(len(grid)), key=lambda i: means[i])
    return grid[best], dict(zip(grid, means))


def suggestions(x, y, sizes, loss_fn, make_opt):
    per_rule = {rule: [] for rule in RULES}
    for seed in SEEDS:
        model = mlp(sizes, seed=seed)
        opt = make_opt(model.parameters(), 1e-3)
        result = lr_range_test(model, opt, loss_fn, batches(x, y, BATCH, seed=seed, epochs=20))
        for rule in RULES:
            per_rule[rule].append(result.suggest(rule))
    return {rule: math.exp(sum(map(math.log, v)) / len(v)) for rule, v in per_rule.items()}


def main() -> None:
    global STEPS, BATCH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps per grid point")
    parser.add_argument("--batch", type=int, default=BATCH, help="mini-batch size")
    args = parser.parse_args()
    STEPS, BATCH = args.steps, args.batch
    torch.set_num_threads(1)
    print(f"batch {BATCH}, {STEPS} training steps per grid point, seeds {SEEDS}")
    print(f"{'problem':<11} {'optimizer':<24} {'grid best':>9}  " + "  ".join(f"{r:>16}" for r in RULES))
    for pname, (x, y, sizes, loss_fn) in problems().items():
        for oname, make_opt in OPTIMIZERS.items():
            best, _ = grid_best(x, y, sizes, loss_fn, make_opt)
            sugg = suggestions(x, y, sizes, loss_fn, make_opt)
            cells = []
            for rule in RULES:
                ratio = sugg[rule] / best
                mark = "ok" if 1 / 3 <= ratio <= 3 else "--"
                cells.append(f"{sugg[rule]:.2e} ×{ratio:5.2f} {mark}")
            print(f"{pname:<11} {oname:<24} {best:9.2e}  " + "  ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
