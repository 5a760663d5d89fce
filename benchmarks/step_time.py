"""Optimizer step time: descentlab (fast and eager paths) against torch.optim and the floor.

Everything is measured in one process run and reported as ratios, because absolute times
on shared machines mean little:

* ``x floor``  — time / (bytes the algorithm must move ÷ streaming bandwidth), the
  bandwidth measured in the same run with ``a.add_(b)`` on 64M-element float32 tensors
  (12 bytes per element);
* ``x torch``  — time / the peers' best path for the same algorithm (torch's for-loop, foreach and
  fused paths, or the reference package);
* first step — wall time of the first ``step()`` (includes compilation for the fast path;
  "cold" with an empty inductor cache, "warm" with the on-disk cache filled);
* transient  — peak extra memory during a step, in bytes per parameter (from the process's
  peak RSS, reset before each step), and the optimizer state in bytes per parameter.

Cases: (a) 1 tensor of 16.8M, (b) 200 tensors totalling 16.8M, (c) 2000 tensors of 1024.

    python benchmarks/step_time.py                 # everything (about 15 minutes on 2 cores)
    python benchmarks/step_time.py --optimizers Adam,Lion --cases b --steps 9
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# A fresh compile cache, so that the first compilation of each chain is really "cold".
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="descentlab-bench-"))

import torch  # noqa: E402

import descentlab.optim as dl  # noqa: E402

N_TOTAL = 1 << 24  # 16.8M parameters
CASES = {
    "a": [N_TOTAL],
    "b": [N_TOTAL // 200] * 200,
    "c": [1024] * 2000,
}


@dataclass
class Algo:
    """One algorithm: its descentlab and torch constructors and the bytes per parameter
    it must read and write at the floor (float32: parameter, gradient, state)."""

    name: str
    kwargs: dict
    floor_bytes: int
    torch_cls: str | None = None
    peers: dict[str, Callable] = field(default_factory=dict)


def _pytorch_optimizer_peers() -> dict[str, Callable]:
    try:
        import pytorch_optimizer as po
    except ImportError:
        return {}
    return {"Lion": lambda ps, kw: po.Lion(ps, lr=kw["lr"], betas=kw["betas"])}


ALGOS = [
    Algo("SGD", {"lr": 1e-3, "momentum": 0.9}, 20, "SGD"),
    Algo("Adagrad", {"lr": 1e-2}, 20, "Adagrad"),
    Algo("RMSprop", {"lr": 1e-2}, 20, "RMSprop"),
    Algo("Adadelta", {"lr": 1.0}, 28, "Adadelta"),
    Algo("Adam", {"lr": 1e-3}, 28, "Adam"),
    Algo("AdamW", {"lr": 1e-3}, 28, "AdamW"),
    Algo("Adamax", {"lr": 2e-3}, 28, "Adamax"),
    Algo("NAdam", {"lr": 2e-3}, 28, "NAdam"),
    Algo("Rprop", {"lr": 1e-2}, 28, "Rprop"),
    Algo("ASGD", {"lr": 1e-2}, 20, "ASGD"),
    Algo("Lion", {"lr": 1e-4, "betas": (0.9, 0.99)}, 20),
    Algo("HeavyBall", {"lr": 1e-3, "momentum": 0.9}, 20),
    Algo("DeltaBarDelta", {"lr": 1e-2}, 28),
    # issue 19: the rest of torch.optim (Muon is left out: it takes only matrices, the cases are vectors)
    Algo("RAdam", {"lr": 1e-3}, 28, "RAdam"),
    Algo("Adafactor", {"lr": 1e-2}, 12, "Adafactor"),  # vectors: its second moment is a full vector (+8)
    # modern optimizers; ``peers``: the reference package's optimizer for the same settings
    Algo("ScheduleFreeAdamW", {"lr": 2.5e-3}, 28,
         peers={"schedulefree": lambda ps, kw: (lambda o: o.train() or o)(  # it starts in eval mode
             __import__("schedulefree").AdamWScheduleFree(ps, **kw))}),
    Algo("ScheduleFreeSGD", {"lr": 1.0}, 20,
         peers={"schedulefree": lambda ps, kw: (lambda o: o.train() or o)(
             __import__("schedulefree").SGDScheduleFree(ps, **kw))}),
    Algo("Prodigy", {"lr": 1.0}, 40,  # reads p, g, m, v, s, p0; writes p, m, v, s
         peers={"prodigyopt": lambda ps, kw: __import__("prodigyopt").Prodigy(ps, **kw)}),
    Algo("Lamb", {"lr": 1e-3, "bias_correction": False}, 28,
         peers={"pytorch_optimizer": lambda ps, kw: __import__("pytorch_optimizer").Lamb(
             ps, lr=kw["lr"], weight_decouple=False, adam_debias=True)}),
    Algo("Lars", {"lr": 1e-3}, 20,
         peers={"pytorch_optimizer": lambda ps, kw: __import__("pytorch_optimizer").LARS(ps, **kw)}),
    Algo("SOAP", {"lr": 3e-3}, 28,  # vectors: SOAP is Adam on them (no factor); heavyball compiles its step
         # heavyball clears .grad in step() unless told not to (the benchmark reuses one gradient)
         peers={"heavyball": lambda ps, kw: __import__("heavyball").SOAP(ps, consume_grad=False, **kw)}),
    Algo("AdaBelief", {"lr": 1e-3}, 28,
         peers={"pytorch_optimizer": lambda ps, kw: __import__("pytorch_optimizer").AdaBelief(ps, **kw)}),
    Algo("Yogi", {"lr": 1e-2}, 28,
         peers={"pytorch_optimizer": lambda ps, kw: __import__("pytorch_optimizer").Yogi(ps, **kw)}),
]


def make_params(sizes: list[int], seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    params = []
    for n in sizes:
        p = torch.nn.Parameter(torch.randn(n, generator=g))
        p.grad = torch.randn(n, generator=g) * 1e-3
        params.append(p)
    return params


def peak_rss_reset() -> int:
    """Reset the kernel's peak-RSS counter and return the current RSS in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS") * 1024


