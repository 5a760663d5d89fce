"""A discrete-event simulator of asynchronous and synchronous SGD: 2 … 512 workers on one core.

What staleness does can be seen without a cluster. Each worker repeatedly reads the parameters,
computes for a random time and pushes its gradient; the simulator keeps the workers' finish times in
a heap, so an event costs O(log M), and applies the pushes with the parameter server's own update
code (:class:`~descentlab.distributed.server.ServerCore`) — the same code the Ray actor runs.

Compute-time models (``sample(rng, n)`` → ``n`` times): :class:`Constant`, :class:`Exponential`,
:class:`ShiftedExponential` (a fixed cost plus exponential jitter), :class:`Pareto` (heavy tail).
``stragglers=n, slowdown=f`` makes the last ``n`` workers ``f`` times slower.

* :func:`simulate_async` — asynchronous SGD. With M always-busy workers of equal speed, on average
  M − 1 other updates land while a worker computes, so the mean staleness is M − 1 (Little's law).
* :func:`simulate_sync` — synchronous SGD: one update per round with the mean of the workers'
  gradients; a round lasts as long as its slowest worker ("the whole system is limited to the
  speed of the slowest worker", notes 002), unless ``backup=b`` drops the slowest b of M
  (Chen et al. 2016, backup workers).
* :func:`simulate_log` — delayed SGD driven by a recorded event log (e.g. a real server's).
* :class:`NoisyQuadratic` — the test problem: ``L(w) = ½ Σ h_i (w_i − w*_i)²`` with gradient noise.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..validation import check_callable, check_int, check_number
from .result import Result
from .server import Event, ServerCore

__all__ = [
    "Constant",
    "Exponential",
    "ShiftedExponential",
    "Pareto",
    "COMPUTE_TIMES",
    "finish_events",
    "NoisyQuadratic",
    "simulate_async",
    "simulate_sync",
    "simulate_log",
]


# -- compute-time models ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Constant:
    """Every gradient takes ``time``."""

    time: float = 1.0

    def __post_init__(self) -> None:
        check_number("time", self.time, low=0.0, low_open=True)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.time))


@dataclass(frozen=True)
class Exponential:
    """Exponentially distributed times with mean ``mean`` (memoryless: the classic queueing model)."""

    mean: float = 1.0

    def __post_init__(self) -> None:
        check_number("mean", self.mean, low=0.0, low_open=True)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)


@dataclass(frozen=True)
class ShiftedExponential:
    """``shift + Exponential(mean)``: a fixed cost plus random jitter (a common fit of real step times)."""

    shift: float = 1.0
    mean: float = 0.2

    def __post_init__(self) -> None:
        check_number("shift", self.shift, low=0.0)
        check_number("mean", self.mean, low=0.0, low_open=True)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.shift + rng.exponential(self.mean, n)


@dataclass(frozen=True)
class Pareto:
    """Pareto times ``scale·X``, ``P(X > x) = x^(−alpha)`` for x ≥ 1: a heavy tail of slow steps
    (mean ``scale·alpha/(alpha − 1)`` for alpha > 1)."""

    alpha: float = 2.5
    scale: float = 1.0

    def __post_init__(self) -> None:
        check_number("alpha", self.alpha, low=0.0, low_open=True)
        check_number("scale", self.scale, low=0.0, low_open=True)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.scale * (1.0 + rng.pareto(self.alpha, n))


#: the compute-time models by name (the command line's ``--compute-time``)
COMPUTE_TIMES = {
    "constant": Constant,
    "exponential": Exponential,
    "shifted_exponential": ShiftedExponential,
    "pareto": Pareto,
}


def _check_workers(num_workers: int, stragglers: int, slowdown: float) -> None:
    check_int("num_workers", num_workers, low=1)
    check_int("stragglers", stragglers, low=0, high=num_workers)
    check_number("slowdown", slowdown, low=1.0)


def _speeds(num_workers: int, stragglers: int, slowdown: float) -> np.ndarray:
    factors = np.ones(num_workers)
    if stragglers:
        factors[num_workers - stragglers :] = slowdown
    return factors


def finish_events(
    num_workers: int,
    compute_time=None,
    *,
    stragglers: int = 0,
    slowdown: float = 10.0,
    seed: int = 0,
) -> Iterator[tuple[float, int]]:
    """The asynchronous clock: an endless stream of ``(time, worker)``, the moments workers finish a
    gradient, in time order. Every worker starts at time 0 and starts its next gradient as soon as
    it has pushed the last one (reading and pushing take no time)."""
    compute_time = Exponential() if compute_time is None else compute_time
    _check_workers(num_workers, stragglers, slowdown)
    rng = np.random.default_rng(seed)
    factors = _speeds(num_workers, stragglers, slowdown)
    block = max(64, 4 * num_workers)
    draws, used = compute_time.sample(rng, block), 0

    def draw() -> float:
        nonlocal draws, used
        if used == len(draws):
            draws, used = compute_time.sample(rng, block), 0
        used += 1
        return float(draws[used - 1])

    heap = [(draw() * factors[m], m) for m in range(num_workers)]
    heapq.heapify(heap)
    while True:
        t, m = heap[0]
        yield t, m
        heapq.heapreplace(heap, (t + draw() * factors[m], m))


# -- the test problem ---------------------------------------------------------------------------------
class NoisyQuadratic:
    """``L(w) = ½ Σᵢ hᵢ (wᵢ − w*ᵢ)²`` in dimension ``d``, curvatures ``hᵢ`` log-spaced from
    ``L/condition`` to ``L``; a worker's gradient is ``h ⊙ (w − w*) + noise·ξ`` with ``ξ ~ N(0, I)``
    drawn from ``(seed, worker, k)``, so any run, replay or reference sees the same noise.
    ``w*`` is drawn from the seed; the start is ``w = 0``."""

    def __init__(
        self, d: int = 100, *, L: float = 1.0, condition: float = 10.0, noise: float = 0.0, seed: int = 0
    ) -> None:
        self.d = check_int("d", d, low=1)
        self.L = check_number("L", L, low=0.0, low_open=True)
        check_number("condition", condition, low=1.0)
        self.noise = check_number("noise", noise, low=0.0)
        self.seed = check_int("seed", seed, low=0)
        self.h = torch.tensor(np.geomspace(L / condition, L, d) if d > 1 else [L], dtype=torch.float64)
        self.optimum = torch.tensor(np.random.default_rng(seed).normal(size=d), dtype=torch.float64)

    def initial(self) -> list[Tensor]:
        return [torch.zeros(self.d, dtype=torch.float64)]

    def gradient(self, worker: int, k: int, params: Sequence[Tensor]) -> list[Tensor]:
        g = self.h * (params[0] - self.optimum)
        if self.noise:
            xi = np.random.default_rng((self.seed, worker, k)).standard_normal(self.d)
            g = g + self.noise * torch.from_numpy(xi)
        return [g]

    def loss(self, params: Sequence[Tensor]) -> float:
        return float(0.5 * (self.h * (params[0] - self.optimum) ** 2).sum())

    def hessian_diagonal(self, w: Tensor) -> Tensor:
        """The exact curvature: delay compensation's reference (``DelayCompensation(hessian_diagonal=…)``)."""
        return self.h.to(w.dtype)


