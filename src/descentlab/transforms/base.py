"""The algebra of update rules: a :class:`Transform` turns updates into updates.

A transform is one idea of the course notes (momentum, RMS scaling, weight decay, ...)
written once, for one tensor. It receives the current *updates* ``u`` (initially the
gradient), reads its hyperparameters from the parameter group at every step, keeps its
own per-parameter state, and returns the transformed updates. :func:`chain` composes
transforms; an optimizer is a chain plus defaults (see :mod:`descentlab.optim`).

Sign convention (the one of ``torch.optim``): the chain turns the gradient into a
*step* ``s`` and the optimizer applies ``w ← w − s``. A chain that ends with
:class:`~descentlab.transforms.ScaleByLearningRate` therefore performs ``w ← w − η·u``.

Rules every transform follows, so that the same code can run on one parameter tensor or
on a flat buffer holding a whole parameter group (the fast path):

* it never modifies ``u`` in place (``u`` may be the ``.grad`` tensor itself); it may
  modify its own state tensors in place;
* its math is elementwise, unless it declares a global statistic with
  :meth:`Transform.statistic` (e.g. the global gradient norm), which the runner computes
  over every update of the optimizer before calling :meth:`Transform.update`;
* hyperparameters come from ``ctx.hp`` (the param group), never from attributes, so torch
  LR schedulers and hand edits of ``group["lr"]`` take effect at the next step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "Transform",
    "Chain",
    "chain",
    "Context",
    "scalar_state_dtype",
    "check_number",
    "check_unit_interval",
    "check_bool",
]


def scalar_state_dtype() -> torch.dtype:
    """dtype torch.optim uses for scalar state such as ``step`` (float64 only if default)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class Context:
    """What a transform sees besides the updates.

    Attributes:
        hp: the parameter group (hyperparameters are read from it at every step).
        step: 1-based number of the step being taken for these parameters.
        stats: global statistics computed by transforms' :meth:`Transform.statistic`.
        coef: the current transform's :meth:`Transform.coefficients` for this step.
    """

    __slots__ = ("hp", "step", "stats", "coef", "_param", "_load_param")

    def __init__(
        self,
        hp: Mapping[str, Any],
        step: int,
        param: Tensor | None = None,
        load_param: Callable[[], Tensor] | None = None,
        stats: dict | None = None,
    ) -> None:
        self.hp = hp
        self.step = step
        self.stats = {} if stats is None else stats
        self.coef: Mapping[str, float] = {}
        self._param = param
        self._load_param = load_param

    @property
    def param(self) -> Tensor:
        """The current parameter values (gathered on first use for a flat group)."""
        if self._param is None:
            if self._load_param is None:
                raise RuntimeError("this context has no parameter attached")
            self._param = self._load_param()
        return self._param


