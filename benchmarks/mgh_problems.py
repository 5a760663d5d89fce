"""Standard unconstrained test problems for the second-order benchmark.

Moré, Garbow & Hillstrom (1981), "Testing unconstrained optimization software", ACM TOMS 7(1):
17–41 — least-squares problems ``f(x) = Σᵢ rᵢ(x)²`` with their standard starting points and the
best known minimum value f* the paper reports (the number in brackets is the problem's number
there) — plus the chained Rosenbrock function in 100 dimensions that the README's earlier table
used. Each residual is written in torch (float64), so both descentlab and SciPy are given the very
same f, ∇f and ∇²f (SciPy through :func:`torch.func.grad` / :func:`torch.func.hessian`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Residuals = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Problem:
    name: str
    x0: tuple[float, ...]
    f_star: float  # the best known minimum value (MGH's table)
    residuals: Residuals | None = None
    objective: Callable[[Tensor], Tensor] | None = None  # when f is not a sum of squares

    def f(self, x: Tensor) -> Tensor:
        if self.objective is not None:
            return self.objective(x)
        return torch.sum(self.residuals(x) ** 2)

    @property
    def n(self) -> int:
        return len(self.x0)


def _stack(*terms: Tensor) -> Tensor:
    return torch.stack(list(terms))


def rosenbrock(x: Tensor) -> Tensor:  # [1]
    return _stack(10 * (x[1] - x[0] ** 2), 1 - x[0])


def freudenstein_roth(x: Tensor) -> Tensor:  # [2]
    return _stack(
        -13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1],
        -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1],
    )


def powell_badly_scaled(x: Tensor) -> Tensor:  # [3]
    return _stack(1e4 * x[0] * x[1] - 1, torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001)


def brown_badly_scaled(x: Tensor) -> Tensor:  # [4]
    return _stack(x[0] - 1e6, x[1] - 2e-6, x[0] * x[1] - 2)


def beale(x: Tensor) -> Tensor:  # [5]
    y = torch.tensor([1.5, 2.25, 2.625], dtype=x.dtype)
    i = torch.arange(1, 4, dtype=x.dtype)
    return y - x[0] * (1 - x[1] ** i)


def jennrich_sampson(x: Tensor) -> Tensor:  # [6], m = 10
    i = torch.arange(1, 11, dtype=x.dtype)
    return 2 + 2 * i - (torch.exp(i * x[0]) + torch.exp(i * x[1]))


def helical_valley(x: Tensor) -> Tensor:  # [7]
    theta = torch.atan(x[1] / x[0]) / (2 * math.pi) + torch.where(x[0] < 0, 0.5, 0.0)
    return _stack(10 * (x[2] - 10 * theta), 10 * (torch.sqrt(x[0] ** 2 + x[1] ** 2) - 1), x[2])


_BARD_Y = [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39]


def bard(x: Tensor) -> Tensor:  # [8]
    u = torch.arange(1, 16, dtype=x.dtype)
    v = 16 - u
    w = torch.minimum(u, v)
    return torch.tensor(_BARD_Y, dtype=x.dtype) - (x[0] + u / (v * x[1] + w * x[2]))


_GAUSSIAN_Y = [0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989]


def gaussian(x: Tensor) -> Tensor:  # [9]
    y = torch.tensor(_GAUSSIAN_Y + _GAUSSIAN_Y[-2::-1], dtype=x.dtype)
    t = (8 - torch.arange(1, 16, dtype=x.dtype)) / 2
    return x[0] * torch.exp(-x[1] * (t - x[2]) ** 2 / 2) - y


_MEYER_Y = [34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744, 8261, 7030, 6005, 5147, 4427, 3820,
            3307, 2872]  # fmt: skip


def meyer(x: Tensor) -> Tensor:  # [10]
    t = 45 + 5 * torch.arange(1, 17, dtype=x.dtype)
    return x[0] * torch.exp(x[1] / (t + x[2])) - torch.tensor(_MEYER_Y, dtype=x.dtype)


def box_3d(x: Tensor) -> Tensor:  # [12], m = 10
    t = 0.1 * torch.arange(1, 11, dtype=x.dtype)
    return torch.exp(-t * x[0]) - torch.exp(-t * x[1]) - x[2] * (torch.exp(-t) - torch.exp(-10 * t))


def powell_singular(x: Tensor) -> Tensor:  # [13]; [22] for n = 4k
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return torch.cat([a + 10 * b, math.sqrt(5) * (c - d), (b - 2 * c) ** 2, math.sqrt(10) * (a - d) ** 2])


def wood(x: Tensor) -> Tensor:  # [14]
    return _stack(
        10 * (x[1] - x[0] ** 2),
        1 - x[0],
        math.sqrt(90) * (x[3] - x[2] ** 2),
        1 - x[2],
        math.sqrt(10) * (x[1] + x[3] - 2),
        (x[1] - x[3]) / math.sqrt(10),
    )


_KOWALIK_Y = [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]
_KOWALIK_U = [4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625]


def kowalik_osborne(x: Tensor) -> Tensor:  # [15]
    u = torch.tensor(_KOWALIK_U, dtype=x.dtype)
    y = torch.tensor(_KOWALIK_Y, dtype=x.dtype)
    return y - x[0] * (u**2 + u * x[1]) / (u**2 + u * x[2] + x[3])


def brown_dennis(x: Tensor) -> Tensor:  # [16], m = 20
    t = 0.2 * torch.arange(1, 21, dtype=x.dtype)
    return (x[0] + t * x[1] - torch.exp(t)) ** 2 + (x[2] + x[3] * torch.sin(t) - torch.cos(t)) ** 2


def biggs_exp6(x: Tensor) -> Tensor:  # [18], m = 13
    t = 0.1 * torch.arange(1, 14, dtype=x.dtype)
    y = torch.exp(-t) - 5 * torch.exp(-10 * t) + 3 * torch.exp(-4 * t)
    return x[2] * torch.exp(-t * x[0]) - x[3] * torch.exp(-t * x[1]) + x[5] * torch.exp(-t * x[4]) - y


def watson(x: Tensor) -> Tensor:  # [20]
    n = x.numel()
    t = (torch.arange(1, 30, dtype=x.dtype) / 29).unsqueeze(1)
    j = torch.arange(n, dtype=x.dtype)
    first = torch.sum(j[1:] * x[1:] * t ** (j[1:] - 1), dim=1)
    second = torch.sum(x * t**j, dim=1)
    return torch.cat([first - second**2 - 1, _stack(x[0], x[1] - x[0] ** 2 - 1)])


def penalty_1(x: Tensor) -> Tensor:  # [23]
    return torch.cat([math.sqrt(1e-5) * (x - 1), (torch.sum(x**2) - 0.25).unsqueeze(0)])


def penalty_2(x: Tensor) -> Tensor:  # [24]
    n = x.numel()
    i = torch.arange(2, n + 1, dtype=x.dtype)
    y = torch.exp(i / 10) + torch.exp((i - 1) / 10)
    a = math.sqrt(1e-5)
    weights = torch.arange(n, 0, -1, dtype=x.dtype)
    return torch.cat(
        [
            (x[0] - 0.2).unsqueeze(0),
            a * (torch.exp(x[1:] / 10) + torch.exp(x[:-1] / 10) - y),
            a * (torch.exp(x[1:] / 10) - math.exp(-0.1)),
            (torch.sum(weights * x**2) - 1).unsqueeze(0),
        ]
    )


def variably_dimensioned(x: Tensor) -> Tensor:  # [25]
    s = torch.sum(torch.arange(1, x.numel() + 1, dtype=x.dtype) * (x - 1))
    return torch.cat([x - 1, s.unsqueeze(0), (s**2).unsqueeze(0)])


def trigonometric(x: Tensor) -> Tensor:  # [26]
    n = x.numel()
    i = torch.arange(1, n + 1, dtype=x.dtype)
    return n - torch.sum(torch.cos(x)) + i * (1 - torch.cos(x)) - torch.sin(x)


def brown_almost_linear(x: Tensor) -> Tensor:  # [27]
    n = x.numel()
    return torch.cat([x[:-1] + torch.sum(x) - (n + 1), (torch.prod(x) - 1).unsqueeze(0)])


def discrete_boundary_value(x: Tensor) -> Tensor:  # [28]
    n = x.numel()
    h = 1 / (n + 1)
    t = h * torch.arange(1, n + 1, dtype=x.dtype)
    padded = torch.cat([x.new_zeros(1), x, x.new_zeros(1)])
    return 2 * x - padded[:-2] - padded[2:] + h**2 * (x + t + 1) ** 3 / 2


def broyden_tridiagonal(x: Tensor) -> Tensor:  # [30]
    padded = torch.cat([x.new_zeros(1), x, x.new_zeros(1)])
    return (3 - 2 * x) * x - padded[:-2] - 2 * padded[2:] + 1


def chebyquad(x: Tensor) -> Tensor:  # [35], m = n
    n = x.numel()
    z = 2 * x - 1
    polys = [torch.ones_like(z), z]
    for _ in range(n - 1):
        polys.append(2 * z * polys[-1] - polys[-2])
    means = torch.stack([p.mean() for p in polys[1 : n + 1]])
    i = torch.arange(1, n + 1, dtype=x.dtype)
    exact = torch.where(i % 2 == 0, -1 / (i**2 - 1), 0.0)
    return means - exact


def chained_rosenbrock(x: Tensor) -> Tensor:
    return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _alternating(n: int, a: float, b: float) -> tuple[float, ...]:
    return tuple(a if i % 2 == 0 else b for i in range(n))


def _powell_start(n: int) -> tuple[float, ...]:
    return tuple((3.0, -1.0, 0.0, 1.0)[i % 4] for i in range(n))


PROBLEMS: list[Problem] = [
    Problem("Rosenbrock 2-D [1]", (-1.2, 1.0), 0.0, rosenbrock),
    Problem("Rosenbrock 100-D (chained)", _alternating(100, -1.2, 1.0), 0.0, objective=chained_rosenbrock),
    Problem("Freudenstein–Roth [2]", (0.5, -2.0), 0.0, freudenstein_roth),
    Problem("Powell badly scaled [3]", (0.0, 1.0), 0.0, powell_badly_scaled),
    Problem("Brown badly scaled [4]", (1.0, 1.0), 0.0, brown_badly_scaled),
    Problem("Beale [5]", (1.0, 1.0), 0.0, beale),
    Problem("Jennrich–Sampson [6]", (0.3, 0.4), 124.362, jennrich_sampson),
    Problem("Helical valley [7]", (-1.0, 0.0, 0.0), 0.0, helical_valley),
    Problem("Bard [8]", (1.0, 1.0, 1.0), 8.21487e-3, bard),
    Problem("Gaussian [9]", (0.4, 1.0, 0.0), 1.12793e-8, gaussian),
    Problem("Meyer [10]", (0.02, 4000.0, 250.0), 87.9458, meyer),
    Problem("Box 3-D [12]", (0.0, 10.0, 20.0), 0.0, box_3d),
    Problem("Powell singular [13]", (3.0, -1.0, 0.0, 1.0), 0.0, powell_singular),
    Problem("Wood [14]", (-3.0, -1.0, -3.0, -1.0), 0.0, wood),
    Problem("Kowalik–Osborne [15]", (0.25, 0.39, 0.415, 0.39), 3.07505e-4, kowalik_osborne),
    Problem("Brown–Dennis [16]", (25.0, 5.0, -5.0, -1.0), 85822.2, brown_dennis),
    Problem("Biggs EXP6 [18]", (1.0, 2.0, 1.0, 1.0, 1.0, 1.0), 0.0, biggs_exp6),
    Problem("Watson n=6 [20]", (0.0,) * 6, 2.28767e-3, watson),
    Problem("Ext. Powell singular n=20 [22]", _powell_start(20), 0.0, powell_singular),
    Problem("Penalty I n=10 [23]", tuple(float(i) for i in range(1, 11)), 7.08765e-5, penalty_1),
    Problem("Penalty II n=10 [24]", (0.5,) * 10, 2.93660e-4, penalty_2),
    Problem("Variably dim. n=10 [25]", tuple(1 - i / 10 for i in range(1, 11)), 0.0, variably_dimensioned),
    Problem("Trigonometric n=10 [26]", (0.1,) * 10, 0.0, trigonometric),
    Problem("Brown almost-linear n=10 [27]", (0.5,) * 10, 0.0, brown_almost_linear),
    Problem(
        "Discrete boundary n=10 [28]",
        tuple((i / 11) * (i / 11 - 1) for i in range(1, 11)),
        0.0,
        discrete_boundary_value,
    ),
    Problem("Broyden tridiagonal n=10 [30]", (-1.0,) * 10, 0.0, broyden_tridiagonal),
    Problem("Chebyquad n=8 [35]", tuple(i / 9 for i in range(1, 9)), 3.51687e-3, chebyquad),
]