def peak_rss() -> int:
    return _status_kb("VmHWM") * 1024


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def bandwidth_bytes_per_s(repeats: int = 9) -> float:
    """Streaming bandwidth of ``a.add_(b)`` on 64M-element float32 tensors (12 B/element)."""
    n = 1 << 26
    a, b = torch.randn(n), torch.randn(n)
    a.add_(b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.add_(b)
        times.append(time.perf_counter() - t0)
    return 12 * n / statistics.median(times)


@dataclass
class Measure:
    ms: float
    first_s: float
    transient: float  # bytes per parameter
    state: float  # bytes per parameter


def measure(make_opt: Callable, sizes: list[int], steps: int, warmup: int) -> Measure:
    params = make_params(sizes)
    numel = sum(sizes)
    opt = make_opt(params)
    base = peak_rss_reset()
    t0 = time.perf_counter()
    opt.step()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        opt.step()
    times, transient = [], 0
    for _ in range(steps):
        base = peak_rss_reset()
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
        transient = max(transient, peak_rss() - base)
    state_bytes = sum(
        v.numel() * v.element_size()
        for s in opt.state.values()
        for v in s.values()
        if isinstance(v, torch.Tensor) and v.dim() > 0
    )
    del opt, params
    gc.collect()
    return Measure(1e3 * statistics.median(times), first, transient / numel, state_bytes / numel)


def variants(algo: Algo) -> dict[str, Callable]:
    """descentlab's default path (no compilation: torch's fused kernel where one implements the chain,
    else the chain runner in pieces), its compiled fast path (``fast=True``) and its reference eager
    path (``fast=False``), against torch's paths and the reference packages."""
    out: dict[str, Callable] = {
        "descentlab default": lambda ps: getattr(dl, algo.name)(ps, **algo.kwargs),
        "descentlab fast": lambda ps: getattr(dl, algo.name)(ps, fast=True, **algo.kwargs),
        "descentlab eager": lambda ps: getattr(dl, algo.name)(ps, fast=False, **algo.kwargs),
    }
    if algo.torch_cls:
        cls = getattr(torch.optim, algo.torch_cls)
        out["torch for-loop"] = lambda ps: cls(ps, foreach=False, **algo.kwargs)
        out["torch foreach"] = lambda ps: cls(ps, foreach=True, **algo.kwargs)
        try:
            cls([torch.nn.Parameter(torch.zeros(1))], fused=True, **algo.kwargs)
            out["torch fused"] = lambda ps: cls(ps, fused=True, **algo.kwargs)
        except (TypeError, RuntimeError, ValueError):
            pass
    peer = _pytorch_optimizer_peers().get(algo.name)
    if peer is not None:
        out["pytorch_optimizer"] = lambda ps: peer(ps, algo.kwargs)
    for label, make in algo.peers.items():
        try:
            make([torch.nn.Parameter(torch.zeros(2, 2))], algo.kwargs)
        except ImportError:
            continue
        out[label] = lambda ps, make=make: make(ps, algo.kwargs)
    return out


def warm_first_step(algo: Algo, sizes: list[int]) -> float:
    """First step of a new fast-path optimizer once the compile cache is filled."""
    torch._dynamo.reset()
    from descentlab.optim import fast

    fast._COMPILED.clear()
    params = make_params(sizes)
    opt = getattr(dl, algo.name)(params, fast=True, **algo.kwargs)
    t0 = time.perf_counter()
    opt.step()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--optimizers", default=",".join(a.name for a in ALGOS))
    parser.add_argument("--cases", default="a,b,c")
    parser.add_argument("--steps", type=int, default=7, help="timed steps (median), >= 7")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-fast", action="store_true", help="skip the compiled fast path")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch intra-op threads (default: every core)")
    args = parser.parse_args(argv)
    wanted = {n.strip().lower() for n in args.optimizers.split(",")}
    algos = [a for a in ALGOS if a.name.lower() in wanted]
    unknown = wanted - {a.name.lower() for a in ALGOS}
    if unknown:
        parser.error(f"unknown optimizer(s) {sorted(unknown)}; choose from {[a.name for a in ALGOS]}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.steps < 7:
        parser.error(f"--steps must be >= 7 (a median of at least 7 steps), got {args.steps}")
    torch.set_num_threads(args.threads)
    bw = bandwidth_bytes_per_s()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"streaming bandwidth {bw / 1e9:.2f} GB/s (a.add_(b), 64M float32)\n")
    header = (f"{'optimizer':<14}{'case':<5}{'path':<18}{'ms/step':>9}{'x floor':>9}{'x torch':>9}"
              f"{'first s':>9}{'transient B/p':>15}{'state B/p':>11}")
    print(header)
    print("-" * len(header))
    for algo in algos:
        for case in args.cases.split(","):
            sizes = CASES[case.strip()]
            floor_ms = 1e3 * algo.floor_bytes * sum(sizes) / bw
            results: dict[str, Measure] = {}
            for label, make in variants(algo).items():
                if args.no_fast and label == "descentlab fast":
                    continue
                results[label] = measure(make, sizes, args.steps, args.warmup)
            torch_best = min(
                (m.ms for k, m in results.items() if not k.startswith("descentlab")), default=None
            )
            for label, m in results.items():
                vs_torch = f"{m.ms / torch_best:9.2f}" if torch_best else f"{'-':>9}"
                print(f"{algo.name:<14}{case:<5}{label:<18}{m.ms:9.2f}{m.ms / floor_ms:9.2f}{vs_torch}"
                      f"{m.first_s:9.2f}{m.transient:15.2f}{m.state:11.2f}")
            if not args.no_fast and case.strip() == "b":
                print(f"{algo.name:<14}{case:<5}{'fast, warm cache':<18}{'':>27}"
                      f"{warm_first_step(algo, sizes):9.2f}")
            print(f"{algo.name:<14}{case:<5}{'floor':<18}{floor_ms:9.2f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
