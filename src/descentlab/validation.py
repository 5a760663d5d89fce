"""Argument checks and the non-finite policy, shared by every part of descentlab.

Every public constructor checks its arguments with these helpers *before doing any work*,
so a bad value fails at once with a ``ValueError`` that names the parameter, the value it
got and the range it allows — the same wording whether it comes from an optimizer, a
schedule, a solver or the lab.

Non-finite values (NaN, ±inf) have one vocabulary everywhere:

* ``nonfinite=None`` — no check (no cost);
* ``nonfinite="raise"`` — raise :class:`NonFiniteError`, naming what was not finite;
* ``nonfinite="skip"`` — leave parameters and state untouched and carry on.

:class:`NonFiniteError` is a ``FloatingPointError``: runners (the lab, the training loop)
treat exactly this family as *divergence*; every other exception is a bug and propagates.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral, Real
from typing import Any, Literal

from torch import Tensor

__all__ = [
    "NonFiniteError",
    "NonFinitePolicy",
    "NONFINITE_POLICIES",
    "check_nonfinite_policy",
    "check_number",
    "check_positive",
    "check_unit_interval",
    "check_int",
    "check_bool",
    "check_choice",
    "check_pair",
    "check_callable",
    "interval",
    "recorded_checks",
]

#: while :func:`recorded_checks` is active, every range check appends ``(name, low, high, low_open,
#: high_open, kind)`` here: how the playground learns each hyperparameter's allowed range from the
#: validators themselves rather than from a second copy of the bounds.
_RECORD: contextvars.ContextVar[list | None] = contextvars.ContextVar("descentlab_recorded_checks",
                                                                      default=None)


@contextlib.contextmanager
def recorded_checks() -> Iterator[list[tuple[str, float, float, bool, bool, str]]]:
    """Record the range of every ``check_number`` / ``check_int`` / ``check_bool`` made inside the block::

        with recorded_checks() as checks:
            descentlab.optim.Adam([torch.zeros(1)])
        # [("betas[0]", 0.0, 1.0, False, True, "number"), ..., ("eps", 0.0, inf, True, False, "number"), ...]
    """
    checks: list[tuple[str, float, float, bool, bool, str]] = []
    token = _RECORD.set(checks)
    try:
        yield checks
    finally:
        _RECORD.reset(token)


def _record(name: str, low: float, high: float, low_open: bool, high_open: bool, kind: str) -> None:
    checks = _RECORD.get()
    if checks is not None:
        checks.append((name, float(low), float(high), low_open, high_open, kind))

NonFinitePolicy = Literal["raise", "skip"] | None
NONFINITE_POLICIES: tuple[NonFinitePolicy, ...] = (None, "raise", "skip")


class NonFiniteError(FloatingPointError):
    """A value that must be finite was NaN or ±inf and the policy is ``"raise"``."""


def check_nonfinite_policy(value: Any, name: str = "nonfinite") -> NonFinitePolicy:
    """``None``, ``"raise"`` or ``"skip"`` (see the module docstring)."""
    if value not in NONFINITE_POLICIES:
        raise ValueError(f"{name} must be None, 'raise' or 'skip', got {value!r}")
    return value


def interval(low: float, high: float, low_open: bool = False, high_open: bool = False) -> str:
    """The interval as it appears in error messages: ``[0, 1)``, ``(0, inf]``."""
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _is_number(value: Any) -> bool:
    if isinstance(value, Tensor):  # torch accepts 1-element tensors for lr, betas, ...
        return value.numel() == 1 and not value.is_complex()
    return isinstance(value, Real) and not isinstance(value, bool)


def check_number(
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the interval; returned as a float.

    One-element tensors are accepted, as torch.optim accepts them for ``lr`` and ``betas``.
    """
    _record(name, low, high, low_open, high_open, "number")
    allowed = interval(low, high, low_open, high_open)
    if not _is_number(value):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number in {allowed}, got {v}")
    if v < low or v > high or (low_open and v == low) or (high_open and v == high):
        raise ValueError(f"{name} must be in {allowed}, got {v}")
    return v


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    return check_number(name, value, low=0.0, low_open=True)


def check_unit_interval(name: str, value: Any) -> float:
    """A decay rate such as a beta: ``0 ≤ value < 1``."""
    return check_number(name, value, low=0.0, high=1.0, high_open=True)


def check_int(name: str, value: Any, *, low: int = 1, high: int | None = None) -> int:
    """An integer (not a bool) in ``[low, high]``."""
    _record(name, low, math.inf if high is None else high, False, False, "int")
    upper = "inf" if high is None else str(high)
    if (
        isinstance(value, bool)
        or not isinstance(value, Integral)
        or value < low
        or (high is not None and value > high)
    ):
        raise ValueError(f"{name} must be an integer in [{low}, {upper}], got {value!r}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    _record(name, 0, 1, False, False, "bool")
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """One of ``allowed`` (compared with ``==``; ``None`` allowed only if listed)."""
    if not any(value is choice or (type(value) is type(choice) and value == choice) for choice in allowed):
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_pair(name: str, value: Any, first: str, second: str) -> tuple[Any, Any]:
    """A pair ``(first, second)`` given as a tuple or list of length 2."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair ({first}, {second}), got {value!r}")
    return value[0], value[1]


def check_callable(name: str, value: Any, signature: str = "") -> Callable[..., Any]:
    if not callable(value):
        shown = f" as {signature}" if signature else ""
        raise ValueError(f"{name} must be callable{shown}, got {type(value).__name__} {value!r}")
    return value
