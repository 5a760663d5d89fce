"""Coordinate descent: one coordinate (or one parameter tensor) per step."""

from __future__ import annotations

from typing import Any

import torch

from ..validation import check_choice, check_int, check_positive
from ._closure import Closure
from ._solver import ClosureSolver, check_line_search, hyperparameters, record_search
from .objective import LineObjective
from .search import Found, make_search


class CoordinateDescent(ClosureSolver):
    """Coordinate descent (notes 002): x_B ← x_B − t ∇_B f(x), one block B of coordinates per step.

    Each ``step(closure)`` picks the next block — a single coordinate (``block="coordinate"``) or
    a whole parameter tensor (``block="tensor"``) — in cyclic or random (``order``) order: the
    *direction* is ``−∇_B f`` (zero outside the block), the *search* by default Armijo
    backtracking from ``t = lr`` (``line_search_fn="strong_wolfe"`` with a small ``c2`` approaches
    exact coordinate minimisation — Gauss–Seidel on a quadratic; ``None`` takes the fixed step
    ``lr`` without evaluating). Wright (2015), "Coordinate descent algorithms".
    State: ``block`` (the index of the last block), ``n_iter`` and, for ``order="random"``,
    ``generator_state`` (seeded by ``seed``).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        order: str = "cyclic",
        block: str = "coordinate",
        line_search_fn: str | None = "backtracking",
        c1: float = 1e-4,
        c2: float = 0.9,
        seed: int = 0,
    ) -> None:
        defaults = hyperparameters(locals())
        check_positive("lr", lr)
        check_choice("order", order, ("cyclic", "random"))
        check_choice("block", block, ("coordinate", "tensor"))
        check_line_search(line_search_fn, c1, c2)
        check_int("seed", seed, low=0)
        super().__init__(params, defaults)
        offsets, start = [], 0
        for p in self._params:
            offsets.append((start, start + p.numel()))
            start += p.numel()
        self._tensor_slices = offsets

    def _block_slice(self, index: int) -> tuple[int, int]:
        return (index, index + 1) if self.group["block"] == "coordinate" else self._tensor_slices[index]

    def _next_block(self, count: int) -> int:
        if self.group["order"] == "cyclic":
            return (self.solver_state.get("block", -1) + 1) % count
        generator = self._generator()
        index = int(torch.randint(count, (1,), generator=generator))
        self._keep_generator(generator)
        return index

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        group, state = self.group, self.solver_state
        objective = self._objective(closure)
        start = objective.point()
        index = self._next_block(self._numel if group["block"] == "coordinate" else len(self._params))
        state["block"] = index
        state["n_iter"] += 1
        lo, hi = self._block_slice(index)
        d = torch.zeros_like(start.g)
        d[lo:hi] = -start.g[lo:hi]
        if not torch.any(d != 0):
            return start.f
        phi = LineObjective(objective, start, d)
        if phi.slope0 < 0:
            found = make_search(group["line_search_fn"], group["c1"], group["c2"])(phi, group["lr"])
        else:  # a non-finite gradient: no ray to search along
            found = Found(0.0, False)
        record_search(state, found)
        objective.move(phi.x(found.step))
        return start.f
