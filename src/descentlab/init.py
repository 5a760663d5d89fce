"""Weight initialisation (notes 000), on top of ``torch.nn.init``.

"We need to avoid neurons having the same gradient": start from small random weights,
scaled to the layer's fan-in (and fan-out) so that activations and gradients keep their
size through depth. Each scheme here is ``torch.nn.init`` with the notes' names, argument
checks and the equation next to it; :func:`init_model` applies one to a whole model.

========================  =====================================================  ==========================
scheme                    weights                                                torch
========================  =====================================================  ==========================
``"fan_in"``              ``w ~ N(0, gain²/fan_in)`` — the notes' ``randn(N)/√N``  ``normal_``
``"xavier_uniform"``      ``w ~ U(−a, a)``, ``a = gain·√(6/(fan_in + fan_out))``  ``xavier_uniform_``
``"xavier_normal"``       ``w ~ N(0, σ²)``, ``σ = gain·√(2/(fan_in + fan_out))``  ``xavier_normal_``
``"kaiming_uniform"``     ``U(−b, b)``, ``b = gain(nonlinearity)·√(3/fan)``        ``kaiming_uniform_``
``"kaiming_normal"``      ``N(0, σ²)``, ``σ = gain(nonlinearity)/√fan``            ``kaiming_normal_``
``"orthogonal"``          ``gain · Q`` with ``Q`` a random (semi-)orthogonal matrix    ``orthogonal_``
========================  =====================================================  ==========================

A correction to the notes: notes 000 write the Xavier–Glorot *variance* as
``σ² = gain·√(2/(fan_in + fan_out))``. Glorot & Bengio (2010) — and torch — have the
*standard deviation* ``σ = gain·√(2/(fan_in + fan_out))``, i.e. ``σ² = gain²·2/(fan_in +
fan_out)``; that is also the variance of ``U(−a, a)`` with the notes' own bound ``a``
(``a²/3``). descentlab implements the correct statement.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .validation import check_choice, check_number, check_positive

__all__ = [
    "fan_in_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "INIT_SCHEMES",
    "init_model",
    "InitReport",
    "InitRecord",
]


#: the ``nonlinearity`` names ``torch.nn.init.calculate_gain`` knows.
_NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                   "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def _check_generator(generator: Any) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def _check_kaiming(nonlinearity: Any, mode: Any, a: Any, generator: Any) -> None:
    check_choice("nonlinearity", nonlinearity, _NONLINEARITIES)
    check_choice("mode", mode, ("fan_in", "fan_out"))
    check_number("a", a)
    _check_generator(generator)


def _fans(tensor: Tensor) -> tuple[int, int]:
    if not isinstance(tensor, Tensor):
        raise ValueError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() < 2:
        raise ValueError(
            f"tensor must have at least 2 dimensions (fan-in and fan-out), got shape {tuple(tensor.shape)}"
        )
    return nn.init._calculate_fan_in_and_fan_out(tensor)


@torch.no_grad()
def fan_in_normal_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """``w ~ N(0, gain²/fan_in)``: the notes' ``w = randn(N)/√N`` (``N`` = fan-in), in place."""
    gain = check_positive("gain", gain)
    fan_in, _ = _fans(tensor)
    return nn.init.normal_(tensor, 0.0, gain / math.sqrt(fan_in), generator=_check_generator(generator))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Xavier–Glorot uniform: ``w ~ U(−a, a)``, ``a = gain·√(6/(fan_in + fan_out))``,
    hence ``σ = gain·√(2/(fan_in + fan_out))`` (Glorot & Bengio 2010; notes 000)."""
    gain = check_positive("gain", gain)
    _fans(tensor)
    return nn.init.xavier_uniform_(tensor, gain=gain, generator=_check_generator(generator))


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Xavier–Glorot normal: ``w ~ N(0, σ²)``, ``σ = gain·√(2/(fan_in + fan_out))``."""
    gain = check_positive("gain", gain)
    _fans(tensor)
    return nn.init.xavier_normal_(tensor, gain=gain, generator=_check_generator(generator))


