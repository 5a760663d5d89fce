"""Loss landscapes to race optimizers on: differentiable torch functions with their metadata.

A :class:`Landscape` is a function ``f(w)`` of a point ``w`` (a tensor whose last dimension is the
landscape's dimension, so a whole grid can be evaluated at once) together with what a race or a plot
needs to know about it: a formula, a plotting domain, the known minima and a sensible start.

Minima are given as approximate positions and polished numerically with SciPy when the landscape is
built, so the numbers a race compares against are those of the function actually implemented.

Stochastic landscapes draw one *sample* per optimizer step (``sample(generator)``) and evaluate the
loss of that sample with ``sample_loss(w, sample)``; the true loss ``f(w)`` is what races record.

* :func:`with_gradient_noise` adds ``ξ_k·w`` with ``ξ_k ~ N(0, σ²I)`` to the loss, so the gradient seen
  by the optimizer is ``∇f(w) + ξ_k`` — additive gradient noise of standard deviation σ.
* :func:`least_squares` is a real mini-batch problem (notes 001): fitting a line ``y ≈ a·x + b`` to a
  seeded synthetic data set, where batch size 1 / m / all gives online, mini-batch and full-batch
  gradient descent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import Tensor

from .specs import build_from_spec
from .validation import check_callable, check_int, check_number, check_positive

__all__ = [
    "Landscape",
    "LANDSCAPES",
    "get_landscape",
    "with_gradient_noise",
    "two_minima",
    "rosenbrock",
    "beale",
    "himmelblau",
    "rastrigin",
    "rotated_quadratic",
    "strongly_convex",
    "saddle",
    "plateau",
    "ravine",
    "least_squares",
]

Box = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Landscape:
    """A differentiable test function with what a race needs to know about it.

    ``fn`` maps a tensor of shape ``(..., dim)`` to the loss, shape ``(...)``. ``minima`` are the known
    (local or global) minimisers and ``minimum_values`` their losses; the first listed is the global one.
    """

    name: str
    fn: Callable[[Tensor], Tensor]
    dim: int
    domain: Box
    minima: tuple[tuple[float, ...], ...]
    minimum_values: tuple[float, ...]
    start: tuple[float, ...]
    formula: str
    latex: str = ""
    description: str = ""
    noise: float = 0.0
    batch_size: int | None = None
    data: tuple[Tensor, Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        check_callable("fn", self.fn, "fn(w) -> loss")
        dim = check_int("dim", self.dim, low=1)
        for field_name in ("domain", "start"):
            value = getattr(self, field_name)
            if len(value) != dim:
                raise ValueError(f"{field_name} must have {dim} entries (dim), got {value!r}")
        for i, (low, high) in enumerate(self.domain):
            if not low < high:
                raise ValueError(f"domain[{i}] must be (low, high) with low < high, got {(low, high)!r}")
        if not self.minima or len(self.minima) != len(self.minimum_values):
            raise ValueError(f"minima and minimum_values must be non-empty and of one length, got "
                             f"{len(self.minima)} minima and {len(self.minimum_values)} values")
        for i, point in enumerate(self.minima):
            if len(point) != dim:
                raise ValueError(f"minima[{i}] must have {dim} coordinates, got {point!r}")
        check_number("noise", self.noise, low=0.0)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, low=1)

    def __call__(self, w: Tensor) -> Tensor:
        """The true loss ``f(w)``."""
        return self.fn(w)

    @property
    def stochastic(self) -> bool:
        return self.noise > 0 or (self.data is not None and self.batch_size is not None)

    @property
    def diagonal(self) -> float:
        """Length of the plotting box's diagonal: the length scale of tolerances."""
        return math.sqrt(sum((hi - lo) ** 2 for lo, hi in self.domain))

    @property
    def center(self) -> tuple[float, ...]:
        return tuple((lo + hi) / 2 for lo, hi in self.domain)

    def contains(self, point: Any) -> bool:
        """Whether ``point`` lies in the plotting domain (edges included)."""
        values = _as_tuple(point)
        return len(values) == self.dim and all(lo <= v <= hi for v, (lo, hi) in zip(values, self.domain))

    def sampler(self, seed: int) -> Callable[[], Any]:
        """A seeded source of what each step of a run sees: ``None``, a noise vector or a mini-batch.

        Two samplers with the same seed give the same sequence, so every optimizer in a race sees the
        same noise and the same batches.
        """
        generator = torch.Generator().manual_seed(seed)
        if self.data is not None and self.batch_size is not None:
            n, size = self.data[0].shape[0], self.batch_size

            def batches() -> Iterator[Tensor]:
                while True:  # one seeded random order per epoch
                    order = torch.randperm(n, generator=generator)
                    for i in range(0, n, size):
                        yield order[i : i + size]

            stream = batches()
            return lambda: next(stream)
        if self.noise > 0:
            return lambda: self.noise * torch.randn(self.dim, generator=generator, dtype=torch.float64)
        return lambda: None

    def sample_loss(self, w: Tensor, sample: Any) -> Tensor:
        """The loss whose gradient the optimizer sees at this step."""
        if self.data is not None and self.batch_size is not None:
            x, y = self.data
            return _squared_error(w, x[sample], y[sample])
        loss = self.fn(w)
        if sample is not None:
            loss = loss + (sample.to(w.dtype) * w).sum()
        return loss


