"""The fast path: a whole chain as one compiled pass over flat buffers.

In fast mode a bucket's parameters and gradients live in one flat buffer each (the
parameters become views into it, once, when the bucket is built), so a step is a single
call of the chain on a few large tensors, whatever the number of parameter tensors:
``torch.compile`` fuses the chain and the update ``w ← w − s`` into one loop that reads
the parameter, the gradient and the state once and writes the parameter and the state
once — the memory-bandwidth floor.

Hyperparameters reach the compiled function as Python numbers, which ``torch.compile``
treats as graph inputs rather than constants (``specialize_float=False``), so a learning
rate changed at every step by a scheduler does not trigger recompilation; the step count
is passed the same way.

The math is the transforms' single implementation: this module only decides *how* the
chain runs.
"""

from __future__ import annotations

import functools
import os
import shutil
import types
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..transforms.base import Context, Transform

__all__ = ["fast_path_available", "FAST_MIN_NUMEL", "compiled_step", "fused_step"]

#: in ``fast=None`` (auto) mode, buckets with at least this many elements take the fast path;
#: below it, compiling costs more than it saves.
FAST_MIN_NUMEL = 1 << 20


@functools.cache
def fast_path_available() -> tuple[bool, str]:
    """Whether ``torch.compile`` can run here, and if not, why (for the fallback message)."""
    if os.environ.get("DESCENTLAB_DISABLE_COMPILE"):
        return False, "DESCENTLAB_DISABLE_COMPILE is set"
    try:
        import torch._dynamo  # noqa: F401
        import torch._inductor  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the torch build
        return False, f"torch.compile is not importable ({exc})"
    if not torch._dynamo.is_dynamo_supported():
        return False, "torch.compile does not support this Python version"
    compiler = os.environ.get("CXX", "g++")
    if not shutil.which(compiler) and not shutil.which("c++"):
        return False, f"no C++ compiler ({compiler}) found for torch.compile's CPU backend"
    return True, ""


def warn_unavailable(reason: str) -> None:
    warnings.warn(
        f"descentlab: fast path unavailable ({reason}); running the eager path",
        RuntimeWarning,
        stacklevel=3,
    )


def fused_step(
    grad: Tensor,
    param: Tensor,
    state: dict[str, Tensor],
    hp: Mapping[str, Any],
    step: float,
    coefficients: list[dict[str, float]],
    leaves: tuple[Transform, ...] = (),
) -> None:
    """Run the chain ``leaves`` on one flat buffer and apply ``w ← w − s`` in place.

    ``coefficients`` are the transforms' host-side scalars for this step, computed in
    Python so the compiled loop never evaluates powers or square roots per element."""
    ctx = Context(hp, step, param=param)
    u = grad
    for t, coef in zip(leaves, coefficients):
        if t.has_statistic:
            ctx.stats[t] = t.statistic([u], hp)
        ctx.coef = coef
        u = t.update(u, state, ctx)
    param.sub_(u)


#: the ``torch.compile`` backend of the fast path (tests swap in a counting backend).
BACKEND: Any = "inductor"


def compiled_step(leaves: tuple[Transform, ...]):
    """The compiled :func:`fused_step` of a chain.

    Chains with the same structure (same transform types and constructor options) share
    one compiled step, whatever optimizer instance they belong to; each structure gets its
    own copy of :func:`fused_step`'s code, so that ``torch.compile``'s per-function
    recompilation limit counts one chain's variants (first step, dtypes), not every
    optimizer of the process.
    """
    key = (tuple((type(t), repr(t)) for t in leaves), BACKEND)
    if key not in _COMPILED:
        # A function of its own (not a functools.partial, which torch.compile would wrap
        # in one shared frame), with the chain bound as the default of ``leaves``.
        code = fused_step.__code__.replace(co_name=f"fused_step_{len(_COMPILED)}")
        step = types.FunctionType(code, fused_step.__globals__, code.co_name, (leaves,))
        _COMPILED[key] = torch.compile(step, backend=BACKEND)
    return _COMPILED[key]


#: compiled steps by chain structure and backend
_COMPILED: dict[tuple, Any] = {}


def graph_hyperparameters(group: Mapping[str, Any]) -> dict[str, Any]:
    """The param group without its tensors: what the compiled step reads."""
    return {k: v for k, v in group.items() if k not in ("params", "param_names")}
