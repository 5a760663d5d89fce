"""Optimizer steps on real models: descentlab's default path against torch.optim's best path.

For every optimizer torch also has (and Lion / HeavyBall against their reference), on five
models — the digits MLP (85k parameters), an MLP of 1.1M, a small CNN, a char-LSTM and a
Transformer-style model of ~10M parameters in ~100 tensors (embeddings, LayerNorm,
attention) — this measures, in one process, interleaved (every repeat runs every path once,
so machine noise hits them alike):

* ``step ms``  — ``opt.step()`` alone (forward and backward outside the timer), median over
  repeats of the median over steps, with the inter-quartile range across repeats;
* ``train ms`` — the whole training step (``zero_grad`` + forward + backward + step);
* ``x best``   — step time ÷ torch's best path for the same algorithm (for-loop, foreach or
  fused, whichever is fastest in this run; the reference package for the others);
* ``first s``  — the first ``step()`` of a new optimizer in a new process, with an empty
  compile cache ("cold") and with the cache the cold run filled ("warm"); only descentlab
  compiles, so only its default path is timed this way;
* ``peak MB``  — extra resident memory during a step (peak RSS minus RSS before it).

    python benchmarks/train_step.py                            # everything (~15 min on 2 cores)
    python benchmarks/train_step.py --models mlp,cnn --optimizers Adam,SGD --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import descentlab.optim as dl

# -- models -------------------------------------------------------------------------------------


class CharLSTM(nn.Module):
    def __init__(self, vocab: int = 96, embed: int = 64, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x):
        return self.head(self.lstm(self.embed(x))[0])


class TinyTransformer(nn.Module):
    """A GPT-style encoder stack: token + position embeddings, 8 pre-norm blocks, a head."""

    def __init__(
        self, vocab: int = 4096, d: int = 288, layers: int = 8, heads: int = 4, seq: int = 16
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.position = nn.Parameter(torch.zeros(seq, d))
        block = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.embed(x) + self.position)))


@dataclass
class Workload:
    name: str
    build: Callable[[], nn.Module]
    batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _classes(logits, y):
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _mlp(*widths: int) -> nn.Module:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def _features(*shape: int):
    return lambda g: (torch.randn(*shape, generator=g), torch.randint(0, 10, (shape[0],), generator=g))


def _tokens(vocab: int, batch: int, seq: int):
    return lambda g: (torch.randint(0, vocab, (batch, seq), generator=g),
                      torch.randint(0, vocab, (batch, seq), generator=g))


WORKLOADS = {
    "mlp": Workload("digits MLP 64-256-256-10", lambda: _mlp(64, 256, 256, 10), _features(64, 64), _classes),
    "mlp1m": Workload("MLP 64-1024-1024-10", lambda: _mlp(64, 1024, 1024, 10), _features(64, 64), _classes),
    "cnn": Workload("CNN (2 conv, 2 linear) on 28x28", _cnn, _features(64, 1, 28, 28), _classes),
    "lstm": Workload("char-LSTM (2 x 256)", CharLSTM, _tokens(96, 64, 32), _classes),
    "transformer": Workload("Transformer 8 x 288", TinyTransformer, _tokens(4096, 8, 16), _classes),
}

# -- optimizers ---------------------------------------------------------------------------------


@dataclass
class Algo:
    name: str
    kwargs: dict
    torch_name: str | None = None  # the same algorithm in torch.optim
    reference: Callable | None = None  # otherwise: (params, kwargs) -> the reference package's optimizer


def _lion_reference(params, kwargs):
    import pytorch_optimizer

    return pytorch_optimizer.Lion(params, lr=kwargs["lr"], betas=kwargs["betas"])


def _heavy_ball_reference(params, kwargs):  # the same iterates as torch's SGD with momentum (tested)
    return torch.optim.SGD(params, lr=kwargs["lr"], momentum=kwargs["momentum"], fused=True)


ALGOS = [
    Algo("SGD", {"lr": 1e-2, "momentum": 0.9, "nesterov": True}, "SGD"),
    Algo("Adagrad", {"lr": 1e-2}, "Adagrad"),
    Algo("RMSprop", {"lr": 1e-3}, "RMSprop"),
    Algo("Adadelta", {"lr": 1.0}, "Adadelta"),
    Algo("Adam", {"lr": 1e-3}, "Adam"),
    Algo("AdamW", {"lr": 1e-3}, "AdamW"),
    Algo("Adamax", {"lr": 2e-3}, "Adamax"),
    Algo("NAdam", {"lr": 2e-3}, "NAdam"),
    Algo("Rprop", {"lr": 1e-3}, "Rprop"),
    Algo("ASGD", {"lr": 1e-2}, "ASGD"),
    Algo("Lion", {"lr": 1e-4, "betas": (0.9, 0.99)}, reference=_lion_reference),
    Algo("HeavyBall", {"lr": 1e-2, "momentum": 0.9}, reference=_heavy_ball_reference),
]


def paths(algo: Algo) -> dict[str, Callable]:
    """Every way to run ``algo``: descentlab's default and torch's (or the reference's) paths."""
    out: dict[str, Callable] = {"descentlab": lambda ps: getattr(dl, algo.name)(ps, **algo.kwargs)}
    if algo.torch_name:
        cls = getattr(torch.optim, algo.torch_name)
        out["torch for-loop"] = lambda ps: cls(ps, foreach=False, **algo.kwargs)
        out["torch foreach"] = lambda ps: cls(ps, foreach=True, **algo.kwargs)
        if "fused" in cls.__init__.__code__.co_varnames:
            out["torch fused"] = lambda ps: cls(ps, fused=True, **algo.kwargs)
    elif algo.reference is not None:
        try:
            algo.reference([nn.Parameter(torch.zeros(1))], algo.kwargs)
            out["reference"] = lambda ps: algo.reference(ps, algo.kwargs)
        except ImportError:
            pass
    return out


# -- measuring ----------------------------------------------------------------------------------


def peak_rss_reset() -> int:
    """Reset the kernel's peak-RSS counter (Linux) and return the current RSS in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS") * 1024


def _status_kb(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Runner:
    """One (model, optimizer) pair ready to step."""

    model: nn.Module
    opt: torch.optim.Optimizer
    workload: Workload
    generator: torch.Generator

    def backward(self) -> None:
        x, y = self.workload.batch(self.generator)
        self.opt.zero_grad()
        self.workload.loss(self.model(x), y).backward()


def make_runner(workload: Workload, make_opt: Callable) -> Runner:
    torch.manual_seed(0)
    model = workload.build()
    runner = Runner(model, make_opt(model.parameters()), workload, torch.Generator().manual_seed(1))
    runner.backward()
    return runner


def time_steps(runner: Runner, steps: int) -> tuple[float, float, float]:
    """Median ``step()`` time (ms), median whole training step (ms), peak extra memory (MB)."""
    step_times, train_times, peak = [], [], 0
    for _ in range(steps):
        t0 = time.perf_counter()
        runner.backward()
        t1 = time.perf_counter()
        base = peak_rss_reset()
        runner.opt.step()
        t2 = time.perf_counter()
        peak = max(peak, _status_kb("VmHWM") * 1024 - base)
        step_times.append(t2 - t1)
        train_times.append(t2 - t0)
    return 1e3 * statistics.median(step_times), 1e3 * statistics.median(train_times), peak / 2**20


def first_step_in_new_process(model: str, algo: str, cache_dir: str) -> float:
    """Seconds of the first ``step()`` of descentlab's default path in a fresh process."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache_dir}
    out = subprocess.run(
        [sys.executable, __file__, "--first-step", f"{model}:{algo}"],
        capture_output=True, text=True, env=env, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["first_step_s"]


def _first_step(spec: str) -> int:
    model, name = spec.split(":")
    torch.set_num_threads(1)
    algo = next(a for a in ALGOS if a.name == name)
    torch.manual_seed(0)
    runner = make_runner(WORKLOADS[model], paths(algo)["descentlab"])
    t0 = time.perf_counter()
    runner.opt.step()
    print(json.dumps({"first_step_s": time.perf_counter() - t0}))
    return 0


def iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--models", default=",".join(WORKLOADS))
    parser.add_argument("--optimizers", default=",".join(a.name for a in ALGOS))
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (median, IQR over them)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per repeat (median)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-first-step", action="store_true", help="skip the cold/warm first-step runs")
    parser.add_argument("--first-step", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.first_step:
        return _first_step(args.first_step)
    models = [m.strip() for m in args.models.split(",")]
    wanted = {n.strip().lower() for n in args.optimizers.split(",")}
    algos = [a for a in ALGOS if a.name.lower() in wanted]
    if unknown := [m for m in models if m not in WORKLOADS]:
        parser.error(f"unknown model(s) {unknown}; choose from {list(WORKLOADS)}")
    if unknown := sorted(wanted - {a.name.lower() for a in ALGOS}):
        parser.error(f"unknown optimizer(s) {unknown}; choose from {[a.name for a in ALGOS]}")
    for name in ("threads", "repeats", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch as listed, "
          f"{args.repeats} interleaved repeats x {args.steps} steps\n")
    header = (f"{'model':<12}{'optimizer':<10}{'path':<16}{'step ms':>9}{'IQR':>7}{'x best':>8}"
              f"{'train ms':>10}{'peak MB':>9}{'first s (cold / warm)':>24}")
    print(header)
    print("-" * len(header))
    for model in models:
        workload = WORKLOADS[model]
        numel = sum(p.numel() for p in workload.build().parameters())
        tensors = len(list(workload.build().parameters()))
        print(f"# {model}: {workload.name}, {numel / 1e6:.2f}M parameters in {tensors} tensors")
        for algo in algos:
            runners = {label: make_runner(workload, make) for label, make in paths(algo).items()}
            for runner in runners.values():  # warm-up, compilation included
                time_steps(runner, 2)
            samples: dict[str, list[tuple[float, float, float]]] = {label: [] for label in runners}
            for _ in range(args.repeats):
                for label, runner in runners.items():
                    samples[label].append(time_steps(runner, args.steps))
            step = {label: statistics.median(s[0] for s in rows) for label, rows in samples.items()}
            peers = [ms for label, ms in step.items() if label != "descentlab"]
            best = min(peers) if peers else None
            first = ""
            if not args.no_first_step:
                with tempfile.TemporaryDirectory(prefix="descentlab-cache-") as cache:
                    cold = first_step_in_new_process(model, algo.name, cache)
                    warm = first_step_in_new_process(model, algo.name, cache)
                first = f"{cold:9.2f} / {warm:.2f}"
            for label, rows in samples.items():
                ratio = f"{step[label] / best:8.2f}" if best else f"{'-':>8}"
                train = statistics.median(r[1] for r in rows)
                peak = max(r[2] for r in rows)
                print(f"{model:<12}{algo.name:<10}{label:<16}{step[label]:9.3f}"
                      f"{iqr([r[0] for r in rows]):7.3f}{ratio}{train:10.2f}{peak:9.1f}"
                      f"{first if label == 'descentlab' else '':>24}")
            sys.stdout.flush()
            del runners
    return 0


if __name__ == "__main__":
    sys.exit(main())
