"""Coordinate descent: one coordinate (or one parameter tensor) per step."""

from __future__ import annotations

from typing import Any

import torch

from ._closure import Closure, ClosureSolver, check_choice, check_hyper
from .search import LINE_SEARCHES, search_along


class CoordinateDescent(ClosureSolver):
    """Coordinate descent (notes 002): move along one block of coordinates at a time.

    Each ``step(closure)`` picks the next block — a single coordinate (``block="coordinate"``) or
    a whole parameter tensor (``block="tensor"``) — in cyclic or random (``order``) order and takes
    ``x_B ← x_B − t ∇_B f(x)`` with, by default, Armijo backtracking from ``t = lr`` along
    ``−∇_B f`` (``line_search_fn="strong_wolfe"`` with a small ``c2`` approaches exact coordinate
    minimisation — Gauss–Seidel on a quadratic; ``None`` takes the fixed step ``lr``).
    State: ``block`` (the index of the last block), ``n_iter``.
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
        check_hyper("lr", lr, low_open=True)
        check_choice("order", order, ("cyclic", "random"))
        check_choice("block", block, ("coordinate", "tensor"))
        check_choice("line_search_fn", line_search_fn, LINE_SEARCHES)
        check_hyper("c1", c1, low_open=True, high=1.0, high_open=True)
        check_hyper("c2", c2, low=c1, low_open=True, high=1.0, high_open=True)
        super().__init__(
            params, dict(lr=lr, order=order, block=block, line_search_fn=line_search_fn, c1=c1, c2=c2)
        )
        self._generator = torch.Generator().manual_seed(seed)
        offsets, start = [], 0
        for p in self._params:
            offsets.append((start, start + p.numel()))
            start += p.numel()
        self._tensor_slices = offsets

    def _block_slice(self, index: int) -> tuple[int, int]:
        return (index, index + 1) if self.group["block"] == "coordinate" else self._tensor_slices[index]

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        group, state = self.group, self.solver_state
        f, g = self._evaluate(closure)
        count = self._numel if group["block"] == "coordinate" else len(self._params)
        if group["order"] == "cyclic":
            index = (state.get("block", -1) + 1) % count
        else:
            index = int(torch.randint(count, (1,), generator=self._generator))
        state["block"] = index
        state["n_iter"] += 1
        lo, hi = self._block_slice(index)
        d = torch.zeros_like(g)
        d[lo:hi] = -g[lo:hi]
        if not torch.any(d != 0):
            return f
        x = self._flat_params()
        if group["line_search_fn"] is None:
            self._set_flat_params(x + group["lr"] * d)
        else:
            search_along(
                self,
                closure,
                x,
                f,
                g,
                d,
                t0=group["lr"],
                line_search_fn=group["line_search_fn"],
                c1=group["c1"],
                c2=group["c2"],
            )
        return f
