"""Distributed training on one machine: what it costs, and what one machine can and cannot show.

    .venv/bin/python benchmarks/distributed.py [--out runs/bench/distributed.json] [--quick]

Measures, in one run:

1. synchronous SGD: a DDP training step (forward, backward with the gloo all-reduce, optimizer step)
   with 2 processes on half the batch each, against one process on the whole batch;
2. the gloo all-reduce of a float32 tensor against its size (2 processes, loopback);
3. asynchronous SGD on a Ray parameter server: updates per second and staleness for 2–4 real workers,
   on a 5.3k- and a 1.07M-parameter MLP (skipped without Ray: ``pip install 'descentlab[distributed]'``);
4. the simulator: 20,000 updates with 512 simulated workers on a d = 1000 quadratic.

What one machine shows: the code paths are the real ones (DDP and its hooks, gloo, Ray actors), so
correctness, overheads and staleness are real. What it cannot show: speed-ups — the workers share the
same cores and memory bandwidth (2 cores here), so 2 processes are at best as fast as one, and
loopback all-reduce times say nothing about a network; that is what the simulator is for.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

from descentlab import optim
from descentlab.distributed import (
    Exponential,
    NoisyQuadratic,
    TeacherMLP,
    async_sgd,
    data_parallel,
    launch,
    simulate_async,
)


def _median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def _step_fn(model, optimizer, x, y, loss):
    def step():
        optimizer.zero_grad()
        loss(model(x), y).backward()
        optimizer.step()

    return step


def sync_world(batch: int, hidden: int, repeats: int, sizes: list[int]) -> dict:
    """Runs in each of the 2 processes: DDP step time and all-reduce times."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    problem = TeacherMLP(hidden=hidden, batch_size=batch)
    x, y = problem.batch(0, 0)
    share = batch // world
    model = problem.model()
    ddp = data_parallel(model)
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = _median_time(_step_fn(ddp, optimizer, x[rank * share:(rank + 1) * share],
                                 y[rank * share:(rank + 1) * share], problem.loss), repeats)
    allreduce = {}
    for n in sizes:
        t = torch.ones(n)
        allreduce[n] = _median_time(lambda t=t: dist.all_reduce(t), repeats)
    return {"rank": rank, "step": step, "allreduce": allreduce,
            "params": sum(p.numel() for p in model.parameters())}


def one_process_step(batch: int, hidden: int, repeats: int, threads: int) -> float:
    problem = TeacherMLP(hidden=hidden, batch_size=batch)
    x, y = problem.batch(0, 0)
    model = problem.model()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _median_time(_step_fn(model, optimizer, x, y, problem.loss), repeats)
    finally:
        torch.set_num_threads(before)


def parameter_server(workers: list[int], hidden_sizes: list[int], updates: int) -> list[dict]:
    try:
        import ray
    except ImportError:
        print("Ray is not installed (pip install 'descentlab[distributed]'): parameter-server part skipped")
        return []
    ray.init(num_cpus=max(workers) + 1, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 2**20)
    rows = []
    try:
        for hidden in hidden_sizes:
            problem = TeacherMLP(hidden=hidden)
            params = sum(p.numel() for p in problem.model().parameters())
            for m in workers:
                sgd = partial(optim.SGD, lr=0.01)
                result = async_sgd(problem.model, problem.loss, problem.batch, sgd, m, updates)
                seconds = result.times[-1] - result.times[0]
                tau = result.staleness()
                rate = (len(result.times) - 1) / seconds
                rows.append({"params": params, "workers": m, "updates_per_s": rate,
                             "ms_per_update": 1000 * seconds / (len(result.times) - 1),
                             "mean_staleness": float(tau.mean()), "max_staleness": int(tau.max())})
    finally:
        ray.shutdown()
    return rows


def simulator(workers: int, updates: int, dim: int) -> dict:
    problem = NoisyQuadratic(dim)
    began = time.perf_counter()
    result = simulate_async(problem.gradient, problem.initial(), partial(optim.SGD, lr=1e-3),
                            num_workers=workers, updates=updates, compute_time=Exponential())
    seconds = time.perf_counter() - began
    return {"workers": workers, "updates": updates, "dim": dim, "seconds": seconds,
            "mean_staleness": float(result.staleness()[updates // 2:].mean())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench/distributed.json")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes (a smoke run)")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 10
    sizes = [2**10, 2**14, 2**18] if args.quick else [2**10, 2**14, 2**18, 2**20, 2**22]
    hidden = 256 if args.quick else 1024
    batch = 256
    cores = os.cpu_count() or 1
    out: dict = {"machine": {"cores": cores, "torch": torch.__version__, "load_average": os.getloadavg()[0]}}

    world = launch(sync_world, 2, (batch, hidden, repeats, sizes))
    single = one_process_step(batch, hidden, repeats, cores)
    single_thread = one_process_step(batch, hidden, repeats, 1)
    out["sync"] = {"params": world[0]["params"], "batch": batch, "one_process_step_s": single,
                   "one_process_one_thread_step_s": single_thread,
                   "ddp_step_s": max(r["step"] for r in world)}
    out["allreduce"] = {str(n): max(r["allreduce"][n] for r in world) for n in sizes}
    print(f"(load average {out['machine']['load_average']:.1f} on {cores} cores when the run started)")
    print(f"sync SGD, {world[0]['params']:,} parameters, global batch {batch}: one process "
          f"{1000 * single:.1f} ms/step ({cores} threads), {1000 * single_thread:.1f} ms/step (1 thread); "
          f"DDP on 2 processes (1 thread each) {1000 * out['sync']['ddp_step_s']:.1f} ms/step")
    print("gloo all-reduce, 2 processes on loopback (float32):")
    for n in sizes:
        seconds = out["allreduce"][str(n)]
        print(f"  {n:>9,} elements  {1e3 * seconds:8.2f} ms  ({4 * n / seconds / 1e9:.2f} GB/s)")

    out["parameter_server"] = parameter_server([2, 3, 4] if not args.quick else [2],
                                               [64] if args.quick else [64, 1024], 100 if args.quick else 300)
    for row in out["parameter_server"]:
        print(f"Ray PS, {row['params']:>9,} parameters, {row['workers']} workers: "
              f"{row['updates_per_s']:6.0f} "
              f"updates/s ({row['ms_per_update']:.1f} ms each), staleness mean {row['mean_staleness']:.2f}, "
              f"max {row['max_staleness']}")

    out["simulator"] = simulator(512, 5000 if args.quick else 20_000, 1000)
    s = out["simulator"]
    print(f"simulator: {s['updates']:,} updates, {s['workers']} workers, d = {s['dim']}: "
          f"{s['seconds']:.2f} s "
          f"(mean staleness {s['mean_staleness']:.0f})")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"written to {path}")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