class Transform:
    """One update rule with per-parameter state.

    Subclasses set :attr:`defaults` (hyperparameter name → default, merged into the
    optimizer's param-group defaults) and override :meth:`update`; they may override
    :meth:`init_state` (tensors shaped like the parameter), :meth:`init_scalars`
    (one number per parameter tensor, stored like torch's ``step``), :meth:`validate`
    and :meth:`statistic`.
    """

    #: hyperparameter name → default value; constructor keyword arguments override them.
    defaults: Mapping[str, Any] = {}
    #: whether the rule reads ``ctx.step`` (then ``state["step"]`` is kept, as torch does).
    needs_step: bool = False

    def __init__(self, **defaults: Any) -> None:
        unknown = set(defaults) - set(type(self).defaults)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown hyperparameter(s) {sorted(unknown)}; "
                f"it reads {sorted(type(self).defaults) or 'none'}"
            )
        self.defaults = {**type(self).defaults, **defaults}
        self.validate(self.defaults)

    # -- the rule ---------------------------------------------------------------------
    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        """Initial state tensors for ``param`` (same shape); none by default."""
        return {}

    def init_scalars(self, hp: Mapping[str, Any]) -> dict[str, float]:
        """Initial per-parameter scalar state (kept as 0-d tensors); none by default."""
        return {}

    def coefficients(self, hp: Mapping[str, Any], step: int) -> dict[str, float]:
        """Scalars that depend only on the hyperparameters and the step, such as Adam's
        bias corrections: computed once per step on the host (in Python floats) and read
        in :meth:`update` as ``ctx.coef[name]``, so a compiled step never evaluates them
        per element."""
        return {}

    def scale_factor(self, ctx: Context) -> float:
        """Only for rules that are a pure scaling ``u ↦ c·u`` with no state: return ``c``.

        Then an eager runner may fold the scaling into the parameter update
        (``w ← w − c·s`` in one pass) instead of calling :meth:`update`."""
        raise NotImplementedError

    def statistic(self, updates: list[Tensor], hp: Mapping[str, Any]) -> Tensor | None:
        """A global quantity over every update of the optimizer (e.g. the total norm)."""
        return None

    def update(self, u: Tensor, state: dict[str, Tensor], ctx: Context) -> Tensor:
        raise NotImplementedError

    def validate(self, hp: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming any hyperparameter outside its allowed range."""

    # -- structure --------------------------------------------------------------------
    @property
    def has_statistic(self) -> bool:
        """Whether the rule needs a global statistic (it overrides :meth:`statistic`)."""
        return type(self).statistic is not Transform.statistic

    @property
    def leaves(self) -> tuple[Transform, ...]:
        return (self,)

    @property
    def elementwise(self) -> bool:
        """True when the rule can run on a flat buffer of several parameters."""
        return True

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({args})"


class Chain(Transform):
    """Transforms applied one after the other: ``chain(a, b)(u) = b(a(u))``.

    Nested chains are flattened, so composition is associative and ``chain()`` is the
    identity.
    """

    def __init__(self, *transforms: Transform) -> None:
        leaves: list[Transform] = []
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"chain() takes Transform objects, got {type(t).__name__}")
            leaves.extend(t.leaves)
        self._leaves = tuple(leaves)
        merged: dict[str, Any] = {}
        for t in self._leaves:
            for key, value in t.defaults.items():
                if key in merged and not _same_default(merged[key], value):
                    raise ValueError(
                        f"chain(): transforms disagree on the default of {key!r} "
                        f"({merged[key]!r} vs {value!r}); give the same value to both"
                    )
                merged.setdefault(key, value)
        self.defaults = merged
        self.needs_step = any(t.needs_step for t in self._leaves)

    @property
    def leaves(self) -> tuple[Transform, ...]:
        return self._leaves

    @property
    def elementwise(self) -> bool:
        return all(t.elementwise for t in self._leaves)

    def validate(self, hp: Mapping[str, Any]) -> None:
        for t in self._leaves:
            t.validate(hp)

    def init_state(self, param: Tensor, hp: Mapping[str, Any]) -> dict[str, Tensor]:
        return _merge_state(t.init_state(param, hp) for t in self._leaves)

    def init_scalars(self, hp: Mapping[str, Any]) -> dict[str, float]:
        return _merge_state(t.init_scalars(hp) for t in self._leaves)

    def update(self, u: Tensor, state: dict[str, Tensor], ctx: Context) -> Tensor:
        for t in self._leaves:
            if t.has_statistic and t not in ctx.stats:
                ctx.stats[t] = t.statistic([u], ctx.hp)
            ctx.coef = t.coefficients(ctx.hp, ctx.step)
            u = t.update(u, state, ctx)
        return u

    def __repr__(self) -> str:
        return "chain(" + ", ".join(repr(t) for t in self._leaves) + ")"


def chain(*transforms: Transform) -> Chain:
    """Compose transforms left to right (see :class:`Chain`)."""
    return Chain(*transforms)


def _same_default(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. tensors
        return a is b


def _merge_state(parts) -> dict:
    merged: dict = {}
    for part in parts:
        for key, value in part.items():
            if key in merged:
                raise ValueError(
                    f"chain(): two transforms keep state under the same key {key!r}; "
                    "a chain can hold each stateful rule once"
                )
            merged[key] = value
    return merged


# -- validation helpers ----------------------------------------------------------------
def _is_number(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.numel() == 1
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_number(
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite number in the given interval; return it as float."""
    lo_b, hi_b = ("(" if low_open else "["), (")" if high_open else "]")
    allowed = f"{lo_b}{low:g}, {high:g}{hi_b}"
    if not _is_number(value):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number in {allowed}, got {v}")
    if v < low or v > high or (low_open and v == low) or (high_open and v == high):
        raise ValueError(f"{name} must be in {allowed}, got {v}")
    return v


def check_unit_interval(name: str, value: Any) -> float:
    """A decay rate such as a beta: ``0 ≤ value < 1``."""
    return check_number(name, value, low=0.0, high=1.0, high_open=True)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value