def _as_tuple(point: Any) -> tuple[float, ...]:
    if isinstance(point, Tensor):
        return tuple(float(v) for v in point.detach().reshape(-1))
    return tuple(float(v) for v in np.asarray(point, dtype=float).reshape(-1))


def _polish(fn: Callable[[Tensor], Tensor], guesses: list[tuple[float, ...]]) -> tuple[tuple, tuple]:
    """Refine approximate minimisers with BFGS on the torch function; return positions and values."""

    def value_and_grad(v: np.ndarray) -> tuple[float, np.ndarray]:
        w = torch.tensor(v, dtype=torch.float64, requires_grad=True)
        loss = fn(w)
        (grad,) = torch.autograd.grad(loss, w)
        return float(loss.detach()), grad.numpy()

    positions, values = [], []
    for guess in guesses:
        result = scipy.optimize.minimize(
            value_and_grad, np.asarray(guess, float), jac=True, method="BFGS", options={"gtol": 1e-12}
        )
        positions.append(tuple(float(v) for v in result.x))
        values.append(float(result.fun))
    return tuple(positions), tuple(values)


def _make(
    name: str,
    fn: Callable[[Tensor], Tensor],
    *,
    domain: Box,
    guesses: list[tuple[float, ...]],
    start: tuple[float, ...],
    formula: str,
    latex: str,
    description: str,
) -> Landscape:
    minima, values = _polish(fn, guesses)
    return Landscape(
        name=name,
        fn=fn,
        dim=len(start),
        domain=domain,
        minima=minima,
        minimum_values=values,
        start=start,
        formula=formula,
        latex=latex,
        description=description,
    )


# --------------------------------------------------------------------------------------------------
# The functions


def two_minima() -> Landscape:
    """The notes' two-minima function (file 001): a shallow well at x ≈ 1 and a deep one at x ≈ −1."""

    def fn(w: Tensor) -> Tensor:
        x, y = w[..., 0], w[..., 1]
        return (
            -2 * torch.exp(-((x - 1) ** 2 + y**2) / 0.2)
            - 6 * torch.exp(-((x + 1) ** 2 + y**2) / 0.2)
            + x**2
            + y**2
        )

    return _make(
        "two-minima",
        fn,
        domain=((-2.0, 2.0), (-1.5, 1.5)),
        guesses=[(-1.0, 0.0), (1.0, 0.0)],
        start=(1.6, 1.2),
        formula="z = −2·exp(−((x−1)²+y²)/0.2) − 6·exp(−((x+1)²+y²)/0.2) + x² + y²",
        latex=r"$z=-2e^{-((x-1)^2+y^2)/0.2}-6e^{-((x+1)^2+y^2)/0.2}+x^2+y^2$",
        description="two wells: a shallow one near (1, 0) and the deeper, global one near (−1, 0)",
    )


