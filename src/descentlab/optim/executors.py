"""How a step is executed: the eager executors, which run the one chain runner on units.

A *unit* is one call of the chain on a contiguous piece of a bucket:

* the **flat** unit — a whole small bucket as one flat tensor (gradients gathered with one
  ``torch.cat`` unless the bucket owns its storage, the step subtracted with one
  ``_foreach_add_``): the least host work when everything fits in cache;
* **chunks** — pieces of at most :data:`CHUNK_ELEMENTS` elements of a large bucket (of its
  flat buffers when it owns its storage, else of each parameter): the chain runs chunk by
  chunk, so its temporaries stay in cache, like torch's per-tensor for-loop but with bounded
  pieces whatever the tensor sizes;
* **parameters** — one unit per parameter, for rules that need each parameter on its own
  (per-parameter norm clipping) or buckets whose parameters are not plain contiguous tensors.

The compiled executor lives in :mod:`descentlab.optim.fast`, torch's fused kernels in
:mod:`descentlab.optim.fused`. All of them call :func:`~descentlab.transforms.base.run_chain`,
the single implementation of a chain's loop. Units run one after the other (all of a unit's
transforms before the next unit: cache locality), except when a transform needs a global
statistic (the total gradient norm of clipping): then every unit goes through *one* runner
call, transform by transform, so that the statistic sees every update of the optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..transforms.base import Context, Transform, run_chain
from .layout import BucketLayout

__all__ = [
    "Unit", "FLAT_ELEMENTS", "CHUNK_ELEMENTS", "flat_unit", "chunk_units", "parameter_units", "run_units",
]

#: a bucket of at most this many elements runs as one flat unit
FLAT_ELEMENTS = 1 << 17
#: a larger bucket runs in chunks of at most this many elements (2**16: a chunk's update, state
#: and temporaries stay in the 1–2 MiB a core has of L2 cache)
CHUNK_ELEMENTS = 1 << 16


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


def chunk_units(
    layout: BucketLayout, group: dict, present: Sequence[int], chunk: int | None = None
) -> list[Unit]:
    """Units of at most ``chunk`` elements covering the parameters ``present``.

    Every chunk of a parameter starts from the parameter's scalar state *before* the step (a
    copy), so a rule that updates a scalar (NAdam's ``mu_product``, ASGD's ``eta``) updates it
    once, as on one tensor; the result is written back when the parameter's last chunk is done."""
    chunk = CHUNK_ELEMENTS if chunk is None else chunk
    whole = layout.owns_storage and len(present) == len(layout.params) and layout.step is not None
    if whole:  # chunks of the flat buffers themselves
        k, total = layout.step + 1, sum(layout.numels)
        pieces = [(None, a, min(a + chunk, total)) for a in range(0, total, chunk)]
    else:
        sizes = [(i, layout.numels[i]) for i in present]
        pieces = [(i, a, min(a + chunk, n)) for i, n in sizes for a in range(0, n, chunk)]
    units = []
    for n, (i, a, b) in enumerate(pieces):
        if i is None:
            param, grad = layout.flat_param[a:b], layout.flat_grad[a:b]
            own = {key: flat[a:b] for key, flat in layout.state.items()}
            scalars, step = {key: values[0] for key, values in layout.scalars.items()}, k
        else:
            p = layout.params[i]
            param, grad = p.view(-1)[a:b], p.grad.reshape(-1)[a:b]
            own = {key: views[i].view(-1)[a:b] for key, views in layout.state_views.items()}
            scalars, step = {key: values[i] for key, values in layout.scalars.items()}, layout.next_step_of(i)
        copies = {key: value.clone() for key, value in scalars.items()}
        own.update(copies)

        def apply(s: Tensor, factor: Any, param: Tensor = param) -> None:
            param.add_(s, alpha=-factor)

        last = n == len(pieces) - 1 or pieces[n + 1][0] != i

        def finish(i=i, step=step, scalars=scalars, copies=copies, last=last) -> None:
            if not last:
                return
            for key, value in copies.items():
                scalars[key].copy_(value)
            if i is None:
                layout.advance_all()
            else:
                layout.set_step(i, step)

        params = layout.params if i is None else [layout.params[i]]
        units.append(Unit(grad, own, Context(group, step, param=param), params, apply, finish))
    return units


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


def run_units(rule: Transform, units: list[Unit]) -> None:
    """One step of every unit: the chain (a final learning-rate scaling folded into
    ``w ← w − η·s``), then the parameter update — unit by unit, or all units through one
    runner call when a transform needs a global statistic."""
    if not units:
        return
    if any(leaf.has_statistic for leaf in rule.leaves):
        batches = [units]
    else:
        batches = [[unit] for unit in units]
    for batch in batches:
        steps, factors = run_chain(
            rule, [u.grad for u in batch], [u.state for u in batch], [u.context for u in batch],
            fold_scaling=True,
        )
        for unit, s, factor in zip(batch, steps, factors):
            unit.apply(s, factor)
    for unit in units:
        unit.finish()
