"""Overhead of ``descentlab.diagnostics.watch`` on the steps it does not observe (issue: ≤ 5 % with every=10).

The same training loop (load_digits, mini-batches of 64, SGD with momentum) runs with and without the
monitor in this process, alternating, so that both see the same machine. Every step is timed on its
own (forward, backward, ``optimizer.step()`` and, when watched, ``monitor.log(loss=loss)``). Reported:

* ``unobserved``: median time of the steps the monitor does not observe (``t % every != 0``) over the
  median time of the unwatched steps — the overhead the issue bounds;
* ``all steps``: mean over every step, observed ones included (gradient norms, parameter copies,
  update ratios and the sampled activation hooks), over the unwatched mean.

    PYTHONPATH=src python benchmarks/diagnostics_overhead.py [--steps 600] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from descentlab.diagnostics import watch
from descentlab.diagnostics.planted import digits

EVERY = 10


def make(width: int, depth: int) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(64, width), nn.ReLU()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def run(model: nn.Module, watched: bool, steps: int, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, len(x) - 63, 64)]
    times = []

    def loop(monitor=None) -> None:
        for t in range(steps):
            xb, yb = batches[t % len(batches)]
            start = time.perf_counter()
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            if monitor is not None:
                monitor.log(loss=loss)
            times.append(time.perf_counter() - start)

    if watched:
        with watch(model, opt, every=EVERY) as monitor:
            loop(monitor)
    else:
        loop()
    return times


def measure(width: int, depth: int, steps: int, repeats: int) -> dict[str, float]:
    x, y = digits(1797)
    base, watched = [], []
    for _ in range(repeats):
        base += run(make(width, depth), False, steps, x, y)[EVERY:]  # drop warm-up steps
        watched_times = run(make(width, depth), True, steps, x, y)
        watched += [(t, s) for t, s in enumerate(watched_times)][EVERY:]
    unobserved = [s for t, s in watched if t % EVERY != 0]
    return {
        "step_us": 1e6 * statistics.median(base),
        "unobserved": statistics.median(unobserved) / statistics.median(base),
        "all": statistics.fmean(s for _, s in watched) / statistics.fmean(base),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"every={EVERY}, {args.repeats} × {args.steps} steps per configuration, one thread")
    print(f"{'model':28s} {'step (µs)':>10s} {'unobserved':>11s} {'all steps':>10s}")
    for width, depth in ((64, 3), (256, 4), (512, 6)):
        r = measure(width, depth, args.steps, args.repeats)
        name = f"MLP {depth} layers × {width}"
        print(f"{name:28s} {r['step_us']:10.0f} {r['unobserved']:10.3f}x {r['all']:9.3f}x")


if __name__ == "__main__":
    main()