def rosenbrock(dim: int = 2, a: float = 1.0, b: float = 100.0) -> Landscape:
    """Rosenbrock's banana valley, n-dimensional: ``Σᵢ b(xᵢ₊₁ − xᵢ²)² + (a − xᵢ)²``; minimum at (a, a², …)."""
    check_int("dim", dim, low=2)
    check_number("a", a)
    check_positive("b", b)

    def fn(w: Tensor) -> Tensor:
        head, tail = w[..., :-1], w[..., 1:]
        return (b * (tail - head**2) ** 2 + (a - head) ** 2).sum(-1)

    minimum = [a]
    for _ in range(dim - 1):
        minimum.append(minimum[-1] ** 2)
    start = (-1.5, 2.0) + (1.0,) * (dim - 2) if dim > 2 else (-1.5, 2.0)
    return _make(
        "rosenbrock" if dim == 2 else f"rosenbrock-{dim}d",
        fn,
        domain=((-2.0, 2.0), (-1.0, 3.0)) + ((-2.0, 2.0),) * (dim - 2),
        guesses=[tuple(minimum)],
        start=start,
        formula=f"z = Σ {b:g}(xᵢ₊₁ − xᵢ²)² + ({a:g} − xᵢ)²",
        latex=rf"$z=\sum_i {b:g}(x_{{i+1}}-x_i^2)^2+({a:g}-x_i)^2$",
        description="a long, curved, flat-bottomed valley: easy to find, hard to follow",
    )


