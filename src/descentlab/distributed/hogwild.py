"""Hogwild (Recht, Ré, Wright & Niu 2011): processes updating shared parameters without locks.

:func:`share_flat_` moves a model's parameters into **one flat buffer in shared memory** (the
parameters become views into it) before the processes start; :func:`hogwild` then starts
``num_processes`` processes (``torch.multiprocessing``, spawn by default), each with its own
optimizer from ``optimizer_fn`` over the *same* shared parameters, and runs ``train_fn(rank, model,
optimizer)`` in each. descentlab's optimizers never take over parameters in shared memory: their fast
path updates them where they are, so the parent sees every update (without that, a child re-flattening
the parameters into private memory would train a copy nobody sees — the regression the tests guard).

Races, as they are:

* **dense updates lose updates.** ``w ← w − η·g`` is a read-modify-write of every element; when two
  processes interleave, one write can overwrite the other's (even where a process's gradient is 0,
  it writes back the value it read). Recht et al.'s guarantee needs sparse updates; on a
  disjoint-block problem, dense updates differed from serial SGD in 2 of 5 runs.
* **block-sparse updates** (``block_sparse=True``): before each step, every parameter tensor whose
  gradient is exactly zero gets ``grad = None``, so the optimizer does not touch it (torch's and
  descentlab's optimizers skip parameters without a gradient). When the processes' blocks are
  disjoint, nothing is shared and the result equals serial SGD exactly.
* **optimizer state** is per process by default (``shared_state=False``): each process keeps its own
  momentum / moments. ``shared_state=True`` builds one optimizer in the parent, puts its state
  (``step`` included: a shared Adam must share its step count, or every process bias-corrects as if it
  were alone) in shared memory and hands it to every process — for optimizers that update their
  state tensors in place, as ``torch.optim``'s do. descentlab's optimizers keep their state in
  per-process flat buffers, which a child rebuilds, so with them ``shared_state=True`` is refused
  (``ValueError``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp
from torch import Tensor, nn

from ..optim.chain_optimizer import ChainOptimizer
from ..validation import check_bool, check_callable, check_choice, check_int

__all__ = ["share_flat_", "hogwild", "zero_gradients_to_none"]


def share_flat_(model: nn.Module) -> Tensor:
    """Put every parameter of ``model`` into one flat buffer in shared memory, in place; the
    parameters become views into it (dtype and device must be the same for all). Returns the buffer.
    Gradients are left as they are; call it before the processes start."""
    params = list(model.parameters())
    if not params:
        raise ValueError("share_flat_: the model has no parameters")
    kinds = {(p.dtype, p.device) for p in params}
    if len(kinds) != 1:
        raise ValueError(
            f"share_flat_ needs one dtype and device for every parameter, got {sorted(map(str, kinds))}"
        )
    if params[0].device.type != "cpu":
        raise ValueError(f"share_flat_ shares CPU memory; the parameters are on {params[0].device}")
    flat = torch.cat([p.detach().reshape(-1) for p in params]).share_memory_()
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat[offset : offset + n].view_as(p)
        offset += n
    return flat


def zero_gradients_to_none(optimizer: torch.optim.Optimizer, args: Any = None, kwargs: Any = None) -> None:
    """A step pre-hook (``optimizer.register_step_pre_hook``): gradients that are exactly zero become
    ``None``, so the step leaves those parameter tensors alone (block-sparse Hogwild)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None and not p.grad.is_sparse and not bool(p.grad.any()):
                p.grad = None


