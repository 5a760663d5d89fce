"""How a step is executed: the eager executors, which run the one chain runner on units.

A *unit* is one call of the chain. The usual unit is a *piece* of a bucket
(:class:`~descentlab.optim.layout.Piece`): a contiguous range of at most :data:`CHUNK_ELEMENTS`
elements of the bucket's flat state — a chunk of a large parameter, or several small consecutive
parameters packed together (a whole small bucket is one piece). Pieces keep the chain's
temporaries in cache, like torch's per-tensor for-loop, but with a bounded size whatever the
tensors, and with few calls for models of many small tensors. Rules that need each parameter on
its own (per-parameter norm clipping), and buckets whose parameters are not plain contiguous
tensors, run one unit per parameter.

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

from ..transforms.base import Context, Deferred, Transform, chain_coefficients, run_chain, subtract
from .layout import BucketLayout

__all__ = ["Unit", "CHUNK_ELEMENTS", "piece_units", "parameter_units", "sparse_units", "run_units"]

#: the largest piece (2**17 float32 elements, 512 KiB: a piece's update, state and temporaries
#: stay within a core's L2 cache); measured against 2**16 and 2**18 on the models of
#: benchmarks/train_step.py
CHUNK_ELEMENTS = 1 << 17


@dataclass
class Unit:
    """One call of the chain."""

    grad: Tensor
    state: Mapping[str, Tensor]
    context: Context
    params: list[Tensor]  # the parameters it covers (for error messages)
    apply: Callable[[Tensor | Deferred, Any], None]  # w ← w − factor·s
    finish: Callable[[], None]  # record that the step was taken


def piece_units(
    rule: Transform, layout: BucketLayout, group: dict, present: Sequence[int], chunk: int | None = None
) -> list[Unit]:
    """The pieces of the bucket whose parameters have a gradient, as units.

    When every parameter has a gradient and they share a step count, small parameters are packed
    together and the host-side coefficients are computed once for all pieces. Every piece starts
    from its parameters' scalar state *before* the step (a copy), so a rule that updates a scalar
    (NAdam's ``mu_product``, ASGD's ``eta``) updates it once, as on one tensor; the result is
    written back after the last piece."""
    chunk = CHUNK_ELEMENTS if chunk is None else chunk
    shared_step = layout.step
    uniform = len(present) == len(layout.params) and shared_step is not None
    pieces = layout.pieces(chunk, packed=uniform)
    if not uniform:
        wanted = set(present)
        pieces = [piece for piece in pieces if piece.members[0][0] in wanted]
    coefficients = chain_coefficients(rule, group, shared_step + 1) if uniform else None
    units = []
    for n, piece in enumerate(pieces):
        first = piece.members[0][0]
        step = shared_step + 1 if uniform else layout.next_step_of(first)
        scalars = {key: values[0 if uniform else first] for key, values in layout.scalars.items()}
        copies = {key: value.clone() for key, value in scalars.items()}
        state = {**piece.state, **copies} if copies else piece.state
        if uniform:
            finish = _finish_bucket(layout, scalars, copies) if n == len(pieces) - 1 else _nothing
        else:
            last = n == len(pieces) - 1 or pieces[n + 1].members[0][0] != first
            finish = _finish_parameter(layout, first, step, scalars, copies) if last else _nothing
        context = Context(group, step, load_param=piece.parameter, coefficients=coefficients)
        units.append(Unit(piece.gradient(layout.params), state, context,
                          [layout.params[i] for i, _, _ in piece.members], piece.subtract, finish))
    return units


def _nothing() -> None:
    pass


def _finish_bucket(layout: BucketLayout, scalars: dict, copies: dict) -> Callable[[], None]:
    """After the last piece of a bucket whose parameters share a step: keep the scalars, count the step."""

    def finish() -> None:
        for key, value in copies.items():
            scalars[key].copy_(value)
        layout.advance_all()

    return finish


def _finish_parameter(layout: BucketLayout, i: int, step: int, scalars: dict, copies: dict):
    """After the last piece of parameter ``i``: keep its scalars, count its step."""

    def finish() -> None:
        for key, value in copies.items():
            scalars[key].copy_(value)
        layout.set_step(i, step)

    return finish


def parameter_units(layout: BucketLayout, group: dict, present: Sequence[int], state: Mapping) -> list[Unit]:
    """One unit per parameter ``layout.params[i]`` for ``i`` in ``present``; ``state`` is the
    optimizer's per-parameter state (views into the layout's buffers)."""
    units = []
    for i in present:
        p = layout.params[i]
        k = layout.next_step_of(i)
        own = {key: value for key, value in state[p].items() if key != "step"}
        own.update({key: values[i] for key, values in layout.scalars.items()})

        def apply(s: Tensor | Deferred, factor: Any, p: Tensor = p) -> None:
            subtract(p, s, factor)

        def finish(i: int = i, k: int = k) -> None:
            layout.set_step(i, k)

        units.append(Unit(p.grad, own, Context(group, k, param=p), [p], apply, finish))
    return units


def sparse_units(layout: BucketLayout, group: dict, present: Sequence[int], mode: str) -> list[Unit]:
    """One unit per parameter with a sparse gradient (``torch.sparse_coo``, e.g. from
    ``nn.Embedding(sparse=True)``).

    ``mode="rows"``: the chain runs on the rows the gradient holds — their values, and the rows of
    the state and of the parameter gathered at those indices — and the results are written back
    there: rows that are absent keep their parameter and state bit for bit (the "lazy" semantics of
    torch's SparseAdam and sparse Adagrad). ``mode="dense"``: the gradient is densified first
    (torch's SGD with momentum, whose velocity moves every row it ever saw)."""
    units = []
    for i in present:
        p = layout.params[i]
        k = layout.next_step_of(i)
        scalars = {key: values[i] for key, values in layout.scalars.items()}
        if mode == "dense":
            own = {key: views[i] for key, views in layout.state_views.items()} | scalars
            units.append(Unit(p.grad.to_dense(), own, Context(group, k, param=p), [p],
                              lambda s, factor, p=p: subtract(p, s, factor), _step_counter(layout, i, k)))
            continue
        grad = p.grad.coalesce()
        rows = tuple(grad._indices())
        full = {key: views[i] for key, views in layout.state_views.items()}
        gathered = {key: view[rows] for key, view in full.items()}
        param_rows = p.detach()[rows]

        def apply(s, factor, p=p, rows=rows, param_rows=param_rows) -> None:
            updated = param_rows.clone()
            subtract(updated, s, factor)
            p.index_put_(rows, updated)

        def finish(i=i, k=k, rows=rows, full=full, gathered=gathered) -> None:
            for key, view in full.items():
                view.index_put_(rows, gathered[key])
            layout.set_step(i, k)

        units.append(Unit(grad._values(), gathered | scalars, Context(group, k, param=param_rows), [p],
                          apply, finish))
    return units


def _step_counter(layout: BucketLayout, i: int, k: int) -> Callable[[], None]:
    return lambda: layout.set_step(i, k)


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
