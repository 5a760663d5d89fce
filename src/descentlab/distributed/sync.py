"""Synchronous SGD on torch.distributed: the gradients of every worker averaged, then one update.

Notes 002: "gradients are accumulated from the workers and summed before updating the network
parameters … the whole system is limited to the speed of the slowest worker … means using larger
batch sizes". The averaging is torch's DistributedDataParallel (its all-reduce overlaps with
backward), the optimizers stay plain ``torch.optim.Optimizer``s — descentlab's included, fast path
and all — and nothing here re-implements a network layer:

* :func:`init` — the process group from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
  ``MASTER_ADDR``, ``MASTER_PORT``); one intra-op thread per worker when the workers of a machine
  are at least as many as its cores; a rendezvous that cannot be reached raises ``TimeoutError``
  after ``timeout`` seconds instead of hanging.
* :func:`data_parallel` — DDP with a communication hook: ``None`` (DDP's own all-reduce),
  ``"allreduce"``, ``"fp16"`` (gradients sent in half precision) or ``"powersgd"`` (low-rank
  compression with error feedback, Vogels et al. 2019).
* :func:`shard` — a DataLoader over this worker's share of a dataset (``DistributedSampler``); the
  ``batch_size`` is the *global* batch, split evenly.
* :func:`scale_lr`, :func:`goyal_warmup` — the linear (or square-root) scaling rule and the gradual
  warm-up of Goyal et al. (2017) as a schedule.
* :func:`save_checkpoint` / :func:`load_checkpoint` — ``torch.distributed.checkpoint`` (every rank
  writes its part; resuming is bit-exact, with ZeRO too).
* :func:`shutdown` — a barrier, then ``destroy_process_group`` (without the barrier, processes that
  leave early can make the others hang at exit).
* :func:`launch` — start ``nprocs`` local processes and run ``fn`` in each (notebooks, tests).

Run a script under ``torchrun --standalone --nproc_per_node=2 -m descentlab.examples.sync_mlp``;
on several machines ``torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d
--rdzv-endpoint=HOST:29500 …`` with the same code (``init()`` picks nccl when CUDA is available).
"""

from __future__ import annotations

import io
import math
import os
import socket
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..schedules import Constant, LinearWarmup, join
from ..validation import check_callable, check_choice, check_int, check_number

__all__ = [
    "init",
    "data_parallel",
    "COMM_HOOKS",
    "shard",
    "scale_lr",
    "goyal_warmup",
    "save_checkpoint",
    "load_checkpoint",
    "shutdown",
    "launch",
    "FitSupport",
]

COMM_HOOKS = (None, "allreduce", "fp16", "powersgd")
_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init(backend: str | None = None, *, timeout: float = 300.0) -> tuple[int, int]:
    """Join the process group described by the environment (torchrun's); returns ``(rank, world_size)``.

    ``backend``: ``"gloo"`` (CPU) or ``"nccl"`` (GPUs); ``None`` picks nccl when CUDA is available.
    Already initialised: returns the current group's rank and size.
    """
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    check_choice("backend", backend, ("gloo", "nccl"))
    check_number("timeout", timeout, low=0.0, low_open=True)
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"descentlab.distributed.init: {', '.join(missing)} not set — start the script with "
            "`torchrun --standalone --nproc_per_node=N script.py` (or run fn in launch(fn, nprocs))"
        )
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if local_world >= (os.cpu_count() or 1):
        torch.set_num_threads(1)  # N processes × N threads on N cores only thrash
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout))
    except dist.DistError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if not (isinstance(error, dist.DistNetworkError) or "timed out" in str(error).lower()):
            raise
        raise TimeoutError(
            f"rank {rank} of {world} could not reach the rendezvous at {address} within {timeout:g} s — is "
            f"rank 0 running, and is the address reachable? ({first})"
        ) from None
    return rank, world


