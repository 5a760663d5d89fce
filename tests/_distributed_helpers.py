"""Helpers of the distributed tests: a threaded process group, the reference problem, comparisons.

``run_threaded(world_size, fn)`` runs ``fn(rank)`` in ``world_size`` threads that form one torch
process group (torch's own test backend, ``threaded``: real collectives, DDP's reducer and all,
without the 5–10 s a process costs to start). The functions of the real multi-process tests live in
``_distributed_child.py`` (spawned processes import them from there).
"""

from __future__ import annotations

import threading

import torch
import torch.distributed as dist
from torch import nn

N_EXAMPLES = 64


def data(dtype=torch.float64, outputs: int = 1):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N_EXAMPLES, 5, generator=generator, dtype=dtype)
    y = torch.sin(x.sum(1, keepdim=True)) + 0.1 * torch.randn(N_EXAMPLES, 1, generator=generator, dtype=dtype)
    return x, (y if outputs == 1 else torch.cat([y, -y], 1))


_RNG = threading.Lock()  # the global RNG is shared by the ranks' threads


def make_model(dtype=torch.float64, outputs: int = 1) -> nn.Module:
    with _RNG:
        state = torch.random.get_rng_state()
        torch.manual_seed(1)
        try:
            layers = [nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, outputs)]
            return nn.Sequential(*layers).to(dtype)
        finally:
            torch.random.set_rng_state(state)


def loss_fn(outputs, targets):
    return nn.functional.mse_loss(outputs, targets)


def shard_of(rank: int, world: int, x, y):
    n = len(x) // world
    return x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]


def train_steps(forward, optimizer, x, y, steps: int) -> list[float]:
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(forward(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def max_difference(a, b) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a, b))


def parameters(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def run_threaded(world_size: int, fn):
    """``[fn(0), …, fn(world_size − 1)]``, each in its own thread of one ``threaded`` process group."""
    from torch.testing._internal.distributed.multi_threaded_pg import (
        ProcessLocalGroup,
        _install_threaded_pg,
        _uninstall_threaded_pg,
    )

    results: dict[int, object] = {}
    errors: list[BaseException] = []
    store = dist.HashStore()
    # DDP keeps "the module whose forward is running" in a class attribute and restores the previous
    # value on exit: with ranks as threads the restores interleave and can leave a module behind, after
    # which torch.compile would wrap every later compilation of this process in DDP's optimizer.
    active_ddp = nn.parallel.DistributedDataParallel._active_ddp_module
    torch._C._distributed_c10d._set_thread_isolation_mode(True)
    _install_threaded_pg()

    def worker(rank: int) -> None:
        dist.init_process_group("threaded", rank=rank, world_size=world_size, store=store)
        try:
            results[rank] = fn(rank)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            errors.append(error)
            ProcessLocalGroup.exception_handle(error)  # wake the ranks waiting in a collective
        finally:
            dist.destroy_process_group()

    threads = [threading.Thread(target=worker, args=(rank,)) for rank in range(world_size)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        _uninstall_threaded_pg()
        torch._C._distributed_c10d._set_thread_isolation_mode(False)
        nn.parallel.DistributedDataParallel._active_ddp_module = active_ddp
    if errors:
        raise errors[0]
    if len(results) != world_size:
        raise RuntimeError(f"only {len(results)} of {world_size} ranks finished")
    return [results[rank] for rank in range(world_size)]
