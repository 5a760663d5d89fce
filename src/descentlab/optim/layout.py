"""Where an optimizer's state lives: flat buffers per bucket, torch-compatible views per parameter.

A *bucket* is the set of parameters of one param group that share dtype and device.
:class:`BucketLayout` owns everything about a bucket's memory and nothing about how a step
is computed (that is the executors' job, :mod:`descentlab.optim.executors`):

* one flat buffer per state key (``exp_avg``, ``momentum_buffer``, ...), the concatenation of
  every parameter's state, and ``optimizer.state[p]`` holding *views* into them under
  torch's key names — so ``state_dict()``, ``torch.distributed.checkpoint`` and ZeRO's
  ``consolidate_state_dict`` see ordinary per-parameter state;
* per-parameter scalar state and step counts, ``[n]`` tensors in torch's scalar dtype (the
  ``step`` of ``state[p]`` is a 0-d view into them);
* optionally the parameters' own storage: with :meth:`own_storage` the parameters and their
  gradients are moved into one flat buffer each (the parameters become views into it),
  which lets a compiled step treat the whole bucket as one tensor. Storage is never taken
  over for parameters in shared memory (``share_memory()``, Hogwild: they are used where
  they are) nor for tensor subclasses such as ``DTensor`` (they run per parameter), and
  :meth:`storage_intact` notices when other code (e.g. ``ZeroRedundancyOptimizer(
  parameters_as_bucket_view=True)``) has replaced a parameter's ``.data`` since.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..transforms.base import Deferred, Transform, scalar_state_dtype, subtract

__all__ = ["BucketLayout", "Piece", "plain_tensor"]


@dataclass(frozen=True)
class Piece:
    """Elements ``a:b`` of a bucket's flat element space: one call of the chain.

    ``members`` are the parameters it covers, as ``(i, lo, hi)``: elements ``lo:hi`` of parameter
    ``i``. A piece is a chunk of one large parameter, several small consecutive parameters packed
    together, or — when the bucket owns its storage — any range of the flat buffers. Its state is
    always a view of the flat state buffers; its gradient and parameter are views too, except for
    a pack in storage the bucket does not own, where they are gathered (``torch.cat``) and the step
    is scattered back with one ``_foreach_add_``.
    """

    a: int
    b: int
    members: tuple[tuple[int, int, int], ...]
    state: dict[str, Tensor]
    views: tuple[Tensor, ...]  # the members' parameter elements, or the flat buffer's (owned storage)
    grad_source: Tensor | None  # the flat gradient's elements when the bucket owns its storage

    def gradient(self, params: list[Tensor]) -> Tensor:
        if self.grad_source is not None:
            return self.grad_source
        if len(self.members) == 1:
            i, lo, hi = self.members[0]
            return params[i].grad.reshape(-1)[lo:hi]
        return torch.cat([params[i].grad.reshape(-1)[lo:hi] for i, lo, hi in self.members])

    def parameter(self) -> Tensor:
        return self.views[0] if len(self.views) == 1 else torch.cat(self.views)

    def subtract(self, s: Tensor | Deferred, factor: Any) -> None:
        """``w ← w − factor·s`` on the piece's elements."""
        if len(self.views) == 1:
            subtract(self.views[0], s, factor)
        elif isinstance(s, Deferred):
            s.subtract_from_pieces(list(self.views), [view.numel() for view in self.views], factor)
        else:
            steps = s.split([view.numel() for view in self.views])
            torch._foreach_add_(list(self.views), list(steps), alpha=-factor)


