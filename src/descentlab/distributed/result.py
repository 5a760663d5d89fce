"""What an asynchronous or simulated run returns, and the worker's gradient code."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .server import Event

__all__ = ["Result", "GradientWorker"]


@dataclass
class Result:
    """The outcome of :func:`~descentlab.distributed.async_sgd` or a simulation.

    Attributes:
        params: the server's final parameters.
        log: every push, in the order the server received it (:class:`~descentlab.distributed.Event`).
        times: for each applied update, when it was applied (simulated time units, or wall seconds
            since the start for real workers).
        losses: for each applied update, the loss of the gradient it applied (the worker's batch
            loss at its read version), or the objective after the update when the problem has one.
    """

    params: list[Tensor]
    log: list[Event]
    times: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @property
    def applied(self) -> list[Event]:
        return [e for e in self.log if e.applied]

    def staleness(self) -> np.ndarray:
        """τ of every applied update, in order."""
        return np.array([e.staleness for e in self.applied], dtype=np.int64)

    def staleness_histogram(self) -> dict[int, int]:
        """``{τ: number of applied updates with that staleness}``, sorted by τ."""
        return dict(sorted(Counter(int(t) for t in self.staleness()).items()))

    @property
    def dropped(self) -> int:
        """Pushes dropped by bounded staleness."""
        return sum(not e.applied for e in self.log)


class GradientWorker:
    """A worker's computation: the gradient of ``loss_fn(model(inputs), targets)`` on its ``k``-th
    batch ``batch_fn(worker, k)``, at given parameter values. The Ray workers, the simulated ones and
    :func:`~descentlab.distributed.replay` all call this, so a replay recomputes the same bits
    (in one intra-op thread: the sums of a matrix product are then always taken in the same order)."""

    def __init__(
        self,
        model_fn: Callable[[], nn.Module],
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        batch_fn: Callable[[int, int], tuple[Any, Tensor]],
    ) -> None:
        self.model = model_fn()
        if not isinstance(self.model, nn.Module):
            raise ValueError(f"model_fn must return a torch.nn.Module, got {type(self.model).__name__}")
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.loss_fn, self.batch_fn = loss_fn, batch_fn

    def initial_parameters(self) -> list[Tensor]:
        return [p.detach().clone() for p in self.params]

    def __call__(self, worker: int, k: int, values: list[Tensor]) -> tuple[list[Tensor], float]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                for p, v in zip(self.params, values):
                    p.copy_(v)
            inputs, targets = self.batch_fn(worker, k)
            loss = self.loss_fn(self.model(inputs), targets)
            grads = torch.autograd.grad(loss, self.params)
            return [g.detach() for g in grads], float(loss.detach())
        finally:
            torch.set_num_threads(threads)