# -- drivers ------------------------------------------------------------------------------------------
@contextmanager
def one_thread():
    """Run the block with one intra-op thread (the simulator is sequential; with several threads
    tiny kernels spend their time waking threads — 20× slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _one_threaded(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with one_thread():
            return function(*args, **kwargs)

    return wrapper


GradFn = Callable[[int, int, Sequence[Tensor]], Sequence[Tensor]]


def _losses(loss_fn, params, fallback: float) -> float:
    return float(loss_fn([p.detach() for p in params])) if loss_fn is not None else fallback


@_one_threaded
def simulate_async(
    grad_fn: GradFn,
    params: Iterable[Tensor],
    optimizer_fn: Callable[[list[Tensor]], torch.optim.Optimizer],
    *,
    num_workers: int,
    updates: int,
    compute_time=None,
    stragglers: int = 0,
    slowdown: float = 10.0,
    lr_policy: str = "constant",
    delay_compensation: float | None = None,
    hessian_diagonal: Callable[[Tensor], Tensor] | None = None,
    max_staleness: int | None = None,
    loss_fn: Callable[[Sequence[Tensor]], float] | None = None,
    seed: int = 0,
    stop_if_diverged: bool = True,
) -> Result:
    """Asynchronous SGD with ``num_workers`` simulated workers until ``updates`` updates are applied.

    ``grad_fn(worker, k, params) -> grads``: worker ``worker``'s ``k``-th gradient at ``params``
    (``grads`` may also be a pair ``(grads, loss)``). ``loss_fn(params) -> float``, if given, is
    recorded after every update (else the gradient's loss when ``grad_fn`` gives one, else NaN).
    The server is :class:`~descentlab.distributed.server.ServerCore` with ``lr_policy``,
    ``delay_compensation``, ``hessian_diagonal`` and ``max_staleness``; the clock is
    :func:`finish_events`. With ``stop_if_diverged`` the run ends early once the loss is not finite.
    """
    check_callable("grad_fn", grad_fn, "grad_fn(worker, k, params) -> grads")
    check_int("updates", updates, low=1)
    clock = finish_events(num_workers, compute_time, stragglers=stragglers, slowdown=slowdown, seed=seed)
    core = ServerCore(
        params, optimizer_fn, lr_policy=lr_policy, delay_compensation=delay_compensation,
        hessian_diagonal=hessian_diagonal, max_staleness=max_staleness,
    )
    reads = [core.read(m) for m in range(num_workers)]
    counts = [0] * num_workers
    result = Result(params=[], log=core.log)
    for t, m in clock:
        version, values = reads[m]
        out = grad_fn(m, counts[m], values)
        grads, batch_loss = (out if isinstance(out, tuple) else (out, math.nan))
        event = core.push(m, counts[m], version, grads)
        counts[m] += 1
        reads[m] = core.read(m)
        if event.applied:
            result.times.append(t)
            result.losses.append(_losses(loss_fn, core.params, batch_loss))
            known = loss_fn is not None or not math.isnan(batch_loss)
            if stop_if_diverged and known and not math.isfinite(result.losses[-1]):
                break
            if core.version == updates:
                break
    result.params = core.parameters()
    return result


@_one_threaded
def simulate_sync(
    grad_fn: GradFn,
    params: Iterable[Tensor],
    optimizer_fn: Callable[[list[Tensor]], torch.optim.Optimizer],
    *,
    num_workers: int,
    rounds: int,
    compute_time=None,
    stragglers: int = 0,
    slowdown: float = 10.0,
    backup: int = 0,
    loss_fn: Callable[[Sequence[Tensor]], float] | None = None,
    seed: int = 0,
) -> Result:
    """Synchronous SGD: each round every worker computes a gradient at the same parameters; the
    server averages the fastest ``num_workers − backup`` of them and applies one update. A round
    lasts until the slowest worker it waits for has finished. Every update has staleness 0; the log
    records one event per gradient used."""
    check_callable("grad_fn", grad_fn, "grad_fn(worker, k, params) -> grads")
    check_int("rounds", rounds, low=1)
    _check_workers(num_workers, stragglers, slowdown)
    check_int("backup", backup, low=0, high=num_workers - 1)
    compute_time = Exponential() if compute_time is None else compute_time
    rng = np.random.default_rng(seed)
    factors = _speeds(num_workers, stragglers, slowdown)
    core = ServerCore(params, optimizer_fn)
    result = Result(params=[], log=[])
    now, kept = 0.0, num_workers - backup
    for r in range(rounds):
        times = compute_time.sample(rng, num_workers) * factors
        fastest = np.argsort(times, kind="stable")[:kept]
        now += float(times[fastest[-1]])
        version, values = core.read(-1)
        total, losses = None, []
        for m in sorted(int(i) for i in fastest):
            out = grad_fn(m, r, values)
            grads, batch_loss = (out if isinstance(out, tuple) else (out, math.nan))
            losses.append(batch_loss)
            total = list(grads) if total is None else [a + b for a, b in zip(total, grads)]
            result.log.append(Event(m, r, version, version))
        core.push(-1, r, version, [g / kept for g in total])  # one update with the mean (τ = 0)
        result.times.append(now)
        result.losses.append(_losses(loss_fn, core.params, float(np.mean(losses))))
        if not math.isfinite(result.losses[-1]):
            break
    result.params = core.parameters()
    return result


@_one_threaded
def simulate_log(
    grad_fn: GradFn,
    params: Iterable[Tensor],
    optimizer_fn: Callable[[list[Tensor]], torch.optim.Optimizer],
    log: Sequence[Event],
    *,
    lr_policy: str = "constant",
    delay_compensation: float | None = None,
    hessian_diagonal: Callable[[Tensor], Tensor] | None = None,
    max_staleness: int | None = None,
    loss_fn: Callable[[Sequence[Tensor]], float] | None = None,
) -> Result:
    """Delayed SGD driven by a recorded event log (a real server's, or one written by hand): each
    event ``(worker, k, read_version)`` is replayed through the server's update code, its gradient
    recomputed by ``grad_fn`` at the parameters of ``read_version``. With the server's own
    settings this reproduces its run bit for bit (:func:`~descentlab.distributed.replay` does this
    for models)."""
    check_callable("grad_fn", grad_fn, "grad_fn(worker, k, params) -> grads")
    core = ServerCore(
        params, optimizer_fn, lr_policy=lr_policy, delay_compensation=delay_compensation,
        hessian_diagonal=hessian_diagonal, max_staleness=max_staleness,
    )
    result = Result(params=[], log=core.log)
    for event, version, values in _replayed_reads(core, log):
        out = grad_fn(event.worker, event.k, values)
        grads, batch_loss = (out if isinstance(out, tuple) else (out, math.nan))
        pushed = core.push(event.worker, event.k, version, grads)
        if pushed != event:
            raise ValueError(
                f"the log does not replay: event {event} became {pushed} (another max_staleness, or "
                "events out of order?)"
            )
        if pushed.applied:
            result.times.append(float(len(result.times)))
            result.losses.append(_losses(loss_fn, core.params, batch_loss))
    result.params = core.parameters()
    return result


def _replayed_reads(core: ServerCore, log: Sequence[Event]):
    """Yield ``(event, read_version, parameters read)`` for each logged push, performing each
    worker's read on ``core`` at the version it happened (reads are not logged: a worker's read
    is whatever version its next push names)."""
    log = list(log)
    pending: dict[int, list[int]] = {}
    for i, event in enumerate(log):
        if not isinstance(event, Event):
            raise ValueError(f"log[{i}] must be an Event, got {type(event).__name__}")
        pending.setdefault(event.worker, []).append(i)
    cursor = {worker: 0 for worker in pending}
    held: dict[int, tuple[int, list[Tensor]]] = {}

    def read_due() -> None:
        for worker, indices in pending.items():
            if worker in held or cursor[worker] >= len(indices):
                continue
            wanted = log[indices[cursor[worker]]].read_version
            if wanted == core.version:
                held[worker] = core.read(worker)
            elif wanted < core.version:
                raise ValueError(
                    f"the log does not replay: worker {worker} read version {wanted} after version "
                    f"{core.version} existed"
                )

    read_due()
    for event in log:
        if event.worker not in held:
            raise ValueError(f"the log does not replay: {event} pushes before its read at version "
                             f"{event.read_version}")
        version, values = held.pop(event.worker)
        yield event, version, values
        cursor[event.worker] += 1
        read_due()