def _initialised_shared_state(optimizer: torch.optim.Optimizer) -> None:
    """Create a torch optimizer's state with one step at zero gradient and zero learning rate, reset
    its step counts, and move every state tensor to shared memory."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved_lr = [group.get("lr") for group in optimizer.param_groups]
    kept = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.zeros_like(p)
    for group in optimizer.param_groups:
        if "lr" in group:
            group["lr"] = 0.0
    optimizer.step()
    with torch.no_grad():
        for p, value in zip(params, kept):
            p.copy_(value)
            p.grad = None
    for group, lr in zip(optimizer.param_groups, saved_lr):
        if lr is not None:
            group["lr"] = lr
    for p in params:
        for key, value in optimizer.state[p].items():
            if isinstance(value, Tensor):
                if key == "step":
                    value.zero_()
                value.share_memory_()


def _child(rank: int, model: nn.Module, optimizer, train_fn, optimizer_fn, block_sparse: bool,
           threads: int, queue) -> None:
    torch.set_num_threads(threads)
    if optimizer is None:
        optimizer = optimizer_fn(model.parameters())
    handle = optimizer.register_step_pre_hook(zero_gradients_to_none) if block_sparse else None
    try:
        result = train_fn(rank, model, optimizer)
    finally:
        if handle is not None:
            handle.remove()
    buffer = io.BytesIO()
    torch.save(result, buffer)
    queue.put((rank, buffer.getvalue()))


def hogwild(
    model: nn.Module,
    train_fn: Callable[[int, nn.Module, torch.optim.Optimizer], Any],
    num_processes: int,
    optimizer_fn: Callable[[Any], torch.optim.Optimizer],
    *,
    shared_state: bool = False,
    block_sparse: bool = False,
    start_method: str = "spawn",
    threads_per_process: int = 1,
) -> list[Any]:
    """Run ``train_fn(rank, model, optimizer)`` in ``num_processes`` processes on ``model``'s shared
    parameters (see the module docstring); returns each process's return value, by rank.

    ``model``'s parameters are put in shared memory with :func:`share_flat_` (unless they already
    are), and after the call ``model`` holds the trained values. ``optimizer_fn(params)`` builds each
    process's optimizer. ``train_fn`` and ``optimizer_fn`` must be picklable (defined in a module);
    ``start_method``: ``"spawn"`` (default; safe with threads and any platform), ``"forkserver"`` or
    ``"fork"``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_callable("train_fn", train_fn, "train_fn(rank, model, optimizer)")
    check_callable("optimizer_fn", optimizer_fn, "optimizer_fn(params) -> torch.optim.Optimizer")
    check_int("num_processes", num_processes, low=1)
    check_bool("shared_state", shared_state)
    check_bool("block_sparse", block_sparse)
    check_choice("start_method", start_method, ("spawn", "forkserver", "fork"))
    check_int("threads_per_process", threads_per_process, low=1)
    if not all(p.is_shared() for p in model.parameters()):
        share_flat_(model)
    optimizer = None
    if shared_state:
        optimizer = optimizer_fn(model.parameters())
        if isinstance(optimizer, ChainOptimizer):
            raise ValueError(
                "shared_state=True needs an optimizer that updates its state tensors in place "
                "(torch.optim's); "
                f"descentlab's {type(optimizer).__name__} keeps its state in per-process flat buffers — use "
                "shared_state=False (state per process) or a torch.optim optimizer"
            )
        _initialised_shared_state(optimizer)
    context = mp.get_context(start_method)
    queue = context.SimpleQueue()
    processes = [
        context.Process(  # torch.multiprocessing sends shared tensors as handles to the same memory
            target=_child,
            args=(rank, model, optimizer, train_fn, optimizer_fn, block_sparse, threads_per_process, queue),
            daemon=True,
        )
        for rank in range(num_processes)
    ]
    for process in processes:
        process.start()
    results: dict[int, Any] = {}
    try:
        while len(results) < num_processes:
            if not queue.empty():
                rank, data = queue.get()
                results[rank] = torch.load(io.BytesIO(data), weights_only=False)
                continue
            failed = [p for p in processes if p.exitcode not in (None, 0)]
            if failed:
                raise RuntimeError(
                    f"hogwild: process {processes.index(failed[0])} exited with code {failed[0].exitcode}"
                    " (its traceback is above)"
                )
            done = [p for p in processes if p.exitcode == 0]
            if len(done) == num_processes and queue.empty():
                raise RuntimeError("hogwild: a process ended without returning its result")
            processes[0].join(0.05)
    finally:
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
    return [results[rank] for rank in range(num_processes)]
