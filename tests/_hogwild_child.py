"""What the Hogwild tests' spawned processes run (kept light: each child imports it)."""

from __future__ import annotations

import torch

from _distributed_helpers import data, train_steps


def hogwild_train(rank, model, optimizer):
    """Full-batch steps on the shared model; reports whether the parameters stayed in shared memory."""
    torch.manual_seed(rank)
    x, y = data()
    losses = train_steps(model, optimizer, x, y, 20)
    describe = getattr(optimizer, "describe_execution", None)
    paths = [row["path"] for row in describe()] if describe else []
    steps = [float(s["step"]) for s in optimizer.state.values() if "step" in s]
    return {"shared": all(p.is_shared() for p in model.parameters()), "paths": paths, "losses": losses,
            "steps": steps}


class Blocks(torch.nn.Module):
    """A disjoint-block problem: block b is a vector w_b; worker r's loss only involves its own blocks."""

    def __init__(self, blocks: int = 4, dim: int = 6) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        vectors = [torch.randn(dim, generator=generator, dtype=torch.float64) for _ in range(blocks)]
        self.blocks = torch.nn.ParameterList([torch.nn.Parameter(v) for v in vectors])


def block_loss(model: Blocks, rank: int, k: int, world: int = 2):
    generator = torch.Generator().manual_seed(1000 * rank + k)
    total = 0.0
    for b in range(rank, len(model.blocks), world):
        w = model.blocks[b]
        a = torch.randn(8, w.numel(), generator=generator, dtype=torch.float64)
        target = torch.randn(8, generator=generator, dtype=torch.float64)
        total = total + ((a @ w - target) ** 2).mean()
    # every block appears in every worker's graph (times zero), as a dense model's would
    return total + 0.0 * sum(p.sum() for p in model.parameters())


def block_train(rank, model, optimizer, steps: int = 60):
    for k in range(steps):
        optimizer.zero_grad(set_to_none=False)
        block_loss(model, rank, k).backward()
        optimizer.step()
    return rank