def kaiming_uniform_(
    tensor: Tensor,
    nonlinearity: str = "relu",
    mode: str = "fan_in",
    a: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """He et al. (2015): ``w ~ U(−b, b)``, ``b = g·√(3/fan)``, ``g = calculate_gain(nonlinearity, a)``
    (``√2`` for ReLU), ``fan`` = fan-in or fan-out by ``mode``."""
    _check_kaiming(nonlinearity, mode, a, generator)
    _fans(tensor)
    return nn.init.kaiming_uniform_(tensor, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)


def kaiming_normal_(
    tensor: Tensor,
    nonlinearity: str = "relu",
    mode: str = "fan_in",
    a: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """He et al. (2015): ``w ~ N(0, σ²)``, ``σ = g/√fan`` (``σ² = 2/fan_in`` for ReLU)."""
    _check_kaiming(nonlinearity, mode, a, generator)
    _fans(tensor)
    return nn.init.kaiming_normal_(tensor, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """``w = gain·Q``, ``Q`` (semi-)orthogonal (Saxe et al. 2014): ``W Wᵀ = gain²·I`` when
    rows ≤ columns (``Wᵀ W = gain²·I`` otherwise), trailing dimensions flattened."""
    gain = check_positive("gain", gain)
    _fans(tensor)
    return nn.init.orthogonal_(tensor, gain=gain, generator=_check_generator(generator))


#: scheme name → in-place initialiser ``f(tensor, **options)``.
INIT_SCHEMES: dict[str, Callable[..., Tensor]] = {
    "fan_in": fan_in_normal_,
    "xavier_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_,
    "kaiming_uniform": kaiming_uniform_,
    "kaiming_normal": kaiming_normal_,
    "orthogonal": orthogonal_,
}

_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase, nn.Bilinear)


@dataclass(frozen=True)
class InitRecord:
    """One tensor :func:`init_model` touched."""

    name: str
    shape: tuple[int, ...]
    action: str  # the scheme name, or "zeros" / "constant(b)" for biases
    fan_in: int | None
    fan_out: int | None


class InitReport(list):
    """The tensors :func:`init_model` initialised (a list of :class:`InitRecord`); prints as a table."""

    def __str__(self) -> str:
        header = ("parameter", "shape", "init", "fan_in", "fan_out")
        rows = [
            (
                r.name,
                "×".join(map(str, r.shape)),
                r.action,
                "" if r.fan_in is None else str(r.fan_in),
                "" if r.fan_out is None else str(r.fan_out),
            )
            for r in self
        ]
        widths = [
            max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)
        ]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        return "\n".join(lines)


@torch.no_grad()
def init_model(
    model: nn.Module,
    scheme: str = "xavier_uniform",
    *,
    bias: float | None = 0.0,
    generator: torch.Generator | None = None,
    **options: Any,
) -> InitReport:
    """Initialise every Linear / Conv / ConvTranspose / RNN / LSTM / GRU / Bilinear weight of ``model``.

    Args:
        model: the model, modified in place.
        scheme: one of :data:`INIT_SCHEMES`.
        bias: value for those modules' biases (``0.0`` by default); ``None`` leaves them.
        generator: a ``torch.Generator`` for reproducible draws.
        **options: passed to the scheme (``gain=...``, ``nonlinearity="relu"``, ...).

    Recurrent weights (``weight_ih_l*``, ``weight_hh_l*``) are initialised as whole matrices
    (all gates together). Other modules (norms, embeddings) are left alone. Returns an
    :class:`InitReport` of what was touched, in module order.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(INIT_SCHEMES)}, got {scheme!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if bias is not None:
        bias = check_number("bias", bias)
    _check_generator(generator)
    initialise = INIT_SCHEMES[scheme]
    signature = inspect.signature(initialise)
    try:
        signature.bind(None, generator=generator, **options)
    except TypeError:
        keys = [name for name in signature.parameters if name not in ("tensor", "generator")]
        raise ValueError(
            f"options: scheme {scheme!r} takes {', '.join(keys)}; got {', '.join(options)}"
        ) from None
    report = InitReport()
    for module_name, module in model.named_modules():
        if not isinstance(module, _WEIGHTED):
            continue
        for name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if name.startswith("weight") and param.dim() >= 2:
                initialise(param, generator=generator, **options)
                fan_in, fan_out = _fans(param)
                report.append(InitRecord(full, tuple(param.shape), scheme, fan_in, fan_out))
            elif name.startswith("bias") and bias is not None:
                param.fill_(bias)
                action = "zeros" if bias == 0 else f"constant({bias:g})"
                report.append(InitRecord(full, tuple(param.shape), action, None, None))
    return report
