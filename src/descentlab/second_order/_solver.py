"""The pieces every closure-driven solver shares: the optimizer shell, and the one direction-search loop.

:class:`ClosureSolver` is the ``torch.optim.Optimizer`` shell (one parameter group, a flat
parameter vector, counted evaluations, the solver's state — RNG included — in ``state_dict``).
:func:`descend` is the iteration of every line-search method::

    d_k = direction(x_k, g_k)               (reset to −g_k if not a descent direction)
    t_k = search(φ, t0),  φ(t) = f(x_k + t d_k)
    x_{k+1} = x_k + t_k d_k;  direction.update(s_k = t_k d_k, y_k = g_{k+1} − g_k)

:class:`LineSearchSolver` runs it for Newton, BFGS, L-BFGS and nonlinear CG; Krylov subspace
descent runs it on its subspace objective.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

import torch
from torch import Tensor

from .._flat import FlatParameters
from ..validation import check_choice, check_int, check_number, check_positive
from ._closure import Closure
from .direction import Direction
from .objective import ClosureObjective, LineObjective, Objective, Point
from .search import LINE_SEARCHES, Found, Search, make_search

State = MutableMapping[str, Any]


def record_search(state: State, found: Found) -> None:
    """``state["line_search_failed"]`` for this search, ``state["line_search_failures"]`` counted."""
    state["line_search_failed"] = not found.success
    if not found.success:
        state["line_search_failures"] += 1


def descend(
    objective: Objective,
    direction: Direction,
    search: Search,
    state: State,
    point: Point,
    *,
    lr: float,
    max_iter: int,
    max_eval: float,
    tolerance_grad: float,
    tolerance_change: float,
) -> Point:
    """Up to ``max_iter`` direction-search iterations from ``point``; returns the last accepted point.

    Stops when ``max|g| ≤ tolerance_grad``, when the change in f or the step is below
    ``tolerance_change``, after ``max_eval`` evaluations of ``objective``, or when a search fails
    (then the best point it saw is returned; if nothing was better than the start, the direction's
    model is reset, so that the next call does not repeat the same failed search). A non-finite
    gradient ends the iteration as a failed search: there is no ray to search along.
    """
    for _ in range(max_iter):
        g = point.g
        if not torch.isfinite(g).all():
            record_search(state, Found(0.0, False))
            break
        if g.abs().max().item() <= tolerance_grad:
            break
        d = direction(objective, point, state)
        if not (torch.isfinite(d).all() and torch.dot(g, d) < 0):
            direction.reset(state)
            d = -g
        phi = LineObjective(objective, point, d, curvature=direction.needs_curvature)
        t0 = direction.first_step(state, point, d, lr)
        found = search(phi, t0 if math.isfinite(t0) and t0 > 0 else lr)
        record_search(state, found)
        state["n_iter"] += 1
        if found.step == 0.0:  # a failed search that found nothing better: stay, and start afresh
            direction.reset(state)
            break
        new = phi.at(found.step)
        s = found.step * d
        direction.update(state, s, new.g - g, point, new, d)
        state["prev_loss"] = point.f
        small_change = abs(new.f - point.f) < tolerance_change
        point = new
        if (
            not found.success
            or small_change
            or s.abs().max().item() <= tolerance_change
            or objective.evaluations >= max_eval
        ):
            break
    return point


class ClosureSolver(torch.optim.Optimizer):
    """Base of the closure-driven solvers (one param group, flat parameter vector, counted evaluations).

    Solver state (``self.state[first parameter]``, as torch's LBFGS keeps it, so ``state_dict``
    holds it): ``func_evals`` (closure calls), ``n_iter`` (iterations), ``line_search_failures``
    and ``line_search_failed`` (did the last search fail — then the parameters were left at the
    best point it found), plus each solver's own keys.
    """

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        self._flat = FlatParameters(self.param_groups[0]["params"])
        self._params: list[Tensor] = self._flat.params
        self._numel = self._flat.numel

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """The first group only: these solvers treat all parameters as one vector."""
        if self.param_groups:
            raise ValueError(
                f"{type(self).__name__} doesn't support per-parameter options (parameter groups): "
                "it optimises all its parameters as one vector, so add_param_group cannot add a second group"
            )
        super().add_param_group(param_group)

    # -- bookkeeping ---------------------------------------------------------------------
    @property
    def group(self) -> dict[str, Any]:
        return self.param_groups[0]

    @property
    def solver_state(self) -> dict[str, Any]:
        state = self.state[self._params[0]]
        for key in ("func_evals", "n_iter", "line_search_failures"):
            state.setdefault(key, 0)
        state.setdefault("line_search_failed", False)
        return state

    def _require_closure(self, closure: Closure | None) -> Closure:
        if closure is None:
            raise RuntimeError(
                f"{type(self).__name__}.step() requires a closure: one that returns the loss (the solver "
                "differentiates it), or one that zeroes the gradients, calls loss.backward() and returns "
                "the loss (as for torch.optim.LBFGS)"
            )
        return closure

    def _objective(self, closure: Closure) -> ClosureObjective:
        return ClosureObjective(closure, self._flat, self.solver_state)

    def _objectives(
        self, closure: Closure | None, curvature_closure: Closure | None
    ) -> tuple[ClosureObjective, ClosureObjective]:
        """The loss's objective, and the one curvature products are taken on (the same by default)."""
        objective = self._objective(self._require_closure(closure))
        return objective, objective if curvature_closure is None else self._objective(curvature_closure)

    # -- randomness that resumes: the generator's state lives in the solver state ------------
    def _generator(self) -> torch.Generator:
        """The solver's generator: seeded by ``group["seed"]`` at first, then restored from state."""
        generator = torch.Generator()
        saved = self.solver_state.get("generator_state")
        if saved is None:
            return generator.manual_seed(self.group["seed"])
        generator.set_state(torch.frombuffer(bytearray(saved), dtype=torch.uint8))
        return generator

    def _keep_generator(self, generator: torch.Generator) -> None:
        # bytes, not a tensor: Optimizer.load_state_dict casts state tensors to the parameters' dtype.
        self.solver_state["generator_state"] = bytes(generator.get_state().numpy())


