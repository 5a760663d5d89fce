"""Synchronous data-parallel SGD of a small MLP with ``fit(distributed=True)``.

Run it on one machine with two processes::

    torchrun --standalone --nproc_per_node=2 -m descentlab.examples.sync_mlp

or on two machines (the same command on each, ``--node-rank`` 0 and 1; nccl on GPUs)::

    torchrun --nnodes=2 --node-rank=0 --nproc_per_node=8 --rdzv-backend=c10d \\
        --rdzv-endpoint=HOST:29500 -m descentlab.examples.sync_mlp

Each rank trains on its shard of the data (:func:`~descentlab.distributed.shard`, a global batch of
``--batch-size``); DDP averages the gradients, so the run is one-process SGD on the global batch. The
learning rate follows the linear scaling rule with Goyal et al.'s warm-up. ``--save DIR`` writes a
``torch.distributed.checkpoint`` at the end.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import TensorDataset

from ..distributed import TeacherMLP, goyal_warmup, init, save_checkpoint, shard, shutdown
from ..distributed.sync import COMM_HOOKS, data_parallel
from ..optim import SGD
from ..schedules import ScheduleLR
from ..training import fit


def dataset(problem: TeacherMLP, batches: int = 16) -> TensorDataset:
    parts = [problem.batch(0, k) for k in range(batches)]
    return TensorDataset(torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m descentlab.examples.sync_mlp", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch, split over the ranks")
    parser.add_argument("--lr", type=float, default=0.05, help="the single-worker learning rate")
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--comm-hook", choices=[h for h in COMM_HOOKS if h], default=None)
    parser.add_argument("--save", default=None, help="folder for a distributed checkpoint")
    args = parser.parse_args(argv)

    rank, world = init()
    try:
        problem = TeacherMLP(seed=0)
        data = dataset(problem)
        model = problem.model()
        optimizer = SGD(model.parameters(), lr=args.lr, momentum=0.9)
        scheduler = ScheduleLR(optimizer, goyal_warmup(args.lr, world, args.warmup_steps))
        train = shard(data, args.batch_size, shuffle=True, seed=0)
        wrapped = data_parallel(model, args.comm_hook)
        history = fit(
            wrapped, optimizer, train, epochs=args.epochs, loss_fn=problem.loss, scheduler=scheduler,
            scheduler_interval="step", distributed=True, progress=False,
        )
        if args.save:
            save_checkpoint(args.save, wrapped, optimizer, extra={"epochs": args.epochs})
        losses = [round(e["train_loss"], 5) for e in history.epochs]
        if rank == 0:
            print(f"{world} ranks, global batch {args.batch_size}, lr {args.lr} → {history.lr[-1]:.3g} "
                  f"(linear scaling, {args.warmup_steps} warm-up steps); train loss per epoch: {losses}")
        return {"rank": rank, "world": world, "losses": losses}
    finally:
        shutdown()


if __name__ == "__main__":
    main()
