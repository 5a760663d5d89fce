"""How a step is executed: the eager executors, which run the one chain runner on units.

A *unit* is one call of the chain — either a whole bucket as one flat tensor (the flat
executor: gradients gathered with one ``torch.cat`` unless the bucket owns its storage,
the step subtracted with one ``_foreach_add_``) or one parameter (the per-parameter
executor: for buckets whose parameters are missing gradients, have taken different numbers
of steps, are not plain contiguous tensors, or for rules that need each parameter on its
own). The compiled executor lives in :mod:`descentlab.optim.fast`.

All of them call :func:`~descentlab.transforms.base.run_chain`, the single implementation
of a chain's loop; eager units of every bucket go through *one* call, so that a global
statistic (the total gradient norm of clipping) sees every update of the optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..transforms.base import Context, Transform, run_chain
from .layout import BucketLayout

__all__ = ["Unit", "flat_unit", "parameter_units", "run_units"]


@dataclass
class Unit:
    """One call of the chain."""

    grad: Tensor
    state: Mapping[str, Tensor]
    context: Context
    params: list[Tensor]  # the parameters it covers (for error messages)
    apply: Callable[[Tensor, Any], None]  # w ← w − factor·s
    finish: Callable[[], None]  # record that the step was taken


def flat_unit(layout: BucketLayout, group: dict) -> Unit:
    """The whole bucket as one flat tensor (every parameter has a gradient, one step count)."""
    context = Context(group, layout.step + 1, load_param=layout.flat_parameter)
    return Unit(
        layout.flat_gradient(), layout.flat_state(), context, layout.params, layout.subtract_flat,
        layout.advance_all,
    )


def parameter_units(layout: BucketLayout, group: dict, present: Sequence[int], state: Mapping) -> list[Unit]:
    """One unit per parameter ``layout.params[i]`` for ``i`` in ``present``; ``state`` is the
    optimizer's per-parameter state (views into the layout's buffers)."""
    units = []
    for i in present:
        p = layout.params[i]
        k = layout.next_step_of(i)
        own = {key: value for key, value in state[p].items() if key != "step"}
        own.update({key: values[i] for key, values in layout.scalars.items()})

        def apply(s: Tensor, factor: Any, p: Tensor = p) -> None:
            p.add_(s, alpha=-factor)

        def finish(i: int = i, k: int = k) -> None:
            layout.set_step(i, k)

        units.append(Unit(p.grad, own, Context(group, k, param=p), [p], apply, finish))
    return units


@torch.no_grad()
def run_units(rule: Transform, units: list[Unit]) -> None:
    """One step of every unit: the chain (a final learning-rate scaling folded into
    ``w ← w − η·s``), then the parameter update."""
    if not units:
        return
    steps, factors = run_chain(
        rule, [u.grad for u in units], [u.state for u in units], [u.context for u in units],
        fold_scaling=True,
    )
    for unit, s, factor in zip(units, steps, factors):
        unit.apply(s, factor)
        unit.finish()
