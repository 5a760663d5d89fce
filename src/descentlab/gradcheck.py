"""Gradient checking (notes 003): compare backprop's gradients with numerical ones.

"Always use the analytic gradient (exact, fast, error-prone), but check the implementation
with the numerical gradient (approximate, slow, easy to write)." For every parameter ``w``
of a model, :func:`gradcheck` compares ``∂L/∂w_i`` from ``loss.backward()`` with the central
difference, in float64::

    g̃_i = (L(w + ε e_i) − L(w − ε e_i)) / (2ε)          error O(ε²), round-off O(u·|L|/ε)

on every coordinate of small tensors and on a deterministic sample of coordinates of large
ones. A coordinate passes when ``|g_i − g̃_i| ≤ atol + rtol·|g̃_i|`` (the test of
``torch.autograd.gradcheck``); the report also gives the relative error
``|g_i − g̃_i| / max(|g_i|, |g̃_i|)``. :func:`gradcheck_function` and
:func:`gradgradcheck_function` wrap ``torch.autograd.gradcheck`` / ``gradgradcheck`` for
plain functions (e.g. a custom ``torch.autograd.Function``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .validation import check_bool, check_callable, check_int, check_number, check_positive

__all__ = ["gradcheck", "GradcheckReport", "ParamCheck", "gradcheck_function", "gradgradcheck_function"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class ParamCheck:
    """The check of one parameter tensor."""

    name: str
    shape: tuple[int, ...]
    coordinates: Tensor  # flat indices checked
    analytic: Tensor  # backprop's gradient at those coordinates
    numerical: Tensor  # central differences at those coordinates
    max_abs_error: float
    max_rel_error: float
    passed: bool

    @property
    def checked(self) -> int:
        return self.coordinates.numel()

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


class GradcheckReport(list):
    """One :class:`ParamCheck` per parameter; ``report.passed`` is the verdict; prints as a table."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self if not c.passed]

    def __str__(self) -> str:
        header = ("parameter", "shape", "checked", "max abs err", "max rel err", "result")
        rows = [
            (
                c.name,
                "×".join(map(str, c.shape)) or "scalar",
                f"{c.checked}/{c.numel}",
                f"{c.max_abs_error:.2e}",
                f"{c.max_rel_error:.2e}",
                "ok" if c.passed else "FAIL",
            )
            for c in self
        ]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return "\n".join(lines)


def _check_precision(name: str, tensor: Tensor) -> None:
    if tensor.dtype in _LOW_PRECISION:
        raise ValueError(
            f"gradcheck needs float64, got {tensor.dtype} for {name}: with ~3 significant digits central "
            "differences measure round-off, not the derivative; pass a float32/float64 model "
            "(it is checked in a float64 copy)"
        )


def _to_float64(value: Any) -> Any:
    if isinstance(value, Tensor) and value.is_floating_point():
        return value.detach().to(torch.float64)
    return value


def _tolerances(eps: Any, atol: Any, rtol: Any) -> tuple[float, float, float]:
    """The step ``ε > 0`` and the tolerances ``atol, rtol ≥ 0`` of every check here."""
    return (check_positive("eps", eps), check_number("atol", atol, low=0.0),
            check_number("rtol", rtol, low=0.0))


def _coordinates(numel: int, max_coords: int, seed: int) -> Tensor:
    if numel <= max_coords:
        return torch.arange(numel)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(numel, generator=generator)[:max_coords].sort().values


