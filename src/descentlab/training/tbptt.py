"""Truncated back-propagation through time (Williams & Peng 1990, "An efficient gradient-based algorithm
for on-line training of recurrent network trajectories"; notes 002).

"When dealing with long sequences (hundreds of inputs), a truncated version of BPTT is often used to
reduce the computational cost. This stops backpropagating the errors after a fixed number of steps,
limiting the length of the dependencies that can be learned" (notes 002). The sequence x_1 … x_T is
cut into chunks of k steps; for chunk c = [t_c, t_c + k)::

    (L_c, h_{t_c+k}) = model_step(x_{t_c : t_c+k}, stop_gradient(h_{t_c}))
    ∇θ L_c  by backward over the chunk only          (the graph of chunk c is freed)
    with an optimizer:  θ ← optimizer step;  zero the gradients     (one update per chunk)
    without:            the gradients add up over the chunks: g_k = Σ_c ∇θ L_c

The hidden state flows forward through every step, but no gradient flows back across a chunk
boundary; the memory held for backward is that of one chunk (≈ k/T of full BPTT). With k = T this
*is* full BPTT; when the recurrence carries no gradient (recurrent weight 0) every k gives the
same gradient. ``model_step`` should return its chunk's share of the total loss (a sum over time
steps, or the mean × chunk length / T) so that the chunks' gradients add up to the full one.

Lightning removed truncated BPTT in 2.0 (users still ask: #17848, #19985, #20517); here it is a
function that works in a plain loop with any optimizer.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..validation import check_callable, check_int

__all__ = ["tbptt", "TBPTTResult", "chunks", "detach_state", "SavedTensorMemory"]


def detach_state(state: Any) -> Any:
    """``state`` with every tensor detached: a tensor, an LSTM ``(h, c)`` tuple, a namedtuple, a list or
    a dict of them (nested), or ``None``. The values are shared, only the graph is cut."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # namedtuple
        return type(state)(*(detach_state(s) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    if isinstance(state, Mapping):
        return type(state)((k, detach_state(v)) for k, v in state.items())
    raise TypeError(
        f"detach_state: cannot detach a {type(state).__name__}; the hidden state must be a tensor, a "
        "tuple / list / dict of tensors, or None"
    )


def _is_sequence(x: Any) -> bool:
    """One sequence: a tensor, or a tuple / dict of tensors cut in parallel (e.g. (inputs, targets))."""
    if isinstance(x, Tensor):
        return True
    if isinstance(x, tuple) and x and all(isinstance(v, Tensor) for v in x):
        return True
    return isinstance(x, Mapping) and bool(x) and all(isinstance(v, Tensor) for v in x.values())


def _length(x: Any, dim: int) -> int:
    parts = [x] if isinstance(x, Tensor) else list(x.values() if isinstance(x, Mapping) else x)
    lengths = {p.shape[dim] for p in parts}
    if len(lengths) != 1:
        raise ValueError(f"chunks: the parts differ in length along dim={dim}: {sorted(lengths)}")
    return lengths.pop()


def chunks(x: Tensor | tuple | Mapping, k: int, dim: int = 1) -> list:
    """``x`` cut along ``dim`` into pieces of length ``k`` (the last one shorter if k ∤ T); views, no copy.

    ``x`` may be a tensor, or a tuple / dict of tensors of the same length along ``dim`` (inputs and
    targets), cut in parallel: ``chunks((x, y), 5)`` → ``[(x[:, :5], y[:, :5]), …]``.
    """
    k = check_int("k", k, low=1)
    if not _is_sequence(x):
        raise ValueError(f"chunks: x must be a tensor or a tuple / dict of tensors, got {type(x).__name__}")
    length = _length(x, dim)
    starts = range(0, length, k)
    if isinstance(x, Tensor):
        return [x.narrow(dim, s, min(k, length - s)) for s in starts]
    if isinstance(x, Mapping):
        return [
            type(x)((name, v.narrow(dim, s, min(k, length - s))) for name, v in x.items()) for s in starts
        ]
    return [tuple(v.narrow(dim, s, min(k, length - s)) for v in x) for s in starts]


@dataclass
class TBPTTResult:
    """``loss``: the sum of the chunk losses; ``losses``: each chunk's; ``hidden``: the final state
    (detached); ``chunks``: how many chunks ran."""

    loss: float
    hidden: Any
    chunks: int
    losses: list[float] = field(default_factory=list)


def _pieces(sequence: Any, k: int, dim: int) -> Iterator:
    if _is_sequence(sequence):
        yield from chunks(sequence, k, dim)
        return
    for piece in sequence:  # a stream: each piece is cut by k in turn
        if not _is_sequence(piece):
            raise ValueError(
                f"tbptt: every piece of a streamed sequence must be a tensor or a tuple / dict of tensors, "
                f"got {type(piece).__name__}"
            )
        yield from chunks(piece, k, dim)


def tbptt(
    model_step: Callable[[Any, Any], tuple[Tensor, Any]],
    sequence: Tensor | tuple | Mapping | Iterable,
    k: int,
    *,
    hidden: Any = None,
    dim: int = 1,
    optimizer: torch.optim.Optimizer | None = None,
) -> TBPTTResult:
    """Truncated BPTT over ``sequence`` in chunks of ``k`` steps along ``dim`` (see the module docstring).

    ``model_step(chunk, hidden) -> (loss, hidden)`` is the user's function (``hidden`` is ``None`` at the
    start unless given). ``sequence`` is one sequence — a tensor, or a tuple / dict of tensors cut in
    parallel, e.g. ``(inputs, targets)`` — or any other iterable (a list, a generator) of such pieces,
    streamed one after the other and each cut by ``k``, so the whole sequence need never be in memory;
    the hidden state carries over from piece to piece. With ``optimizer`` every chunk ends with
    ``optimizer.step(); optimizer.zero_grad()``; without, the gradients accumulate in ``.grad`` over
    all chunks and the caller steps.
    """
    check_callable("model_step", model_step, "model_step(chunk, hidden) -> (loss, hidden)")
    k = check_int("k", k, low=1)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise ValueError(f"dim must be an integer, got {dim!r}")
    if optimizer is not None and not hasattr(optimizer, "step"):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
    if not _is_sequence(sequence) and not isinstance(sequence, Iterable):
        raise ValueError(
            f"sequence must be a tensor, a tuple / dict of tensors or an iterable of them, "
            f"got {type(sequence).__name__}"
        )
    losses: list[float] = []
    for chunk in _pieces(sequence, k, dim):
        loss, hidden = model_step(chunk, hidden)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise ValueError("model_step must return (loss, hidden) with a scalar loss tensor")
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad()
        hidden = detach_state(hidden)
        losses.append(float(loss.detach()))
    return TBPTTResult(sum(losses), hidden, len(losses), losses)


# -- measuring the memory held for backward ------------------------------------------------------
class _Token:
    __slots__ = ("__weakref__",)


class SavedTensorMemory:
    """Bytes of the tensors autograd saves for backward, alive at once (current and peak).

    Used as a context manager (``torch.autograd.graph.saved_tensors_hooks`` inside): every tensor a
    graph saves is counted by its own size (numel × element size) from the moment it is saved until
    its graph is freed (after backward, or when the graph is dropped). Tensors saved several times
    count once; trainable leaves (the parameters, which exist anyway) and views of them (``W.t()``)
    are not counted.

        with SavedTensorMemory() as memory:
            tbptt(step, x, k=16)
        memory.peak   # bytes
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._live: dict[tuple, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _release(self, key: tuple, nbytes: int) -> None:
        self._live[key] -= 1
        if self._live[key] == 0:
            del self._live[key]
            self.current -= nbytes

    @staticmethod
    def _is_parameter(tensor: Tensor) -> bool:
        """A trainable leaf, or a view of one (``W.t()`` saved by a matmul)."""
        base = tensor._base if tensor._base is not None else tensor
        return base.is_leaf and base.requires_grad

    def _pack(self, tensor: Tensor) -> Any:
        if self._is_parameter(tensor):
            return tensor
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tuple(tensor.stride()), tensor.device)
        nbytes = tensor.numel() * tensor.element_size()
        if key in self._live:
            self._live[key] += 1
        else:
            self._live[key] = 1
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        token = _Token()
        weakref.finalize(token, self._release, key, nbytes)
        return (token, tensor)

    @staticmethod
    def _unpack(packed: Any) -> Tensor:
        return packed if isinstance(packed, Tensor) else packed[1]

    def __enter__(self) -> SavedTensorMemory:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)
