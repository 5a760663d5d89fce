"""The parameter server's update code: one implementation for the Ray actor, the simulator and replay.

A parameter server (notes 002, asynchronous SGD) holds the parameters at version ``k`` (the number
of updates applied). A worker *reads* version ``v``, computes a gradient there and *pushes* it; the
server applies it as update ``k`` with staleness ``τ = k − v``:

    w_{k+1} = optimizer step of g(w_v),   with τ and w_v handed to the optimizer's staleness
              transforms (:func:`descentlab.transforms.staleness.set_read_point`)

:class:`ServerCore` is that logic and nothing else — no network, no threads — so that the Ray actor
(:mod:`~descentlab.distributed.async_ps`), the discrete-event simulator
(:mod:`~descentlab.distributed.simulate`) and :func:`~descentlab.distributed.async_ps.replay` run the
same update code, and a replay of the server's event log reproduces its parameters bit for bit.

**Bounded staleness** (``max_staleness=s``): a push with ``τ > s`` is *dropped* — its gradient is
discarded, the event is logged with ``applied=False`` and the worker reads fresh parameters and
computes again. (Deferring it instead would not make it any fresher: its τ only grows while it waits.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..optim.chain_optimizer import ChainOptimizer
from ..transforms import chain
from ..transforms.staleness import DelayCompensation, ScaleByStaleness, set_read_point
from ..validation import check_callable, check_choice, check_int, check_number

__all__ = ["Event", "ServerCore", "with_staleness", "LR_POLICIES"]

LR_POLICIES = ("constant", "staleness_aware")


@dataclass(frozen=True)
class Event:
    """One push, as the server's log records it.

    ``worker`` pushed its ``k``-th gradient (k = 0, 1, … per worker), computed at parameter version
    ``read_version``; ``version`` is the server's version when it arrived (``τ = version −
    read_version``); ``applied`` is False when bounded staleness dropped it.
    """

    worker: int
    k: int
    read_version: int
    version: int
    applied: bool = True

    @property
    def staleness(self) -> int:
        return self.version - self.read_version


def _shifted(key: str, shift: int) -> str:
    """A namespaced chain key ``"name:i"`` moved ``shift`` positions along the chain."""
    match = re.fullmatch(r"(.*):(\d+)", key)
    return f"{match.group(1)}:{int(match.group(2)) + shift}" if match else key


def with_staleness(
    optimizer: torch.optim.Optimizer,
    lr_policy: str = "constant",
    delay_compensation: float | None = None,
    hessian_diagonal: Callable[[Tensor], Tensor] | None = None,
) -> torch.optim.Optimizer:
    """``optimizer`` with asynchronous SGD's corrections added to its chain, before any step.

    ``lr_policy="staleness_aware"`` appends :class:`~descentlab.transforms.ScaleByStaleness` (η/τ);
    ``delay_compensation=λ`` prepends :class:`~descentlab.transforms.DelayCompensation` (DC-ASGD).
    Both are transforms, so they compose with whatever the optimizer's chain does (momentum, Adam,
    clipping). With neither, the optimizer is returned as it is (any ``torch.optim.Optimizer``);
    with either it must be a descentlab optimizer (a :class:`~descentlab.optim.ChainOptimizer`).
    """
    check_choice("lr_policy", lr_policy, LR_POLICIES)
    if delay_compensation is not None:
        check_number("delay_compensation", delay_compensation, low=0.0)
    if lr_policy == "constant" and delay_compensation is None and hessian_diagonal is None:
        return optimizer
    if not isinstance(optimizer, ChainOptimizer):
        raise ValueError(
            f"lr_policy={lr_policy!r} / delay_compensation need a descentlab optimizer (a chain of "
            "transforms "
            f"they can join), got {type(optimizer).__name__}; use e.g. descentlab.optim.SGD"
        )
    if optimizer.state:
        raise ValueError("with_staleness() must be applied before the optimizer's first step")
    leaves = list(optimizer.transform.leaves)
    shift = 0
    if delay_compensation is not None or hessian_diagonal is not None:
        leaves.insert(0, DelayCompensation(hessian_diagonal, delay_compensation=delay_compensation or 0.0))
        shift = 1
    if lr_policy == "staleness_aware":
        leaves.append(ScaleByStaleness())
    rule = chain(*leaves)
    groups = []
    for group in optimizer.param_groups:
        translated = {_shifted(key, shift): value for key, value in group.items() if key != "params"}
        groups.append({**{k: v for k, v in rule.defaults.items() if k not in translated}, **translated,
                       "params": group["params"]})
    new = ChainOptimizer(groups, rule, nonfinite=optimizer.nonfinite, fast=optimizer.fast, fused=False)
    new.store_step = optimizer.store_step
    new.state_for_all_params = optimizer.state_for_all_params
    return new


class ServerCore:
    """The state and update code of an asynchronous-SGD parameter server (see the module docstring).

    Args:
        params: the initial parameters (copied; the server owns its copies).
        optimizer_fn: ``optimizer_fn(params) -> torch.optim.Optimizer`` over the server's copies.
        lr_policy: ``"constant"`` (η) or ``"staleness_aware"`` (η/τ, Zhang et al. 2016).
        delay_compensation: λ of DC-ASGD (Zheng et al. 2017), or None.
        hessian_diagonal: exact curvature for delay compensation (see
            :class:`~descentlab.transforms.DelayCompensation`), or None.
        max_staleness: bounded staleness ``s``: pushes with τ > s are dropped; None: no bound.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        optimizer_fn: Callable[[list[Tensor]], torch.optim.Optimizer],
        *,
        lr_policy: str = "constant",
        delay_compensation: float | None = None,
        hessian_diagonal: Callable[[Tensor], Tensor] | None = None,
        max_staleness: int | None = None,
    ) -> None:
        check_callable("optimizer_fn", optimizer_fn, "optimizer_fn(params) -> torch.optim.Optimizer")
        if max_staleness is not None:
            check_int("max_staleness", max_staleness, low=0)
        self.params = [torch.nn.Parameter(p.detach().clone()) for p in params]
        if not self.params:
            raise ValueError("params is empty: the server needs at least one parameter tensor")
        optimizer = optimizer_fn(self.params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer_fn must return a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = with_staleness(optimizer, lr_policy, delay_compensation, hessian_diagonal)
        self.compensates = delay_compensation is not None or hessian_diagonal is not None
        self.max_staleness = max_staleness
        self.version = 0
        self.log: list[Event] = []
        # the versions some worker is computing on, with their parameters (delay compensation needs
        # w_read): version -> [readers, tensors]
        self._reads: dict[int, list[Any]] = {}
        self._reader_version: dict[int, int] = {}

    # -- the two messages ------------------------------------------------------------------------
    def read(self, worker: int) -> tuple[int, list[Tensor]]:
        """``worker`` reads the current parameters: ``(version, copies of the parameters)``."""
        self._release(worker)
        values = [p.detach().clone() for p in self.params]
        entry = self._reads.setdefault(self.version, [0, values if self.compensates else None])
        entry[0] += 1
        self._reader_version[worker] = self.version
        return self.version, values

    def push(self, worker: int, k: int, read_version: int, grads: Sequence[Tensor]) -> Event:
        """Apply (or, past ``max_staleness``, drop) ``worker``'s ``k``-th gradient, computed at
        ``read_version``; returns the logged :class:`Event`."""
        if not 0 <= read_version <= self.version:
            raise ValueError(f"read_version must be in [0, {self.version}], got {read_version}")
        if len(grads) != len(self.params):
            raise ValueError(f"push needs one gradient per parameter ({len(self.params)}), got {len(grads)}")
        tau = self.version - read_version
        applied = self.max_staleness is None or tau <= self.max_staleness
        event = Event(worker, k, read_version, self.version, applied)
        self.log.append(event)
        if applied:
            read_params = self._read_params(read_version) if self.compensates else None
            set_read_point(self.optimizer, tau, read_params)
            for p, g in zip(self.params, grads):
                p.grad = g.detach().to(p.dtype).reshape(p.shape).clone()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.version += 1
        self._release(worker)
        return event

    # -- versions being computed on -----------------------------------------------------------------
    def _read_params(self, version: int) -> list[Tensor]:
        entry = self._reads.get(version)
        if entry is None:
            raise ValueError(
                f"no worker read version {version}: delay compensation needs the parameters a gradient was "
                "computed at (read them through ServerCore.read)"
            )
        return entry[1]

    def _release(self, worker: int) -> None:
        version = self._reader_version.pop(worker, None)
        if version is None:
            return
        entry = self._reads[version]
        entry[0] -= 1
        if entry[0] == 0:
            del self._reads[version]

    def parameters(self) -> list[Tensor]:
        """Copies of the current parameters."""
        return [p.detach().clone() for p in self.params]