def data_parallel(
    model: nn.Module,
    comm_hook: str | None = None,
    *,
    hook_options: Mapping[str, Any] | None = None,
    **ddp_options: Any,
) -> nn.parallel.DistributedDataParallel:
    """``model`` in ``DistributedDataParallel`` with a communication hook (see the module docstring).

    ``hook_options`` go to PowerSGD's state (default ``matrix_approximation_rank=1,
    start_powerSGD_iter=2``); ``ddp_options`` to DDP (``gradient_as_bucket_view``, ``bucket_cap_mb``…).
    Build the optimizer before or after: DDP leaves the parameters where they are.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_choice("comm_hook", comm_hook, COMM_HOOKS)
    if not dist.is_initialized():
        raise RuntimeError("data_parallel needs a process group: call descentlab.distributed.init() first")
    ddp = nn.parallel.DistributedDataParallel(model, **ddp_options)
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

    if comm_hook == "allreduce":
        ddp.register_comm_hook(None, default_hooks.allreduce_hook)
    elif comm_hook == "fp16":
        ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
    elif comm_hook == "powersgd":
        options = {"matrix_approximation_rank": 1, "start_powerSGD_iter": 2, **(hook_options or {})}
        state = powerSGD_hook.PowerSGDState(process_group=None, **options)
        ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
    return ddp


def shard(
    dataset: Any,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
    num_replicas: int | None = None,
    rank: int | None = None,
    **loader_options: Any,
) -> torch.utils.data.DataLoader:
    """A DataLoader over this worker's share of ``dataset``: ``batch_size`` is the **global** batch,
    each of the ``num_replicas`` workers (default: the process group's size) taking ``batch_size /
    num_replicas`` examples per step. Call ``loader.sampler.set_epoch(epoch)`` each epoch to
    reshuffle (``fit(distributed=True)`` does)."""
    check_int("batch_size", batch_size, low=1)
    if num_replicas is None or rank is None:
        if not dist.is_initialized():
            raise RuntimeError(
                "shard needs a process group (descentlab.distributed.init()) or num_replicas and rank"
            )
        num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
        rank = dist.get_rank() if rank is None else rank
    check_int("num_replicas", num_replicas, low=1)
    check_int("rank", rank, low=0, high=num_replicas - 1)
    if batch_size % num_replicas:
        lower = batch_size - batch_size % num_replicas
        raise ValueError(
            f"batch_size {batch_size} does not divide among {num_replicas} workers; use a multiple of "
            f"{num_replicas} (e.g. {lower or num_replicas} or {lower + num_replicas})"
        )
    sampler = torch.utils.data.DistributedSampler(
        dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
    )
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size // num_replicas, sampler=sampler, **loader_options
    )


def scale_lr(lr: float, world_size: int, rule: str = "linear") -> float:
    """The learning rate for ``world_size`` times the batch: ``lr·k`` (``"linear"``, Goyal et al.
    2017) or ``lr·√k`` (``"sqrt"``, Krizhevsky 2014; Hoffer et al. 2017)."""
    check_number("lr", lr, low=0.0)
    check_int("world_size", world_size, low=1)
    check_choice("rule", rule, ("linear", "sqrt"))
    return lr * world_size if rule == "linear" else lr * math.sqrt(world_size)


def goyal_warmup(
    lr: float,
    world_size: int,
    warmup_steps: int,
    *,
    rule: str = "linear",
    after: Callable[[int], float] | None = None,
):
    """Goyal et al. (2017)'s gradual warm-up as a schedule (``schedule(t) -> float``): from the
    single-worker rate ``lr`` at ``t = 0`` linearly to ``scale_lr(lr, world_size, rule)`` at
    ``t = warmup_steps``, then ``after`` (default: constant at the scaled rate; it sees ``t −
    warmup_steps``). Attach it with :class:`descentlab.schedules.ScheduleLR`."""
    scaled = scale_lr(lr, world_size, rule)
    check_int("warmup_steps", warmup_steps, low=0)
    if after is not None:
        check_callable("after", after, "schedule(t) -> float")
    warmup = LinearWarmup(eta_max=scaled, warmup_steps=warmup_steps, eta_min=lr)
    return join([warmup, after if after is not None else Constant(eta_max=scaled)], boundaries=[warmup_steps])


# -- checkpoints ------------------------------------------------------------------------------------
def _local_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """ZeroRedundancyOptimizer's shard-local optimizer (each rank saves its own part), else itself."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return optimizer.optim if isinstance(optimizer, ZeroRedundancyOptimizer) else optimizer


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, extra: Mapping | None = None
) -> None:
    """Save ``model`` (DDP, FSDP or plain) and ``optimizer`` (ZeRO included) with
    ``torch.distributed.checkpoint``: every rank writes its part into the folder ``path``.
    ``extra``: small picklable values (step, epoch, …) returned by :func:`load_checkpoint`."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, _local_optimizer(optimizer))
    buffer = io.BytesIO()
    torch.save(dict(extra or {}), buffer)
    dcp.save({"model": model_state, "optim": optimizer_state, "extra": buffer}, checkpoint_id=str(path))


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load what :func:`save_checkpoint` wrote into ``model`` and ``optimizer`` (built as for the
    saved run, same world size); returns ``extra``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    if not os.path.isdir(path):
        raise FileNotFoundError(f"no distributed checkpoint at {str(path)!r}")
    local = _local_optimizer(optimizer)
    model_state, optimizer_state = get_state_dict(model, local)
    state = {"model": model_state, "optim": optimizer_state, "extra": io.BytesIO()}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, local, model_state_dict=state["model"], optim_state_dict=state["optim"])
    if local is not optimizer:  # ZeRO keeps its own copy of the hyperparameters: make it match
        for outer, inner in zip(optimizer.param_groups, local.param_groups):
            outer.update({k: v for k, v in inner.items() if k != "params"})
    state["extra"].seek(0)
    return torch.load(state["extra"], weights_only=True)


def shutdown() -> None:
    """A barrier, then ``destroy_process_group`` (nothing to do without a process group)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# -- local launcher ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launched(rank: int, fn, args, nprocs: int, port: int, backend: str, timeout: float, queue) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(nprocs),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(nprocs),
    )
    init(backend, timeout=timeout)
    try:
        result = fn(*args)
    finally:
        shutdown()
    buffer = io.BytesIO()
    torch.save(result, buffer)
    queue.put((rank, buffer.getvalue()))


