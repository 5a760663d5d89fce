"""Overhead of the benchmark harness: storage, evaluation and bookkeeping against the training itself.

Runs a small ``descentlab bench`` (every quick workload × the quick optimizers, one study of two trials,
external ruleset, one process) and then, for every one of its trials, the *bare* training loop — the same
model, optimizer, schedule and batches, ``zero_grad / forward / backward / step`` and nothing else.
Prints, per workload: the bare time, the time inside ``fit`` (training steps with ``fit``'s own
bookkeeping), the evaluations, and the rest of each trial (Optuna's ask/tell, storing the result, building
the model); the overhead is ``1 − bare / (wall time per trial)``. Usage::

    python benchmarks/bench_overhead.py [--out runs/bench-overhead]
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import defaultdict
from pathlib import Path

import torch


def bare(spec) -> float:
    from descentlab.bench.spaces import build_optimizer, build_scheduler
    from descentlab.bench.workloads import StepBatches, get_workload

    workload = get_workload(spec.workload)
    data = workload.data()
    model = workload.model(spec.seed)
    optimizer = build_optimizer(spec.optimizer, model.parameters(), spec.config)
    scheduler = build_scheduler(optimizer, spec.config, workload.budget)
    batches = StepBatches(
        *data.train, workload.batch_size, workload.budget, torch.Generator().manual_seed(spec.seed)
    )
    began = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad()
        loss = workload.loss(model(x), y)
        if not torch.isfinite(loss):
            break
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return time.perf_counter() - began


def main() -> None:
    from descentlab.bench import run_bench
    from descentlab.bench.report import collect
    from descentlab.bench.runner import TrialSpec
    from descentlab.bench.storage import RunDirectory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-overhead"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    shutil.rmtree(args.out, ignore_errors=True)
    began = time.perf_counter()
    run_bench(args.out, studies=1, trials=2, rulesets=["external"], jobs=1, report=False)
    wall = time.perf_counter() - began
    rows = collect(RunDirectory.open(args.out))
    per = defaultdict(lambda: defaultdict(float))
    for row in rows:
        spec = TrialSpec(
            row["workload"],
            row["optimizer"],
            row["ruleset"],
            row["study"],
            row["trial"],
            row["seed"],
            row["config"],
            row["u"],
        )
        stats = per[row["workload"]]
        stats["trials"] += 1
        stats["bare"] += bare(spec)
        stats["fit"] += row["train_seconds"]
        stats["eval"] += row["eval_seconds"]
        stats["trial"] += row["trial_seconds"]
    trials = sum(s["trials"] for s in per.values())
    in_trials = sum(s["trial"] for s in per.values())
    outside = wall - in_trials  # enqueueing, Optuna's ask/tell, storing results, imports and data (once)
    print(f"{trials} trials in {wall:.1f} s ({outside:.1f} s outside the trials: storage, start-up, data)")
    print(f"{'workload':20} {'bare s':>8} {'in fit':>8} {'eval':>7} {'trial':>8} {'overhead':>9}")
    total_bare = 0.0
    for workload, s in per.items():
        share = outside * s["trials"] / trials
        cost = s["trial"] + share
        total_bare += s["bare"]
        print(
            f"{workload:20} {s['bare']:8.2f} {s['fit']:8.2f} {s['eval']:7.2f} {s['trial']:8.2f} "
            f"{1 - s['bare'] / cost:9.1%}"
        )
    print(
        f"{'all':20} {total_bare:8.2f} {'':8} {'':7} {in_trials:8.2f} {1 - total_bare / wall:9.1%}  "
        f"(harness overhead = 1 − bare / wall)"
    )


if __name__ == "__main__":
    main()