def _sole_owner(p: Tensor) -> bool:
    """Whether nothing but the parameter refers to its storage (a ZeRO bucket holding this one
    parameter, or a ``.data`` kept by the user, does). Uses torch's storage use count (the count
    includes the temporary storage object made to ask)."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    return count is None or count(p.untyped_storage()._cdata) <= 2


#: parameters smaller than this are packed together into pieces (larger ones have their own:
#: gathering them would cost more than the calls it saves)
PACK_BELOW = 1 << 14


def plain_tensor(p: Tensor) -> bool:
    """An ordinary dense tensor (not sparse, not a subclass such as ``DTensor``)."""
    return type(p) in (Tensor, torch.nn.Parameter) and p.layout == torch.strided


class BucketLayout:
    """The parameters of one bucket and their state in flat buffers (see the module docstring)."""

    def __init__(
        self,
        params: list[Tensor],
        state: dict[str, list[Tensor]],
        scalars: dict[str, Tensor],
        steps: Tensor,
    ) -> None:
        self.params = params
        self.numels = [p.numel() for p in params]
        #: dense, contiguous, plain tensors: can be treated as one flat vector
        self.contiguous = all(plain_tensor(p) and p.is_contiguous() for p in params)
        #: state key -> flat buffer holding that state for every parameter of the bucket (only for
        #: plain tensors: a tensor subclass such as DTensor keeps one state tensor per parameter)
        self.state: dict[str, Tensor] = {}
        #: state key -> one tensor per parameter (what ``optimizer.state[p]`` holds): views into
        #: :attr:`state` when it exists
        self.state_views: dict[str, list[Tensor]] = {}
        if self.contiguous:
            self.state = {key: torch.cat([t.reshape(-1) for t in parts]) for key, parts in state.items()}
            offset, shapes = 0, []
            for p, n in zip(params, self.numels):
                shapes.append((offset, n, p.shape))
                offset += n
            for key, flat in self.state.items():
                self.state_views[key] = [flat[start : start + n].view(shape) for start, n, shape in shapes]
        else:
            self.state_views = {key: list(parts) for key, parts in state.items()}
        #: scalar state key -> [n] tensor, one value per parameter
        self.scalars = scalars
        #: steps taken by each parameter ([n], torch's scalar dtype)
        self.steps = steps
        self._step: int | None = None
        self._step_known = False
        #: one 0-d view into :attr:`steps` per parameter
        self.step_views: list[Tensor] = [steps[i] for i in range(len(params))]
        self.flat_param: Tensor | None = None
        self.flat_grad: Tensor | None = None
        self._grad_views: list[Tensor] = []
        self._pointers: list[int] = []
        self._pieces: dict[tuple[int, bool], list[Piece]] = {}
        self._everyone = list(range(len(params)))

    # -- building -------------------------------------------------------------------------
    @classmethod
    def build(
        cls, params: list[Tensor], rule: Transform, group: Mapping[str, Any], old: Mapping[Tensor, dict]
    ) -> BucketLayout:
        """Flat state for ``params``: existing per-parameter state (``old[p]``, e.g. loaded from
        a checkpoint) is copied in, the rest initialised by the rule."""
        tensors: dict[str, list[Tensor]] = {}
        scalars: dict[str, list[float]] = {}
        steps: list[float] = []
        for p in params:
            previous = old.get(p, {})
            for key, fresh in rule.init_state(p.detach(), group).items():
                existing = previous.get(key)
                if isinstance(existing, Tensor) and existing.is_sparse:  # torch's sparse SGD momentum
                    existing = existing.to_dense()
                usable = isinstance(existing, Tensor) and existing.shape == p.shape
                tensors.setdefault(key, []).append(existing.detach().to(fresh.dtype) if usable else fresh)
            for key, value in rule.init_scalars(group).items():
                scalars.setdefault(key, []).append(float(previous.get(key, value)))
            steps.append(float(previous["step"]) if "step" in previous else (1.0 if previous else 0.0))
        dtype, device = scalar_state_dtype(), params[0].device
        return cls(
            params,
            tensors,
            {key: torch.tensor(vals, dtype=dtype, device=device) for key, vals in scalars.items()},
            torch.tensor(steps, dtype=dtype, device=device),
        )

    def parameter_state(self, i: int, store_step: bool) -> dict[str, Tensor]:
        """Parameter ``i``'s state as torch shows it: views into the flat buffers."""
        entry = {key: views[i] for key, views in self.state_views.items()}
        entry.update({key: values[i] for key, values in self.scalars.items()})
        if store_step:
            entry["step"] = self.step_views[i]
        return entry

    def has_state_for(self, keys) -> bool:
        return set(keys) <= self.state_views.keys()

    # -- owning the parameters' storage -------------------------------------------------------
    def can_own_storage(self, ours: set[int] = frozenset()) -> bool:
        """Whether the parameters' storage may be taken over: plain contiguous tensors that own all
        of their memory (or live in a flat buffer of ours, ``ours`` holding their storages' data
        pointers) — not in shared memory (Hogwild), not views into someone else's buffer
        (``ZeroRedundancyOptimizer(parameters_as_bucket_view=True)``, another optimizer's)."""
        def free(p: Tensor) -> bool:
            storage = p.untyped_storage()
            if storage.data_ptr() in ours:
                return True
            return storage.nbytes() == p.numel() * p.element_size() and _sole_owner(p)

        return self.contiguous and all(not p.is_shared() and free(p) for p in self.params)

    def own_storage(self) -> None:
        """Move the parameters (and their gradients) into one flat buffer each."""
        self.flat_param = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.flat_grad = torch.zeros_like(self.flat_param)
        self._grad_views, offset = [], 0
        for p, n in zip(self.params, self.numels):
            p.data = self.flat_param[offset : offset + n].view_as(p)
            view = self.flat_grad[offset : offset + n].view_as(p)
            if p.grad is not None:
                view.copy_(p.grad)
                p.grad = view
            self._grad_views.append(view)
            offset += n
        self._pointers = [p.data_ptr() for p in self.params]
        self._pieces = {}

    def release_storage(self) -> None:
        """Stop owning the parameters' storage (they keep whatever ``.data`` they have now)."""
        self.flat_param = self.flat_grad = None
        self._grad_views, self._pointers = [], []
        self._pieces = {}

    @property
    def owns_storage(self) -> bool:
        return self.flat_param is not None

    def storage_intact(self) -> bool:
        """Whether every parameter still is a view into :attr:`flat_param`."""
        return list(map(Tensor.data_ptr, self.params)) == self._pointers

    def dense_gradients(self, present: list[int]) -> bool:
        """Whether the gradients of ``present`` are known dense (all adopted into owned storage)."""
        return present is self._everyone

    def reset_owned_gradients(self) -> None:
        """``zero_grad`` for owned storage: zero the flat gradient, gradients are views into it."""
        self.flat_grad.zero_()
        for p, view in zip(self.params, self._grad_views):
            p.grad = view

    # -- gradients ------------------------------------------------------------------------------
    def with_gradients(self) -> list[int]:
        """Indices of the parameters that have a gradient. With owned storage, a gradient that
        is not the view into :attr:`flat_grad` (autograd allocated a new one after
        ``set_to_none``, or another library such as DDP owns it) is copied into the view."""
        if not self.owns_storage:
            return [i for i, p in enumerate(self.params) if p.grad is not None]
        if all(map(operator.is_, [p.grad for p in self.params], self._grad_views)):
            return self._everyone  # the usual case: backward accumulated into the views
        present = []
        for i, (p, view) in enumerate(zip(self.params, self._grad_views)):
            g = p.grad
            if g is None:
                continue
            present.append(i)
            if g is not view and not g.is_sparse and g.data_ptr() != view.data_ptr():
                view.copy_(g)
                p.grad = view
        return present

    # -- pieces ---------------------------------------------------------------------------------
    def pieces(self, chunk: int, packed: bool) -> list[Piece]:
        """Contiguous pieces of at most ``chunk`` elements covering the bucket (cached: parameters
        and state are views that live as long as the layout).

        ``packed``: small consecutive parameters share a piece (every parameter must then have the
        same step count); otherwise each piece lies within one parameter. With owned storage and
        ``packed``, pieces are plain ranges of the flat buffers."""
        key = (chunk, packed)
        if key not in self._pieces:
            self._pieces[key] = self._make_pieces(chunk, packed)
        return self._pieces[key]

    def _make_pieces(self, chunk: int, packed: bool) -> list[Piece]:
        offsets = [0]
        for n in self.numels:
            offsets.append(offsets[-1] + n)
        if packed and self.owns_storage:
            total = offsets[-1]
            ranges = [(a, min(a + chunk, total)) for a in range(0, total, chunk)]
            return [self._piece(a, b, self._members(a, b, offsets), owned=True) for a, b in ranges]
        if packed and offsets[-1] <= chunk:  # a small bucket: one piece
            members = tuple((i, 0, n) for i, n in enumerate(self.numels))
            return [self._piece(0, offsets[-1], members, owned=False)]
        groups: list[list[tuple[int, int, int]]] = []
        current: list[tuple[int, int, int]] = []
        size = 0
        for i, n in enumerate(self.numels):
            if n >= min(chunk, PACK_BELOW) or not packed:
                if current:
                    groups.append(current)
                    current, size = [], 0
                groups.extend([[(i, lo, min(lo + chunk, n))] for lo in range(0, n, chunk)])
                continue
            if size + n > chunk:
                groups.append(current)
                current, size = [], 0
            current.append((i, 0, n))
            size += n
        if current:
            groups.append(current)
        return [
            self._piece(offsets[m[0][0]] + m[0][1], offsets[m[-1][0]] + m[-1][2], tuple(m), owned=False)
            for m in groups
        ]

    def _members(self, a: int, b: int, offsets: list[int]) -> tuple[tuple[int, int, int], ...]:
        return tuple(
            (i, max(a, offsets[i]) - offsets[i], min(b, offsets[i + 1]) - offsets[i])
            for i in range(len(self.params))
            if offsets[i] < b and offsets[i + 1] > a
        )

    def _piece(self, a: int, b: int, members: tuple, owned: bool) -> Piece:
        state = {key: flat[a:b] for key, flat in self.state.items()}
        if owned:
            return Piece(a, b, members, state, (self.flat_param[a:b],), self.flat_grad[a:b])
        views = tuple(self.params[i].view(-1)[lo:hi] for i, lo, hi in members)
        return Piece(a, b, members, state, views, None)

    # -- step counts ------------------------------------------------------------------------------
    def flat_state(self) -> dict[str, Tensor]:
        """The state of the whole bucket for one flat call (scalars of the first parameter:
        with a shared step count they are the same for all)."""
        state = dict(self.state)
        state.update({key: values[0] for key, values in self.scalars.items()})
        return state

    @property
    def step(self) -> int | None:
        """The step count shared by every parameter, or ``None`` while they differ."""
        if not self._step_known:
            counts = set(self.steps.tolist())
            self._step = int(counts.pop()) if len(counts) == 1 else None
            self._step_known = True
        return self._step

    def advance_all(self) -> None:
        """After a flat step: every parameter took step ``self.step + 1``."""
        self._step = self.step + 1
        self.steps.fill_(self._step)
        for values in self.scalars.values():
            if len(values) > 1:
                values[1:].copy_(values[0].expand(len(values) - 1))

    def next_step_of(self, i: int) -> int:
        return int(self.steps[i].item()) + 1

    def set_step(self, i: int, step: int) -> None:
        """After parameter ``i`` alone took step ``step``."""
        self.steps[i] = step
        self._step_known = False