def launch(
    fn: Callable[..., Any], nprocs: int, args: tuple = (), *, backend: str = "gloo", timeout: float = 120.0
) -> list[Any]:
    """Run ``fn(*args)`` in ``nprocs`` new local processes (spawned), each a rank of one process
    group on loopback; returns their return values by rank. ``fn`` must be picklable (defined in a
    module, not in a notebook cell or ``__main__`` of an interactive session). A failing rank
    raises here with its traceback, and the others are stopped."""
    import torch.multiprocessing as mp

    check_callable("fn", fn)
    check_int("nprocs", nprocs, low=1)
    check_choice("backend", backend, ("gloo", "nccl"))
    queue = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(
        _launched, args=(fn, tuple(args), nprocs, _free_port(), backend, timeout, queue),
        nprocs=nprocs, join=False, start_method="spawn",
    )
    results: dict[int, Any] = {}
    finished = False
    while not finished:
        finished = context.join(timeout=0.1)
        while not queue.empty():
            rank, data = queue.get()
            results[rank] = torch.load(io.BytesIO(data), weights_only=False)
    return [results[rank] for rank in range(nprocs)]


# -- fit(distributed=True) --------------------------------------------------------------------------
class FitSupport:
    """What :func:`descentlab.training.fit` needs under a process group: the model wrapped in DDP
    (unless it already is DDP or FSDP), loss and validation values averaged over the ranks (so every
    rank records the same history and takes the same decisions — no rank stops or skips alone),
    ``set_epoch`` on distributed samplers, and rank 0 alone writing files."""

    def __init__(self, model: nn.Module) -> None:
        if not dist.is_initialized():
            raise RuntimeError(
                "fit(distributed=True) needs a process group: call descentlab.distributed.init() first "
                "(under torchrun) or run inside descentlab.distributed.launch(fn, nprocs)"
            )
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        ddp = nn.parallel.DistributedDataParallel
        wrapped = isinstance(model, ddp) or type(model).__name__.startswith("FSDP")
        self.model = model if wrapped else data_parallel(model)
        nccl = dist.get_backend() == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, values: Mapping[str, float]) -> dict[str, float]:
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist())}

    def set_epoch(self, loader: Any, epoch: int) -> None:
        batch_sampler = getattr(loader, "batch_sampler", None)
        for sampler in (getattr(loader, "sampler", None), getattr(batch_sampler, "sampler", None)):
            if isinstance(sampler, torch.utils.data.DistributedSampler):
                sampler.set_epoch(epoch)

    def barrier(self) -> None:
        dist.barrier()
