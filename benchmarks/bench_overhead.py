"""Overhead of the benchmark harness: storage, evaluation and bookkeeping against the training itself.

Runs a small ``descentlab bench`` in this process (every quick workload × the quick optimizers, one study
of two trials, external ruleset, ``--jobs 1``) and then, for every one of its trials,

* the trial alone — :func:`~descentlab.bench.runner.run_trial`, i.e. ``fit`` with its evaluations and
  bookkeeping, but no Optuna and no storage;
* the *bare* training loop — the same model, optimizer, schedule and batches, ``zero_grad / forward /
  backward / step`` and nothing else.

Times are **CPU seconds of this process** (``time.process_time``: the heartbeat thread included), so that
the figure means the same on a machine other jobs share; wall-clock seconds are printed next to them.
The imports and the data are loaded before the clock starts and reported apart (a worker process pays
them once). Inside the run, each trial's CPU span is recorded, which splits the run into what it does
once (options, data hashes, the plan and its search spaces, opening the storage, enqueueing) and what
it does per trial (the trial itself, and Optuna's ask/tell and storing the result between trials).
Per workload it prints the bare time, the trial alone, and the overhead per trial ``1 − bare / (alone +
storage)``, split into what ``fit`` and the evaluations add (alone − bare) and what the storage adds
between trials; then the same with what the run does once. Usage::

    python benchmarks/bench_overhead.py [--out runs/bench-overhead] [--trials 2] [--repeats 3]

Other jobs disturb even CPU time (caches, memory bandwidth) by a few per cent: the bare loop and the trial
alone are each the least of ``--repeats`` runs, the run itself is measured once.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch


def bare(spec) -> float:
    """CPU seconds of the bare training loop of ``spec`` (building the model and optimizer excluded)."""
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
    began = time.process_time()
    for x, y in batches:
        optimizer.zero_grad()
        loss = workload.loss(model(x), y)
        if not torch.isfinite(loss):
            break
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return time.process_time() - began


def alone(spec) -> float:
    """CPU seconds of ``run_trial(spec)``: fit, evaluations, bookkeeping; no storage."""
    from descentlab.bench.runner import run_trial

    began = time.process_time()
    run_trial(spec)
    return time.process_time() - began


def startup_seconds() -> float:
    """Wall seconds a fresh worker process needs to import torch, Optuna and the bench."""
    code = "import torch, torch._dynamo, optuna, sqlalchemy, descentlab.bench.storage, descentlab.training"
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - began


def clocked_trials(spans: list[tuple[float, float]]):
    """Wrap the runner's ``run_trial`` as the run calls it, recording each trial's CPU span."""
    from descentlab.bench import storage

    inner = storage.run_trial

    def run_trial(spec, on_eval=None):
        began = time.process_time()
        try:
            return inner(spec, on_eval)
        finally:
            spans.append((began, time.process_time()))

    storage.run_trial = run_trial
    return inner


def main() -> None:
    from descentlab.bench import run_bench, storage
    from descentlab.bench.report import collect
    from descentlab.bench.runner import TrialSpec
    from descentlab.bench.storage import RunDirectory
    from descentlab.bench.workloads import tier_workloads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-overhead"))
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="bare and alone: the least of this many")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shutil.rmtree(args.out, ignore_errors=True)
    import optuna  # noqa: F401 - imported before the clock, as a worker has it

    data_began = time.process_time()
    for workload in tier_workloads("quick"):
        workload.data()
    data_cpu = time.process_time() - data_began
    spans: list[tuple[float, float]] = []
    inner = clocked_trials(spans)
    began, cpu_began = time.perf_counter(), time.process_time()
    run_bench(args.out, studies=1, trials=args.trials, rulesets=["external"], jobs=1, report=False)
    wall, cpu_end = time.perf_counter() - began, time.process_time()
    cpu = cpu_end - cpu_began
    storage.run_trial = inner
    setup = spans[0][0] - cpu_began  # options, data hashes, plan (search spaces), storage, enqueueing
    teardown = cpu_end - spans[-1][1]
    between = sum(b[0] - a[1] for a, b in zip(spans, spans[1:]))  # Optuna ask/tell, storing a result
    inside = sum(end - start for start, end in spans)
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
        stats["bare"] += min(bare(spec) for _ in range(args.repeats))  # the least disturbed of the repeats
        stats["alone"] += min(alone(spec) for _ in range(args.repeats))
        stats["wall"] += row["trial_seconds"]
    trials = sum(s["trials"] for s in per.values())
    total_bare = sum(s["bare"] for s in per.values())
    total_alone = sum(s["alone"] for s in per.values())
    per_trial_storage = between / max(1, trials - 1)
    print(
        f"{trials:.0f} trials: {cpu:.1f} CPU s in the run ({wall:.1f} s wall); start-up of a process, not "
        f"counted below: data {data_cpu:.1f} CPU s, imports {startup_seconds():.1f} s wall"
    )
    print(
        f"in the run: {setup:.2f} s before the first trial (options, hashes, plan, storage, enqueueing), "
        f"{inside:.2f} s in trials (measured once, under whatever else ran), {between:.2f} s between them "
        f"({1000 * per_trial_storage:.1f} ms a trial: Optuna's ask/tell, heartbeat, storing the result), "
        f"{teardown:.2f} s after"
    )
    header = f"{'workload':20} {'bare':>7} {'alone':>7} {'fit+eval':>9} {'storage':>8} {'per trial':>10}"
    print(header + "  (CPU s)")
    for workload, s in per.items():
        storage_share = per_trial_storage * s["trials"]
        cost = s["alone"] + storage_share
        print(
            f"{workload:20} {s['bare']:7.2f} {s['alone']:7.2f} {(s['alone'] - s['bare']) / cost:9.1%} "
            f"{storage_share / cost:8.1%} {1 - s['bare'] / cost:10.1%}"
        )
    cost = total_alone + between
    once = setup + teardown
    print(
        f"{'all':20} {total_bare:7.2f} {total_alone:7.2f} {(total_alone - total_bare) / cost:9.1%} "
        f"{between / cost:8.1%} {1 - total_bare / cost:10.1%}"
    )
    print(
        f"harness overhead per trial (what grows with the tier): {1 - total_bare / cost:.1%}; with what this "
        f"{trials:.0f}-trial run does once: {1 - total_bare / (cost + once):.1%}"
    )


if __name__ == "__main__":
    main()