def hyperparameters(arguments: dict[str, Any], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A solver's ``defaults`` from its constructor's ``locals()`` taken first thing in ``__init__``:
    every argument but ``self``, ``params`` and ``exclude``."""
    skip = ("self", "params", "__class__", *exclude)
    return {name: value for name, value in arguments.items() if name not in skip}


def check_line_search(line_search_fn: Any, c1: Any, c2: Any) -> None:
    check_choice("line_search_fn", line_search_fn, LINE_SEARCHES)
    check_number("c1", c1, low=0.0, high=1.0, low_open=True, high_open=True)
    check_number("c2", c2, low=c1, high=1.0, low_open=True, high_open=True)


class LineSearchSolver(ClosureSolver):
    """A direction (subclass's :meth:`_direction`) plus a line search, run by :func:`descend`.

    ``step(closure)`` runs up to ``max_iter`` iterations, stopping when ``max|g| ≤ tolerance_grad``,
    when the change in loss or the step is below ``tolerance_change``, after ``max_eval`` closure
    calls, or when a line search fails (then the parameters stay at the best point found and
    ``state["line_search_failed"]`` is set). Returns the loss at the start of the step, as
    ``torch.optim.LBFGS`` does.

    ``defaults`` holds the subclass's hyperparameters, including ``lr``, ``max_iter``, ``max_eval``
    (``None``: 5/4 ``max_iter`` + 25 with a line search, ``max_iter + 1`` without),
    ``tolerance_grad``, ``tolerance_change``, ``line_search_fn``, ``c1`` and ``c2``.
    """

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        check_positive("lr", defaults["lr"])
        max_iter = check_int("max_iter", defaults["max_iter"])
        check_line_search(defaults["line_search_fn"], defaults["c1"], defaults["c2"])
        if defaults["max_eval"] is None:
            searching = defaults["line_search_fn"] is not None
            defaults["max_eval"] = max_iter * 5 // 4 + 25 if searching else max_iter + 1
        check_int("max_eval", defaults["max_eval"])
        check_number("tolerance_grad", defaults["tolerance_grad"], low=0.0)
        check_number("tolerance_change", defaults["tolerance_change"], low=0.0)
        super().__init__(params, defaults)

    def _direction(self) -> Direction:
        """The direction, built from the group's current hyperparameters."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:  # type: ignore[override]
        closure = self._require_closure(closure)
        group, state = self.group, self.solver_state
        objective = self._objective(closure)
        direction = self._direction()
        start = objective.point(curvature=direction.needs_curvature)
        end = descend(
            objective,
            direction,
            make_search(group["line_search_fn"], group["c1"], group["c2"]),
            state,
            start,
            lr=group["lr"],
            max_iter=group["max_iter"],
            max_eval=group["max_eval"],
            tolerance_grad=group["tolerance_grad"],
            tolerance_change=group["tolerance_change"],
        )
        objective.move(end.x)
        state["loss"] = end.f
        return start.f
