"""Small, picklable problems for the examples, the command line, the benchmark and the tests.

Ray and ``torch.multiprocessing`` send functions to other processes by reference, so the problem a
run uses must live in an importable module: :class:`TeacherMLP`'s bound methods are that.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..validation import check_int

__all__ = ["TeacherMLP"]


class TeacherMLP:
    """Regression onto a fixed random "teacher" network: ``y = teacher(x) + 0.1·ε``, ``x ~ N(0, I)``.

    ``model()`` is the student (the same initial weights on every call, from ``seed``), ``loss`` the
    mean squared error and ``batch(worker, k)`` worker ``worker``'s ``k``-th batch, drawn from
    ``(seed, worker, k)`` so that any process draws the same one. The default student has 5,313
    parameters; ``hidden=1024`` gives about 1.07 M.
    """

    def __init__(self, d_in: int = 16, hidden: int = 64, batch_size: int = 32, seed: int = 0) -> None:
        self.d_in = check_int("d_in", d_in, low=1)
        self.hidden = check_int("hidden", hidden, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.seed = check_int("seed", seed, low=0)

    def _net(self, seed: int) -> nn.Module:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            return nn.Sequential(
                nn.Linear(self.d_in, self.hidden), nn.Tanh(),
                nn.Linear(self.hidden, self.hidden), nn.Tanh(),
                nn.Linear(self.hidden, 1),
            )
        finally:
            torch.random.set_rng_state(generator_state)

    def model(self) -> nn.Module:
        return self._net(self.seed)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return nn.functional.mse_loss(outputs, targets)

    def batch(self, worker: int, k: int) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed(hash((self.seed, worker, k)) & 0x7FFF_FFFF)
        x = torch.randn(self.batch_size, self.d_in, generator=generator)
        with torch.no_grad():
            y = self._teacher()(x) + 0.1 * torch.randn(self.batch_size, 1, generator=generator)
        return x, y

    def _teacher(self) -> nn.Module:
        if not hasattr(self, "_teacher_net"):
            self._teacher_net = self._net(self.seed + 1_000_003)
        return self._teacher_net

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_teacher_net"}
