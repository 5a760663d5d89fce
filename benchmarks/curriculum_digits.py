"""Does easy-first help on digits? Curriculum against random order, the same number of steps.

Difficulty = the per-example loss of a reference MLP trained briefly on the whole training set
(Hacohen & Weinshall's "transfer" scoring, in its simplest form). Each run trains a fresh MLP
64-64-10 with SGD + momentum for ``STEPS`` steps of batch 32; the pacing functions start from the
easiest 20 % and reach all the data halfway. Reported: test accuracy, mean ± std over 5 seeds.

    PYTHONPATH=src python benchmarks/curriculum_digits.py
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from descentlab.training import Competence, Constant, CurriculumSampler, Linear, Root, loss_difficulty
from descentlab.training._problems import batches, digits, mlp

STEPS, BATCH, SEEDS = 600, 32, range(5)


def main() -> None:
    torch.set_num_threads(1)
    x, y, xt, yt = digits()
    reference = mlp([64, 64, 10], seed=100)
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for inputs, targets in batches(x, y, BATCH, seed=100, epochs=2):
        opt.zero_grad()
        nn.functional.cross_entropy(reference(inputs), targets).backward()
        opt.step()
    per_example = lambda out, t: nn.functional.cross_entropy(out, t, reduction="none")  # noqa: E731
    difficulty = loss_difficulty(reference, per_example, (x, y))
    pacings = {
        "random (Constant(1))": (Constant(1.0), difficulty),
        "easy-first Linear(0.2)": (Linear(0.2, STEPS // 2), difficulty),
        "easy-first Root(0.2)": (Root(0.2, STEPS // 2), difficulty),
        "easy-first Competence(0.2)": (Competence(0.2, STEPS // 2), difficulty),
        "hard-first Root(0.2)": (Root(0.2, STEPS // 2), -difficulty),
    }
    for name, (pacing, scores) in pacings.items():
        accuracies = []
        for seed in SEEDS:
            model = mlp([64, 64, 10], seed=seed)
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            sampler = CurriculumSampler(
                scores, pacing, BATCH, STEPS, generator=torch.Generator().manual_seed(seed)
            )
            for index in sampler:
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[index]), y[index]).backward()
                opt.step()
            with torch.no_grad():
                accuracies.append(float((model(xt).argmax(1) == yt).float().mean()))
        print(
            f"{name:<28} test accuracy {statistics.mean(accuracies):.3f} ± {statistics.stdev(accuracies):.3f}"
        )


if __name__ == "__main__":
    main()
