"""What the ranks of the real multi-process tests run (spawned processes import it from here).

``gloo_world(directory)`` runs every check of ``test_distributed_processes.py`` in one 2-process gloo
world (a process costs 5–10 s to start, so they share one) and returns what each rank measured.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.utils.data import DataLoader, TensorDataset

from _distributed_helpers import data, loss_fn, make_model, parameters, shard_of, train_steps
from descentlab import optim
from descentlab.distributed import data_parallel, load_checkpoint, save_checkpoint, shard
from descentlab.training import fit

STEPS = 10


def _ddp_fast_path(rank, world):
    x, y = shard_of(rank, world, *data())
    model = make_model()
    optimizer = optim.Adam(model.parameters(), lr=1e-2, fast=True)
    ddp = data_parallel(model)  # built after the optimizer: the flat buffer is already there
    train_steps(ddp, optimizer, x, y, STEPS)
    return {"params": parameters(model), "paths": [r["path"] for r in optimizer.describe_execution()]}


def _resume(rank, world, directory, zero: bool):
    """Train, checkpoint, train on (A); a fresh model and optimizer load the checkpoint, train (B)."""
    x, y = shard_of(rank, world, *data())

    def build():
        model = make_model()
        ddp = data_parallel(model)
        if zero:
            optimizer = ZeroRedundancyOptimizer(
                model.parameters(), optimizer_class=optim.Adam, parameters_as_bucket_view=False,
                lr=1e-2, fast=True,
            )
        else:
            optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, fast=True)
        return model, ddp, optimizer

    model, ddp, optimizer = build()
    train_steps(ddp, optimizer, x, y, STEPS)
    path = f"{directory}/{'zero' if zero else 'ddp'}"
    save_checkpoint(path, ddp, optimizer, extra={"step": STEPS})
    train_steps(ddp, optimizer, x, y, STEPS)
    uninterrupted = parameters(model)

    model, ddp, optimizer = build()
    train_steps(ddp, optimizer, x, y, 1)  # the fresh run has state of its own, to be replaced
    extra = load_checkpoint(path, ddp, optimizer)
    train_steps(ddp, optimizer, x, y, STEPS)
    return {"uninterrupted": uninterrupted, "resumed": parameters(model), "extra": extra}


def _fsdp2(rank, world, outputs):
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    x, y = shard_of(rank, world, *data(outputs=outputs))
    model = make_model(outputs=outputs)
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    optimizer = optim.Adam(model.parameters(), lr=1e-2, fast=True)
    train_steps(model, optimizer, x, y, STEPS)
    full = [p.full_tensor() if isinstance(p, DTensor) else p.detach() for p in model.parameters()]
    return {"params": [t.clone() for t in full], "paths": [r["path"] for r in optimizer.describe_execution()]}


def _fit(rank, world, directory):
    x, y = data()
    dataset = TensorDataset(x, y)
    model = make_model()
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train = shard(dataset, 16, shuffle=False)
    checkpoint = f"{directory}/fit.ckpt"
    history = fit(model, optimizer, train, epochs=3, loss_fn=loss_fn, val=[(x, y)], distributed=True,
                  progress=False, checkpoint=checkpoint)
    again = fit(model, optimizer, train, epochs=3, loss_fn=loss_fn, val=[(x, y)], distributed=True,
                progress=False, checkpoint=checkpoint)  # a finished run: resumed at its end
    return {"params": parameters(model), "history": history.state_dict(), "again": again.state_dict()}


def gloo_world(directory: str) -> dict:
    rank, world = dist.get_rank(), dist.get_world_size()
    out = {"rank": rank, "world": world, "backend": dist.get_backend()}
    out["ddp"] = _ddp_fast_path(rank, world)
    out["dcp"] = _resume(rank, world, directory, zero=False)
    out["dcp_zero"] = _resume(rank, world, directory, zero=True)
    for outputs in (2, 1):  # 1: the last weight, [1, 8], has fewer rows than there are ranks
        try:
            out[f"fsdp2_{outputs}"] = _fsdp2(rank, world, outputs)
        except Exception as error:  # reported by the test
            out[f"fsdp2_{outputs}"] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    out["fit"] = _fit(rank, world, directory)
    return out


def one_process_fit() -> dict:
    x, y = data()
    model = make_model()
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = fit(model, optimizer, DataLoader(TensorDataset(x, y), batch_size=16), epochs=3, loss_fn=loss_fn,
                  val=[(x, y)], progress=False)
    return {"params": parameters(model), "history": history.state_dict()}

