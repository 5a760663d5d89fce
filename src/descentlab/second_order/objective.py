"""What the directions and searches work on: an objective of a flat point, and its restriction to a line.

* :class:`ClosureObjective` — ``x ↦ (f(x), ∇f(x))`` for the flat parameter vector ``x``, by calling
  the user's closure (either style, see :mod:`._closure`); ``linearise(x)`` also keeps the gradient's
  graph (a :class:`~descentlab.operators.GradientGraph`) for curvature products. Every call is
  counted, in ``evaluations`` and in the solver's ``state["func_evals"]``.
* :class:`SubspaceObjective` — ``α ↦ (f(x + Vα), Vᵀ∇f(x + Vα))``, the same objective on a subspace.
* :class:`LineObjective` — ``φ(t) = f(x + t d)``, ``φ'(t) = ∇f(x + t d)ᵀ d`` along one ray; each
  ``t`` is evaluated at most once (the cache), and a point already known (HF's CG iterates) can be
  entered without an evaluation. For a direction that needs curvature at the next point (Newton)
  it evaluates with the gradient's graph, so the accepted point is not evaluated a second time.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from .._flat import FlatParameters, flatten
from ..operators import GradientGraph
from ._closure import Closure, call_closure


@dataclass
class Point:
    """An evaluated point: ``x`` (flat), ``f(x)``, ``∇f(x)`` and, if kept, the gradient's graph at ``x``."""

    x: Tensor
    f: float
    g: Tensor
    graph: GradientGraph | None = None


class Objective(Protocol):
    evaluations: int

    def evaluate(self, x: Tensor) -> tuple[float, Tensor]: ...


class ClosureObjective:
    """``f`` and ``∇f`` of the flat parameter vector, evaluated by calling the user's closure.

    ``evaluate(x)`` moves the parameters to ``x`` (if not already there) and calls the closure once.
    The closure's style (does it call ``backward``?) is found on the first call and remembered.
    """

    def __init__(self, closure: Closure, flat: FlatParameters, state: MutableMapping[str, Any]) -> None:
        self.closure = closure
        self.flat = flat
        self.state = state
        self.evaluations = 0
        self._calls_backward: bool | None = None
        self._at: Tensor | None = None  # the flat point the parameters were last moved to

    def move(self, x: Tensor) -> None:
        """Put the parameters at ``x``."""
        if x is not self._at:
            self.flat.set(x)
            self._at = x

    def _count(self) -> None:
        self.evaluations += 1
        self.state["func_evals"] += 1

    def evaluate(self, x: Tensor | None = None) -> tuple[float, Tensor]:
        """``(f(x), ∇f(x))`` — at the current parameters when ``x`` is ``None``."""
        if x is not None:
            self.move(x)
        call = call_closure(self.closure, self.flat.params, calls_backward=self._calls_backward)
        self._calls_backward = call.called_backward
        self._count()
        return float(call.loss), flatten(call.grads, self.flat.params)

    def linearise(self, x: Tensor | None = None) -> GradientGraph:
        """Evaluate at ``x`` keeping the gradient's graph (and the outputs, if the closure returns them)."""
        if x is not None:
            self.move(x)
        call = call_closure(self.closure, self.flat.params, create_graph=True)
        self._calls_backward = call.called_backward
        self._count()
        return GradientGraph(call.loss, self.flat.params, outputs=call.outputs, grads=call.grads)

    def point(self, curvature: bool = False, batch: ClosureObjective | None = None) -> Point:
        """The current parameters as an evaluated :class:`Point`, with the gradient's graph if ``curvature``.

        With another objective as ``batch`` (a curvature mini-batch), the graph is that objective's
        and ``f``, ``∇f`` are this one's: two closure calls.
        """
        x = self.flat.get()
        if not curvature:
            return Point(x, *self.evaluate())
        if batch is None or batch is self:
            graph = self.linearise()
            return Point(x, graph.value, graph.grad, graph)
        graph = batch.linearise()
        return Point(x, *self.evaluate(), graph)


class SubspaceObjective:
    """``h(α) = f(x + V α)`` with ``∇h(α) = Vᵀ ∇f(x + V α)`` for a basis ``V`` (n × m)."""

    def __init__(self, objective: ClosureObjective, x: Tensor, basis: Tensor) -> None:
        self.objective, self.x, self.basis = objective, x, basis

    @property
    def evaluations(self) -> int:
        return self.objective.evaluations

    def evaluate(self, alpha: Tensor) -> tuple[float, Tensor]:
        f, g = self.objective.evaluate(self.x + self.basis @ alpha)
        return f, self.basis.T @ g


class LineObjective:
    """``φ(t) = f(x + t d)`` and ``φ'(t) = ∇f(x + t d)ᵀ d`` along one ray from an evaluated point.

    Calling ``φ(t)`` returns ``(φ(t), φ'(t))`` — the shape :mod:`descentlab.linesearch` expects;
    :meth:`at` gives the whole :class:`Point`. Each ``t`` is evaluated at most once. With
    ``curvature=True`` (the objective must then be a :class:`ClosureObjective`) each point keeps its
    gradient's graph: the step a search accepts is ready for the next Hessian, at no second
    evaluation — one closure call per trial step either way.
    """

    def __init__(
        self, objective: Objective, start: Point, direction: Tensor, curvature: bool = False
    ) -> None:
        self.objective = objective
        self.start = start
        self.direction = direction
        self.curvature = curvature
        self.value0 = start.f
        self.slope0 = float(start.g @ direction)
        self._points: dict[float, Point] = {0.0: start}

    def x(self, t: float) -> Tensor:
        """``x + t d`` (the evaluated point's own tensor when ``t`` was evaluated)."""
        known = self._points.get(t)
        return known.x if known is not None else self.start.x + t * self.direction

    def at(self, t: float) -> Point:
        if t not in self._points:
            x = self.start.x + t * self.direction
            if self.curvature:
                graph = self.objective.linearise(x)
                self._points[t] = Point(x, graph.value, graph.grad, graph)
            else:
                self._points[t] = Point(x, *self.objective.evaluate(x))
        return self._points[t]

    def remember(self, t: float, point: Point) -> None:
        """Enter a point already evaluated elsewhere (it must be ``x + t d``)."""
        self._points[t] = point

    def __call__(self, t: float) -> tuple[float, float]:
        point = self.at(t)
        return point.f, float(point.g @ self.direction)