def beale() -> Landscape:
    """Beale's function: ``(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²``; minimum (3, 0.5)."""

    def fn(w: Tensor) -> Tensor:
        x, y = w[..., 0], w[..., 1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    return _make(
        "beale",
        fn,
        domain=((-4.5, 4.5), (-4.5, 4.5)),
        guesses=[(3.0, 0.5)],
        start=(1.0, 1.5),
        formula="z = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
        latex=r"$z=(1.5-x+xy)^2+(2.25-x+xy^2)^2+(2.625-x+xy^3)^2$",
        description="sharp ridges and flat arms around a minimum at (3, 0.5)",
    )


def himmelblau() -> Landscape:
    """Himmelblau's function ``(x² + y − 11)² + (x + y² − 7)²``: four global minima of value 0."""

    def fn(w: Tensor) -> Tensor:
        x, y = w[..., 0], w[..., 1]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    return _make(
        "himmelblau",
        fn,
        domain=((-5.0, 5.0), (-5.0, 5.0)),
        guesses=[(3.0, 2.0), (-2.8, 3.1), (-3.8, -3.3), (3.6, -1.8)],
        start=(0.0, 0.0),
        formula="z = (x² + y − 11)² + (x + y² − 7)²",
        latex=r"$z=(x^2+y-11)^2+(x+y^2-7)^2$",
        description="four equally deep minima: where you end depends on where you start",
    )


def rastrigin(dim: int = 2, amplitude: float = 10.0) -> Landscape:
    """Rastrigin's function ``A·n + Σ xᵢ² − A·cos(2πxᵢ)``: a bowl covered in local minima."""
    check_int("dim", dim, low=2)
    check_positive("amplitude", amplitude)

    def fn(w: Tensor) -> Tensor:
        return amplitude * w.shape[-1] + (w**2 - amplitude * torch.cos(2 * math.pi * w)).sum(-1)

    return _make(
        "rastrigin" if dim == 2 else f"rastrigin-{dim}d",
        fn,
        domain=((-5.12, 5.12),) * dim,
        guesses=[(0.0,) * dim],
        start=(3.2, 2.1) + (1.0,) * (dim - 2),
        formula=f"z = {amplitude:g}n + Σ xᵢ² − {amplitude:g}·cos(2πxᵢ)",
        latex=rf"$z={amplitude:g}n+\sum_i x_i^2-{amplitude:g}\cos(2\pi x_i)$",
        description="a bowl covered in local minima; only the one at the origin is global",
    )


def rotated_quadratic(kappa: float = 100.0, dim: int = 2, angle: float = 30.0, seed: int = 0) -> Landscape:
    """``½·wᵀAw`` with ``A = Q·diag(λ)·Qᵀ``, eigenvalues from 1 to κ: condition number κ.

    In 2-D ``Q`` is the rotation by ``angle`` degrees; in n-D the eigenvalues are spaced geometrically
    and ``Q`` is a seeded random orthogonal matrix.
    """
    check_int("dim", dim, low=2)
    check_number("kappa", kappa, low=1.0)
    check_number("angle", angle)
    check_int("seed", seed, low=0)
    eigenvalues = torch.logspace(0, math.log10(kappa), dim, dtype=torch.float64)
    if dim == 2:
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        q = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    else:
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    hessian = q @ torch.diag(eigenvalues) @ q.T

    def fn(w: Tensor) -> Tensor:
        return 0.5 * ((w @ hessian.to(w.dtype)) * w).sum(-1)

    return _make(
        "quadratic" if dim == 2 else f"quadratic-{dim}d",
        fn,
        domain=((-2.0, 2.0),) * dim,
        guesses=[(0.0,) * dim],
        start=(-1.5, 1.5) + (1.0,) * (dim - 2),
        formula=f"z = ½·wᵀAw, eigenvalues of A from 1 to κ = {kappa:g} (rotated)",
        latex=rf"$z=\frac{{1}}{{2}}w^\top A w,\ \kappa(A)={kappa:g}$",
        description=f"an ill-conditioned bowl (condition number κ = {kappa:g}), tilted off the axes",
    )


def strongly_convex() -> Landscape:
    """A strongly convex quadratic with an off-origin minimum: ``(x − 1)² + 4(y − 0.5)² + xy``."""

    def fn(w: Tensor) -> Tensor:
        x, y = w[..., 0], w[..., 1]
        return (x - 1) ** 2 + 4 * (y - 0.5) ** 2 + x * y

    return _make(
        "strongly-convex",
        fn,
        domain=((-2.0, 3.0), (-1.5, 2.0)),
        guesses=[(1.0, 0.0)],
        start=(-1.5, 1.5),
        formula="z = (x − 1)² + 4(y − 0.5)² + xy",
        latex=r"$z=(x-1)^2+4(y-\frac{1}{2})^2+xy$",
        description="one minimum, curvature bounded below: every sensible method gets there",
    )


def saddle() -> Landscape:
    """``x⁴/4 − x²/2 + y²``: a saddle at the origin between two minima at (±1, 0).

    The default start lies a hair off the ridge (x = 10⁻⁵): gradient descent slides down to the saddle
    and stalls there while momentum or noise escapes to a minimum.
    """

    def fn(w: Tensor) -> Tensor:
        x, y = w[..., 0], w[..., 1]
        return x**4 / 4 - x**2 / 2 + y**2

    return _make(
        "saddle",
        fn,
        domain=((-1.6, 1.6), (-1.6, 1.6)),
        guesses=[(1.0, 0.0), (-1.0, 0.0)],
        start=(1e-5, 1.5),
        formula="z = x⁴/4 − x²/2 + y²  (saddle at the origin)",
        latex=r"$z=\frac{x^4}{4}-\frac{x^2}{2}+y^2$",
        description="a saddle point at the origin between two minima at (±1, 0)",
    )


def plateau() -> Landscape:
    """A flat plateau that drops into a well: ``1 − exp(−(x² + y²)/2)``."""

    def fn(w: Tensor) -> Tensor:
        return 1 - torch.exp(-(w**2).sum(-1) / 2)

    return _make(
        "plateau",
        fn,
        domain=((-4.5, 4.5), (-4.5, 4.5)),
        guesses=[(0.0, 0.0)],
        start=(3.8, 1.0),
        formula="z = 1 − exp(−(x² + y²)/2)",
        latex=r"$z=1-e^{-(x^2+y^2)/2}$",
        description="almost flat far from the origin (gradients ≈ 0), then a drop into the well",
    )


def ravine() -> Landscape:
    """A narrow curved ravine ``0.05(x − 2)² + 10(y − x²/4)²``, minimum at (2, 1)."""

    def fn(w: Tensor) -> Tensor:
        x, y = w[..., 0], w[..., 1]
        return 0.05 * (x - 2) ** 2 + 10 * (y - x**2 / 4) ** 2

    return _make(
        "ravine",
        fn,
        domain=((-2.5, 3.0), (-0.5, 2.5)),
        guesses=[(2.0, 1.0)],
        start=(-2.0, 1.8),
        formula="z = 0.05(x − 2)² + 10(y − x²/4)²",
        latex=r"$z=0.05(x-2)^2+10(y-x^2/4)^2$",
        description="steep walls, a gentle floor: gradients point across the ravine, not along it",
    )


def _squared_error(w: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """``½·mean((a·x + b − y)²)`` for ``w = (a, b)``; broadcasts over leading dimensions of ``w``."""
    a, b = w[..., 0:1], w[..., 1:2]
    return 0.5 * ((a * x.to(w.dtype) + b - y.to(w.dtype)) ** 2).mean(-1)


def least_squares(batch_size: int | None = None, n: int = 64, seed: int = 0) -> Landscape:
    """Fit ``y ≈ a·x + b`` to ``n`` seeded noisy points of ``y = 2x − 1``: a mini-batch problem.

    ``batch_size`` 1 is online SGD, ``1 < m < n`` mini-batch SGD and ``None`` (or ``n``) full-batch
    gradient descent; each epoch visits the points in a fresh seeded random order. The minimum is the
    least-squares solution, solved with ``torch.linalg.lstsq``.
    """
    check_int("n", n, low=2)
    if batch_size is not None:
        check_int("batch_size", batch_size, low=1, high=n)
    check_int("seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g, dtype=torch.float64) * 4 - 2
    y = 2 * x - 1 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    design = torch.stack([x, torch.ones_like(x)], dim=1)
    solution = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    a, b = (float(v) for v in solution)

    def fn(w: Tensor) -> Tensor:
        return _squared_error(w, x, y)

    value = float(fn(solution))
    batch = None if batch_size is None or batch_size == n else batch_size
    kind = "full batch" if batch is None else ("online" if batch == 1 else f"mini-batch of {batch}")
    return Landscape(
        name="least-squares",
        fn=fn,
        dim=2,
        domain=((a - 3.0, a + 3.0), (b - 3.0, b + 3.0)),
        minima=((a, b),),
        minimum_values=(value,),
        start=(a - 2.5, b + 2.5),
        formula=f"z = ½·mean((a·xᵢ + b − yᵢ)²) over {n} points ({kind})",
        latex=r"$z=\frac{1}{2m}\sum_{i\in B}(a x_i+b-y_i)^2$",
        description="fitting a line to noisy points: each step sees a batch of the data",
        batch_size=batch,
        data=(x, y),
    )


def with_gradient_noise(landscape: Landscape, sigma: float) -> Landscape:
    """The same landscape, but every gradient the optimizer sees is ``∇f(w) + ξ``, ``ξ ~ N(0, σ²I)``."""
    if not isinstance(landscape, Landscape):
        raise ValueError(f"landscape must be a Landscape, got {type(landscape).__name__}")
    sigma = check_number("sigma", sigma, low=0.0)
    if landscape.data is not None and landscape.batch_size is not None:
        raise ValueError("sigma: a mini-batch landscape is noisy already; gradient noise cannot be added")
    return replace(landscape, noise=float(sigma))


LANDSCAPES: dict[str, Callable[..., Landscape]] = {
    "two-minima": two_minima,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "himmelblau": himmelblau,
    "rastrigin": rastrigin,
    "quadratic": rotated_quadratic,
    "strongly-convex": strongly_convex,
    "saddle": saddle,
    "plateau": plateau,
    "ravine": ravine,
    "least-squares": least_squares,
}


def get_landscape(spec: str) -> Landscape:
    """Build a landscape from a spec such as ``"two-minima"``, ``"quadratic(kappa=100)"``."""
    return build_from_spec(spec, LANDSCAPES, kind="landscape")
