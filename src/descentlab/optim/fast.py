"""The compiled executor: a whole chain as one compiled pass over a bucket's flat buffers.

A bucket that owns its storage (:meth:`~descentlab.optim.layout.BucketLayout.own_storage`)
keeps its parameters and gradients in one flat buffer each, so a step is a single call of
the chain runner on a few large tensors, whatever the number of parameter tensors:
``torch.compile`` fuses the chain and the update ``w ← w − s`` into one loop that reads the
parameter, the gradient and the state once and writes the parameter and the state once —
the memory-bandwidth floor.

Hyperparameters reach the compiled function as Python numbers, which ``torch.compile``
treats as graph inputs rather than constants (``specialize_float=False``), so a learning
rate changed at every step by a scheduler does not trigger recompilation; the step count
is passed the same way, and the transforms' host-side coefficients (bias corrections, ...)
are computed before the call.

The math is the transforms' single implementation, run by
:func:`~descentlab.transforms.base.run_chain`: this module only decides *how* it runs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
import types
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..transforms.base import Context, Transform, chain_coefficients, run_chain
from .layout import BucketLayout

__all__ = ["fast_path_available", "compiled_step", "fused_step", "run_compiled"]

logger = logging.getLogger(__name__)

#: a first compilation slower than this (seconds) is reported once, as a logging warning
SLOW_COMPILE_S = 1.0


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
        stacklevel=4,
    )


def fused_step(
    grad: Tensor,
    param: Tensor,
    state: dict[str, Tensor],
    hp: Mapping[str, Any],
    step: float,
    coefficients: Sequence[Mapping[str, Any]],
    rule: Transform | None = None,
) -> None:
    """The chain ``rule`` on one flat buffer, then ``w ← w − s`` in place (what is compiled)."""
    ctx = Context(hp, step, param=param, coefficients=coefficients)
    (s,), _ = run_chain(rule, [grad], [state], [ctx])
    param.sub_(s)


#: the ``torch.compile`` backend of the fast path (tests swap in a counting backend).
BACKEND: Any = "inductor"


def compiled_step(rule: Transform):
    """The compiled :func:`fused_step` of a chain, shared by every chain of the same structure.

    The cache key is the chain's :meth:`~descentlab.transforms.Transform.structure` (the
    transform types, their code-changing options and the chain's namespaces). Each structure
    gets a function with its own code object: ``torch.compile`` keeps its recompilation
    budget (``recompile_limit``, 8 graphs) per code object, and one chain legitimately needs
    several graphs (first step, dtypes, hyperparameter branches such as ``momentum == 0``);
    with a single shared function, the graphs of every chain of the process would share one
    budget and, once it is spent, torch.compile would silently run the Python code instead
    (measured: sharing one function, the fast-path tests hit the limit at their fifth chain —
    SGD twice and Adagrad, in two dtypes). Copying the code object, rather than
    raising ``recompile_limit``, keeps torch's configuration untouched.
    """
    key = (rule.structure(), BACKEND)
    if key not in _COMPILED:
        code = fused_step.__code__.replace(co_name=f"fused_step_{len(_COMPILED)}")
        step = types.FunctionType(code, fused_step.__globals__, code.co_name, (rule,))
        _COMPILED[key] = _CompiledStep(torch.compile(step, backend=BACKEND, dynamic=True), rule)
    return _COMPILED[key]


class _CompiledStep:
    """A compiled step that says once, through :mod:`logging`, when a call took longer than
    :data:`SLOW_COMPILE_S` because it compiled (the first call, or a new dtype or branch), and that
    keeps torch's float-specialisation record to itself (:func:`_own_float_specialisations`)."""

    def __init__(self, compiled: Any, rule: Transform) -> None:
        self.compiled, self.rule, self.reported = compiled, rule, False

    def __call__(self, *args: Any) -> None:
        began = time.perf_counter()
        with _own_float_specialisations():
            self.compiled(*args)
        seconds = time.perf_counter() - began
        if seconds > SLOW_COMPILE_S and not self.reported:
            self.reported = True
            logger.warning(
                "descentlab: compiling the fast path (fast=True) for %r took %.1f s; later steps reuse it, "
                "and torch's compile cache (TORCHINDUCTOR_CACHE_DIR) makes the first step of the next "
                "process faster", self.rule, seconds,
            )


@contextlib.contextmanager
def _own_float_specialisations():
    """Run with an empty record of the float inputs torch.compile had to specialise, and put the
    record back as it was afterwards.

    torch 2.13's dynamo keeps that record (``TensorifyState.force_specializations``, symbol names
    such as ``"zf5"``) process-wide and does not forget it once a compilation that needed it
    succeeds: the next function compiled — another chain, or the user's own model — would then
    specialise its own fifth float and recompile at every step. Isolating each compiled step keeps
    our compilations from leaking into others' and theirs into ours."""
    try:
        from torch._dynamo.symbolic_convert import TensorifyState
    except ImportError:  # pragma: no cover - another torch
        yield
        return
    record = TensorifyState.force_specializations
    saved = set(record)
    record.clear()
    try:
        yield
    finally:
        record.clear()
        record.update(saved)


#: compiled steps by chain structure and backend
_COMPILED: dict[tuple, Any] = {}


def graph_hyperparameters(group: Mapping[str, Any]) -> dict[str, Any]:
    """The param group without its tensors: what the compiled step reads."""
    return {k: v for k, v in group.items() if k not in ("params", "param_names")}


def run_compiled(rule: Transform, layout: BucketLayout, group: Mapping[str, Any]) -> None:
    """One compiled step of a bucket that owns its storage (every gradient present, one step count)."""
    k = layout.step + 1
    compiled_step(rule)(
        layout.flat_grad,
        layout.flat_param,
        layout.flat_state(),
        graph_hyperparameters(group),
        float(k),
        chain_coefficients(rule, group, k),
    )
    layout.advance_all()
