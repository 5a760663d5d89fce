"""Asynchronous SGD on a parameter server: a Ray actor owns the parameters and any descentlab optimizer.

Notes 002: "a central server holds the model parameters. The workers fetch the parameters from the
parameter server and use them to compute gradients, which are then sent to the parameter server so
the weights can be updated" — while other workers have moved the parameters on, so each gradient is
τ updates stale. Here the server is a Ray actor (one process, pushes applied one at a time) running
:class:`~descentlab.distributed.server.ServerCore`, and each worker a Ray task looping
``push(gradient) → read(parameters) → compute``; a push and the next read are one round trip.
Ray is an optional dependency: ``pip install 'descentlab[distributed]'``.

* ``lr_policy="staleness_aware"``: η/τ (Zhang et al. 2016); ``delay_compensation=λ``: DC-ASGD
  (Zheng et al. 2017); ``max_staleness=s``: pushes with τ > s are dropped (bounded staleness).
  The first two are transforms (:mod:`descentlab.transforms.staleness`) joined to the optimizer's
  chain, so they compose with momentum, Adam, clipping…
* The server logs every push as ``Event(worker, k, read_version, version, applied)``;
  :func:`replay` re-runs the log in one process with the same update code and reproduces the
  server's parameters bit for bit.
* ``backend="simulate"`` runs the same workers and server in this process on the simulator's clock
  (:mod:`~descentlab.distributed.simulate`): no Ray needed.

On a cluster call ``ray.init(address="auto")`` before :func:`async_sgd` (it uses the running Ray
instance; without one it starts a local one). One server actor serialises every update: past a few
workers it becomes the bottleneck, and the documented path further is to shard the server by
parameter block (one actor per block, each worker pushing each block's gradient to its actor).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..validation import check_callable, check_choice, check_int
from .result import GradientWorker, Result
from .server import Event, ServerCore
from .simulate import _replayed_reads, finish_events, one_thread

__all__ = ["ParameterServer", "async_sgd", "replay", "require_ray", "RAY_EXTRA"]

RAY_EXTRA = "pip install 'descentlab[distributed]'"


def require_ray():
    """The ``ray`` module, or an ``ImportError`` whose one line names the extra to install."""
    try:
        import ray
    except ImportError:
        raise ImportError(f"the Ray backend needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


class ParameterServer:
    """The server's code in the Ray actor (create it with ``ray.remote(ParameterServer).remote(...)``;
    :func:`async_sgd` does). Its methods are :class:`ServerCore`'s messages, with a stop after
    ``updates`` applied updates."""

    def __init__(
        self, params: Sequence[Tensor], optimizer_fn: Callable, updates: int, **options: Any
    ) -> None:
        self.core = ServerCore(params, optimizer_fn, **options)
        self.updates = updates
        self.losses: list[float] = []
        self.times: list[float] = []
        self.start = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.core.version >= self.updates

    def read(self, worker: int) -> tuple[int, list[Tensor], bool]:
        version, values = self.core.read(worker)
        return version, values, self.done

    def push_and_read(
        self, worker: int, k: int, read_version: int, grads: list[Tensor], loss: float
    ) -> tuple[int, list[Tensor], bool]:
        """Apply a push (unless the run is over), then the worker's next read."""
        if not self.done:
            event = self.core.push(worker, k, read_version, grads)
            if event.applied:
                self.losses.append(loss)
                self.times.append(time.perf_counter() - self.start)
        return self.read(worker)

    def result(self) -> tuple[list[Tensor], list[Event], list[float], list[float]]:
        return self.core.parameters(), list(self.core.log), self.times, self.losses


def _worker_loop(server, worker: int, model_fn, loss_fn, batch_fn) -> int:
    """One Ray worker: compute, push, read, until the server has applied enough updates."""
    import ray

    torch.set_num_threads(1)
    compute = GradientWorker(model_fn, loss_fn, batch_fn)
    version, values, done = ray.get(server.read.remote(worker))
    k = 0
    while not done:
        grads, loss = compute(worker, k, values)
        version, values, done = ray.get(server.push_and_read.remote(worker, k, version, grads, loss))
        k += 1
    return k


def _check_functions(model_fn, loss_fn, batch_fn, optimizer_fn) -> None:
    check_callable("model_fn", model_fn, "model_fn() -> torch.nn.Module")
    check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> loss")
    check_callable("batch_fn", batch_fn, "batch_fn(worker, k) -> (inputs, targets)")
    check_callable("optimizer_fn", optimizer_fn, "optimizer_fn(params) -> torch.optim.Optimizer")