def gradcheck(
    model: nn.Module,
    loss_fn: Callable[..., Tensor],
    *batch: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    max_coords: int = 32,
    seed: int = 0,
) -> GradcheckReport:
    """Check ``loss.backward()``'s gradient of every parameter against central differences.

    The loss is ``loss_fn(model(batch[0]), *batch[1:])`` — e.g.
    ``gradcheck(model, F.mse_loss, x, y)``. The check runs on a float64 deep copy of the
    model (the model itself is not touched), so the loss must be deterministic (no dropout
    in training mode). Tensors with more than ``max_coords`` entries are checked on
    ``max_coords`` coordinates drawn with ``seed`` (the same ones every call).

    Returns a :class:`GradcheckReport` (``.passed``, ``.failed``, ``print(report)``).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_callable("loss_fn", loss_fn, "loss_fn(model(x), *targets) -> scalar tensor")
    eps, atol, rtol = _tolerances(eps, atol, rtol)
    check_int("max_coords", max_coords, low=1)
    check_int("seed", seed, low=0)
    if not batch:
        raise ValueError("gradcheck needs the model's input: gradcheck(model, loss_fn, x, *targets)")
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        _check_precision(f"parameter {name!r}", tensor)
    for i, value in enumerate(batch):
        if isinstance(value, Tensor):
            _check_precision(f"batch[{i}]", value)

    checked_model = copy.deepcopy(model).to(torch.float64)
    inputs = [_to_float64(v) for v in batch]

    def loss() -> Tensor:
        out = loss_fn(checked_model(inputs[0]), *inputs[1:])
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise ValueError(
                f"loss_fn must return a scalar tensor, got {type(out).__name__} "
                f"{tuple(out.shape) if isinstance(out, Tensor) else ''}"
            )
        return out.reshape(())

    named = [(n, p) for n, p in checked_model.named_parameters() if p.requires_grad]
    checked_model.zero_grad(set_to_none=True)
    loss().backward()
    analytic = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone() for n, p in named}

    report = GradcheckReport()
    with torch.no_grad():
        for index, (name, p) in enumerate(named):
            coords = _coordinates(p.numel(), max_coords, seed + index)
            flat = p.view(-1)
            numerical = torch.empty(len(coords), dtype=torch.float64)
            for k, i in enumerate(coords.tolist()):
                original = flat[i].item()
                flat[i] = original + eps
                plus = loss().item()
                flat[i] = original - eps
                minus = loss().item()
                flat[i] = original
                numerical[k] = (plus - minus) / (2 * eps)
            a = analytic[name].reshape(-1)[coords].cpu()
            diff = (a - numerical).abs()
            scale = torch.maximum(a.abs(), numerical.abs())
            rel = torch.where(scale > 0, diff / scale, torch.zeros_like(diff))
            passed = bool((diff <= atol + rtol * numerical.abs()).all())
            report.append(
                ParamCheck(
                    name,
                    tuple(p.shape),
                    coords,
                    a,
                    numerical,
                    float(diff.max()) if len(diff) else 0.0,
                    float(rel.max()) if len(rel) else 0.0,
                    passed,
                )
            )
    return report


def _function_inputs(inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    prepared = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.is_floating_point():
            _check_precision(f"input {i}", x)
            x = x.detach().to(torch.float64).requires_grad_(True)
        prepared.append(x)
    return tuple(prepared)


def _torch_check(check: Callable[..., bool], fn: Any, inputs: tuple[Any, ...], eps: Any, atol: Any,
                 rtol: Any, raise_exception: Any) -> bool:
    """``check(fn, inputs, ...)`` — torch's gradcheck or gradgradcheck — after checking every argument."""
    check_callable("fn", fn)
    eps, atol, rtol = _tolerances(eps, atol, rtol)
    check_bool("raise_exception", raise_exception)
    return check(fn, _function_inputs(inputs), eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)


def gradcheck_function(
    fn: Callable[..., Any],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = False,
) -> bool:
    """``torch.autograd.gradcheck(fn, inputs)`` on float64 copies of the floating inputs
    (all requiring grad); ``False`` (or the exception, if asked) when a Jacobian is wrong."""
    return _torch_check(torch.autograd.gradcheck, fn, inputs, eps, atol, rtol, raise_exception)


def gradgradcheck_function(
    fn: Callable[..., Any],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = False,
) -> bool:
    """``torch.autograd.gradgradcheck``: checks the gradient of the gradient (second order)."""
    return _torch_check(torch.autograd.gradgradcheck, fn, inputs, eps, atol, rtol, raise_exception)
