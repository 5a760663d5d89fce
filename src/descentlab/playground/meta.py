"""What the playground's sliders need, built from the library itself.

For every optimizer of :func:`~descentlab.lab.optimizer_registry` (descentlab's, not torch's) the
constructor's signature gives each hyperparameter's name and default, and building the optimizer once
inside :func:`~descentlab.validation.recorded_checks` gives the ranges its validators enforce — so the
bounds shown are the bounds checked, never a second copy. A positive quantity without an upper bound
(``lr``, ``eps``) gets a logarithmic slider; a bounded one (``momentum`` in [0, 1)) a linear slider.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import torch

from ..lab import describe_optimizer, optimizer_registry
from ..landscapes import LANDSCAPES, get_landscape
from ..validation import recorded_checks

__all__ = ["optimizer_meta", "landscape_meta", "meta"]

_SKIP = {"params", "maximize", "foreach", "differentiable", "fused", "capturable", "nonfinite", "fast"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _slider(name: str, default: float, found: tuple | None) -> dict[str, Any]:
    low, high, low_open, high_open = (
        (found[1], found[2], found[3], found[4]) if found else (-math.inf, math.inf, False, False)
    )
    positive = low >= 0 and high == math.inf
    log = positive and default > 0
    if log:
        slider = (default / 1000, default * 100)
    elif high < math.inf and low > -math.inf:
        slider = (low, high - 0.001 if high_open else high)
    elif positive:
        slider = (0.0, max(1.0, 10 * default))
    else:
        slider = (default - 10, default + 10)
    return {
        "name": name,
        "kind": "int" if found and found[5] == "int" else "number",
        "default": default,
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "scale": "log" if log else "linear",
        "slider": [float(slider[0]), float(slider[1])],
    }


def _describe(cls: type) -> dict[str, Any]:
    try:
        parameters = list(inspect.signature(cls).parameters.values())[1:]
    except (TypeError, ValueError):
        parameters = []
    try:
        with recorded_checks() as checks:
            cls([torch.zeros(2, dtype=torch.float64, requires_grad=True)])
    except Exception:  # an optimizer that needs more than defaults: no ranges, names and defaults only
        checks = []
    ranges = {name: record for record in checks for name in [record[0]]}
    fields = []
    for p in parameters:
        if p.name in _SKIP or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        default = p.default
        if isinstance(default, bool):
            fields.append({"name": p.name, "kind": "bool", "default": default})
        elif _number(default):
            fields.append(_slider(p.name, float(default), ranges.get(p.name)))
        elif isinstance(default, tuple) and len(default) == 2 and all(_number(v) for v in default):
            for i, value in enumerate(default):
                entry = _slider(f"{p.name}[{i}]", float(value), ranges.get(f"{p.name}[{i}]"))
                entry.update(tuple_of=p.name, index=i)
                fields.append(entry)
    return {"rule": describe_optimizer(cls), "hyperparameters": fields}


@functools.cache
def optimizer_meta() -> dict[str, dict[str, Any]]:
    """Spec name → ``{"rule": ..., "hyperparameters": [...]}`` for descentlab's optimizers."""
    return {name: _describe(cls) for name, cls in sorted(optimizer_registry(include_torch=False).items())}


@functools.cache
def landscape_meta() -> dict[str, dict[str, Any]]:
    """Name → domain, minima (★ global first), start and formula of every built-in 2-D landscape."""
    out = {}
    for name in LANDSCAPES:
        landscape = get_landscape(name)
        if landscape.dim != 2:
            continue
        out[name] = {
            "domain": [list(d) for d in landscape.domain],
            "minima": [list(m) for m in landscape.minima],
            "minimum_values": list(landscape.minimum_values),
            "start": list(landscape.start),
            "formula": landscape.formula,
            "stochastic": landscape.stochastic,
        }
    return out


def meta(limits: dict[str, Any]) -> dict[str, Any]:
    """Everything ``GET /api/meta`` answers."""
    from .formula import FUNCTIONS, MAX_DEPTH, MAX_LENGTH, MAX_NODES

    return {
        "optimizers": optimizer_meta(),
        "landscapes": landscape_meta(),
        "limits": limits,
        "formula": {
            "functions": list(FUNCTIONS),
            "max_length": MAX_LENGTH,
            "max_nodes": MAX_NODES,
            "max_depth": MAX_DEPTH,
        },
    }