def async_sgd(
    model_fn: Callable[[], nn.Module],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batch_fn: Callable[[int, int], tuple[Any, Tensor]],
    optimizer_fn: Callable[[list[Tensor]], torch.optim.Optimizer],
    num_workers: int,
    updates: int,
    *,
    backend: str = "ray",
    lr_policy: str = "constant",
    delay_compensation: float | None = None,
    max_staleness: int | None = None,
    compute_time=None,
    seed: int = 0,
) -> Result:
    """Asynchronous SGD with ``num_workers`` workers until the server has applied ``updates`` updates.

    ``model_fn()`` builds the model (the server's initial parameters are those of one call; every
    worker builds its own copy); worker ``m``'s ``k``-th batch is ``batch_fn(m, k)`` and its loss
    ``loss_fn(model(inputs), targets)``; ``optimizer_fn(params)`` builds the server's optimizer.
    Functions must be picklable (defined in a module) for ``backend="ray"``. ``backend="simulate"``
    runs the same code in this process on the simulator's clock (``compute_time``, ``seed``; see
    :func:`~descentlab.distributed.simulate.finish_events`); its ``times`` are simulated.
    """
    _check_functions(model_fn, loss_fn, batch_fn, optimizer_fn)
    check_int("num_workers", num_workers, low=1)
    check_int("updates", updates, low=1)
    check_choice("backend", backend, ("ray", "simulate"))
    options = {
        "lr_policy": lr_policy, "delay_compensation": delay_compensation, "max_staleness": max_staleness
    }
    initial = GradientWorker(model_fn, loss_fn, batch_fn).initial_parameters()
    if backend == "simulate":
        with one_thread():
            return _simulated(model_fn, loss_fn, batch_fn, optimizer_fn, num_workers, updates, initial,
                              options, compute_time, seed)

    ray = require_ray()
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    cpus = float(ray.available_resources().get("CPU", 1.0))
    share = max(0.01, min(1.0, cpus / (num_workers + 1)))
    actor = ray.remote(num_cpus=share)(ParameterServer).remote(initial, optimizer_fn, updates, **options)
    loop = ray.remote(num_cpus=share)(_worker_loop)
    ray.get([loop.remote(actor, m, model_fn, loss_fn, batch_fn) for m in range(num_workers)])
    params, log, times, losses = ray.get(actor.result.remote())
    ray.kill(actor)
    return Result(params, log, times, losses)


def _simulated(model_fn, loss_fn, batch_fn, optimizer_fn, num_workers, updates, initial, options,
               compute_time, seed) -> Result:
    """:func:`async_sgd`'s workers and server in this process, on the simulator's clock."""
    compute = GradientWorker(model_fn, loss_fn, batch_fn)
    server = ParameterServer(initial, optimizer_fn, updates, **options)
    reads = [server.read(m) for m in range(num_workers)]
    counts = [0] * num_workers
    for t, m in finish_events(num_workers, compute_time, seed=seed):
        version, values, _ = reads[m]
        grads, loss = compute(m, counts[m], values)
        applied = len(server.times)
        reads[m] = server.push_and_read(m, counts[m], version, grads, loss)
        if len(server.times) > applied:
            server.times[-1] = t  # simulated time, not this process's wall clock
        counts[m] += 1
        if server.done:
            break
    return Result(*server.result())


def replay(
    log: Sequence[Event],
    model_fn: Callable[[], nn.Module],
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batch_fn: Callable[[int, int], tuple[Any, Tensor]],
    optimizer_fn: Callable[[list[Tensor]], torch.optim.Optimizer],
    *,
    lr_policy: str = "constant",
    delay_compensation: float | None = None,
    max_staleness: int | None = None,
) -> Result:
    """Re-run a server's event log in this process: every push's gradient is recomputed at the
    parameters of its read version and applied with the server's update code, so with the same
    functions and options the result's ``params`` equal the server's bit for bit."""
    _check_functions(model_fn, loss_fn, batch_fn, optimizer_fn)
    compute = GradientWorker(model_fn, loss_fn, batch_fn)
    core = ServerCore(
        compute.initial_parameters(), optimizer_fn, lr_policy=lr_policy,
        delay_compensation=delay_compensation, max_staleness=max_staleness,
    )
    result = Result(params=[], log=core.log)
    with one_thread():
        for event, version, values in _replayed_reads(core, log):
            grads, loss = compute(event.worker, event.k, values)
            pushed = core.push(event.worker, event.k, version, grads)
            if pushed != event:
                raise ValueError(f"the log does not replay: event {event} became {pushed} (other options?)")
            if pushed.applied:
                result.times.append(float(len(result.times)))
                result.losses.append(loss)
    result.params = core.parameters()
    return result
