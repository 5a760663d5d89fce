"""Curvature of a loss: Hessian-, Gauss–Newton- and Fisher-vector products and the Hessian's spectrum.

Parameters are handled as one flat vector ``x`` (:func:`flat_loss` turns a model and a loss into
``f(x)``), so that products, CG and Lanczos all speak the same language. The products themselves
are written once, in :mod:`descentlab.operators` (:class:`~descentlab.operators.GradientGraph`);
the functions here are thin conveniences over it for a model and a loss, and the solvers of
:mod:`descentlab.second_order` and :mod:`descentlab.scipy` use the same implementation.

Products (``v`` flat, same size as ``x``):

* :func:`hvp` — ``H v = ∇²f(x) v`` by reverse-over-reverse (double backward) or
  forward-over-reverse (``jvp`` of ``torch.func.grad``, usually cheaper);
* :func:`hvp_double_backward` — the same from a loss tensor that still has its graph;
* :func:`ggn_vector_product` — ``G v = Jᵀ H_L J v`` for a network ``z = m(x)`` composed with a loss
  ``L(z)`` (Schraudolph 2002; Martens 2010): ``J`` is the network's Jacobian, ``H_L`` the loss's
  Hessian in the outputs. ``G`` is positive semi-definite whenever ``L`` is convex in ``z``;
* :func:`fisher_vector_product` — ``F v = Jᵀ F_z J v / N`` with the Fisher ``F_z`` of the model's
  predictive distribution in its natural parameters (softmax: ``diag(p) − ppᵀ``; Gaussian: ``I``).
  For these canonical-link likelihoods ``F = G`` (Martens 2014, "New insights and perspectives on
  the natural gradient method", §9.2).

Spectrum, from any symmetric ``matvec`` (a :class:`CurvatureOperator`):
:func:`lanczos` (with full reorthogonalisation), :func:`top_eigenpairs`,
:func:`smallest_eigenvalue`, :func:`condition_number` (κ = σ_max/σ_min, course notes 003),
:func:`hutchinson_trace`, :func:`diagonal_estimate`, :func:`spectral_density` (stochastic Lanczos
quadrature) and :func:`plot_spectral_density`.

Note on the course notes (000, "Newton's Method"): the cost of the Hessian grows *quadratically*
in the number of parameters n (n² entries, n Hessian-vector products), not exponentially — which is
still prohibitive for networks, hence the matrix-free products here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp

from ._flat import FlatParameters, flatten, trainable_parameters, unflatten, unflatten_named
from ._io import save_figure
from .operators import CurvatureOperator, GradientGraph, matrix_operator, output_fisher
from .validation import check_choice, check_int, check_number, check_positive

__all__ = [
    "CurvatureOperator",
    "flat_loss",
    "hvp",
    "hvp_double_backward",
    "hessian",
    "ggn_vector_product",
    "fisher_vector_product",
    "hessian_operator",
    "ggn_operator",
    "fisher_operator",
    "matrix_operator",
    "lanczos",
    "top_eigenpairs",
    "smallest_eigenvalue",
    "condition_number",
    "hutchinson_trace",
    "diagonal_estimate",
    "SpectralDensity",
    "spectral_density",
    "plot_spectral_density",
]

FlatFunction = Callable[[Tensor], Tensor]
HVP_MODES = ("forward-over-reverse", "reverse-over-reverse")


# -- a model and a loss as functions of the flat parameters --------------------------------
def _flat_parameters(model: nn.Module) -> Tensor:
    return FlatParameters([p for _, p in trainable_parameters(model)]).get()


def _model_output_function(model: nn.Module, inputs: Tensor) -> FlatFunction:
    return lambda x: functional_call(model, unflatten_named(model, x), (inputs,))


def flat_loss(
    model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], inputs: Tensor, targets: Tensor
) -> tuple[FlatFunction, Tensor]:
    """``(f, x0)`` with ``f(x) = loss_fn(model_x(inputs), targets)`` and ``x0`` the current parameters."""
    output = _model_output_function(model, inputs)
    return (lambda x: loss_fn(output(x), targets)), _flat_parameters(model)


def _model_graph(model, loss_fn, inputs, targets, x: Tensor | None) -> GradientGraph:
    """The outputs (and the loss, if ``loss_fn``) of ``model`` at flat parameters ``x``, graph kept."""
    x = _flat_parameters(model) if x is None else x
    loss = None if loss_fn is None else (lambda z: loss_fn(z, targets))
    return GradientGraph.of_outputs(_model_output_function(model, inputs), x, loss)


# -- products (thin over descentlab.operators.GradientGraph) --------------------------------
def hvp(f: FlatFunction, x: Tensor, v: Tensor, *, mode: str = "reverse-over-reverse") -> Tensor:
    """Hessian-vector product ``∇²f(x) v``.

    ``mode="reverse-over-reverse"`` (default): double backward, ``∇(∇f(x)ᵀ v)``
    (:meth:`GradientGraph.hvp <descentlab.operators.GradientGraph.hvp>`).
    ``mode="forward-over-reverse"``: ``jvp`` of ``torch.func.grad(f)`` with tangent ``v`` — usually
    cheaper, but some torch losses lack forward-over-reverse support (in torch 2.13 ``F.mse_loss``
    with a constant target raises "ZeroTensors are immutable").
    """
    check_choice("mode", mode, HVP_MODES)
    if mode == "forward-over-reverse":
        return jvp(grad(f), (x,), (v,))[1]
    return GradientGraph.of_function(f, x).hvp(v)


def hvp_double_backward(loss: Tensor, params: list[Tensor], v: list[Tensor]) -> list[Tensor]:
    """``H v`` by double backward, ``∇(∇L · v)``, from a loss that still holds its graph.

    ``v`` and the result are shaped like ``params``.
    """
    product = GradientGraph(loss, params).hvp(flatten(v, params))
    return unflatten(product, params)


def hessian(f: FlatFunction, x: Tensor) -> Tensor:
    """The full ``n × n`` Hessian of ``f`` at a flat ``x`` — for small models only: n² entries."""
    return GradientGraph.of_function(f, x).hessian_matrix()


def ggn_vector_product(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    v: Tensor,
    x: Tensor | None = None,
) -> Tensor:
    """Generalised Gauss–Newton product ``G v = Jᵀ (H_L (J v))`` at parameters ``x`` (default: the model's).

    ``J`` is the network's Jacobian, ``H_L`` the loss's Hessian in the outputs; no matrix is formed
    (:meth:`GradientGraph.gauss_newton <descentlab.operators.GradientGraph.gauss_newton>`).
    """
    return _model_graph(model, loss_fn, inputs, targets, x).gauss_newton(v)


def fisher_vector_product(
    model: nn.Module, inputs: Tensor, v: Tensor, *, likelihood: str = "categorical", x: Tensor | None = None
) -> Tensor:
    """Fisher-vector product ``F v = (1/N) Σ_i J_iᵀ F_z(z_i) J_i v`` of the model's predictive distribution.

    ``likelihood="categorical"``: outputs are logits, ``F_z = diag(p) − p pᵀ`` with ``p = softmax(z)``.
    ``likelihood="gaussian"``: outputs are means of a unit-variance Gaussian, ``F_z = I``.
    ``N`` is the number of rows of ``inputs``.
    """
    check_choice("likelihood", likelihood, ("categorical", "gaussian"))
    graph = _model_graph(model, None, inputs, None, x)
    return graph.gauss_newton(v, output_fisher(graph.outputs, likelihood, inputs.shape[0]))


# -- operators ---------------------------------------------------------------------------
def hessian_operator(
    model, loss_fn, inputs, targets, *, mode: str = "reverse-over-reverse"
) -> CurvatureOperator:
    """The Hessian of ``loss_fn(model(inputs), targets)`` at the model's current parameters.

    Reverse-over-reverse keeps one gradient graph for all products; forward-over-reverse
    re-linearises per product (``torch.func``).
    """
    check_choice("mode", mode, HVP_MODES)
    f, x0 = flat_loss(model, loss_fn, inputs, targets)
    if mode == "forward-over-reverse":
        return CurvatureOperator(lambda v: hvp(f, x0, v, mode=mode), x0.numel(), x0.dtype, x0.device)
    return GradientGraph.of_function(f, x0).hessian_operator()


def ggn_operator(model, loss_fn, inputs, targets) -> CurvatureOperator:
    """The generalised Gauss–Newton matrix at the model's current parameters."""
    return _model_graph(model, loss_fn, inputs, targets, None).gauss_newton_operator()


def fisher_operator(model, inputs, *, likelihood: str = "categorical") -> CurvatureOperator:
    """The Fisher information matrix of the model's predictive distribution."""
    check_choice("likelihood", likelihood, ("categorical", "gaussian"))
    graph = _model_graph(model, None, inputs, None, None)
    return graph.gauss_newton_operator(output_fisher(graph.outputs, likelihood, inputs.shape[0]))


# -- Lanczos -----------------------------------------------------------------------------
def _random_unit(op: CurvatureOperator, generator: torch.Generator | None) -> Tensor:
    v = torch.randn(op.size, dtype=op.dtype, generator=generator).to(op.device)
    return v / torch.linalg.vector_norm(v)


def lanczos(
    op: CurvatureOperator,
    num_steps: int,
    *,
    start: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Lanczos tridiagonalisation with full reorthogonalisation.

    Builds an orthonormal basis ``Q = [q_1 … q_m]`` of the Krylov space ``K_m(A, q_1)`` and the
    tridiagonal ``T = Qᵀ A Q`` (Golub & Van Loan, Algorithm 10.1.1)::

        w = A q_j − β_{j−1} q_{j−1};  α_j = q_jᵀ w;  w ← w − α_j q_j
        w ← w − Q (Qᵀ w)   (twice: full reorthogonalisation, keeps Q orthonormal in floating point)
        β_j = ‖w‖;  q_{j+1} = w / β_j

    Stops early if the Krylov space becomes invariant (β_j ≈ 0). Returns ``(T, Q)`` with
    ``T`` ``m × m`` and ``Q`` ``n × m``; the eigenvalues of ``T`` (Ritz values) approximate the
    extreme eigenvalues of ``A`` first and equal all of them when ``m = n``.
    """
    check_int("num_steps", num_steps)
    num_steps = min(num_steps, op.size)
    q = _random_unit(op, generator) if start is None else start / torch.linalg.vector_norm(start)
    basis, alphas, betas = [q], [], []
    beta_prev, q_prev = 0.0, torch.zeros_like(q)
    for j in range(num_steps):
        w = op.matvec(q) - beta_prev * q_prev
        alpha = torch.dot(w, q)
        w = w - alpha * q
        stacked = torch.stack(basis, dim=1)
        for _ in range(2):
            w = w - stacked @ (stacked.T @ w)
        alphas.append(alpha)
        beta = torch.linalg.vector_norm(w)
        scale = max(1.0, abs(alpha.item()))
        if j == num_steps - 1 or beta.item() <= 1e-10 * scale:
            break
        betas.append(beta)
        q_prev, q, beta_prev = q, w / beta, beta
        basis.append(q)
    m = len(alphas)
    t = torch.diag(torch.stack(alphas))
    if m > 1:
        off = torch.stack(betas[: m - 1])
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    return t, torch.stack(basis[:m], dim=1)


def top_eigenpairs(
    op: CurvatureOperator,
    k: int = 1,
    *,
    num_steps: int | None = None,
    which: str = "largest",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The ``k`` largest (``which="largest"``, algebraic) or smallest eigenvalues and eigenvectors.

    Lanczos for ``num_steps`` (default ``min(n, max(2k + 20, 40))``), then the Ritz pairs of ``T``:
    eigenvalues θ of ``T = U Θ Uᵀ``, eigenvectors ``Q U``. Returns ``(values [k], vectors [n, k])``,
    values sorted from the most extreme inward.
    """
    check_int("k", k, high=op.size)
    check_choice("which", which, ("largest", "smallest"))
    if num_steps is not None:
        check_int("num_steps", num_steps)
    steps = min(op.size, max(2 * k + 20, 40)) if num_steps is None else num_steps
    t, q = lanczos(op, steps, generator=generator)
    theta, u = torch.linalg.eigh(t)
    order = torch.argsort(theta, descending=(which == "largest"))[:k]
    return theta[order], q @ u[:, order]


def smallest_eigenvalue(
    op: CurvatureOperator, *, num_steps: int | None = None, generator: torch.Generator | None = None
) -> float:
    """The algebraically smallest eigenvalue (negative for an indefinite Hessian: a saddle direction)."""
    return top_eigenpairs(op, 1, num_steps=num_steps, which="smallest", generator=generator)[0][0].item()


def condition_number(
    op: CurvatureOperator, *, num_steps: int | None = None, generator: torch.Generator | None = None
) -> float:
    """κ = σ_max / σ_min, the singular values of a symmetric matrix being |eigenvalues| (notes 003).

    Estimated from the Ritz values of one Lanczos run: σ_max = max|θ| is an extreme eigenvalue and
    converges fast; σ_min = min|θ| is exact when ``num_steps ≥ n`` (the default for n ≤ 200) and
    otherwise an estimate (for a positive-definite matrix it is λ_min, still extreme). ``inf`` if
    the matrix is (numerically) singular.
    """
    steps = min(op.size, 200) if num_steps is None else check_int("num_steps", num_steps)
    t, _ = lanczos(op, steps, generator=generator)
    sigma = torch.linalg.eigvalsh(t).abs()
    sigma_min, sigma_max = sigma.min().item(), sigma.max().item()
    if sigma_min <= torch.finfo(op.dtype).eps * sigma_max:
        return math.inf
    return sigma_max / sigma_min


# -- stochastic estimates ----------------------------------------------------------------
PROBES = ("rademacher", "gaussian")


def _probed(
    op: CurvatureOperator, num_samples: int, distribution: str, generator: torch.Generator | None
) -> Iterator[tuple[Tensor, Tensor]]:
    """``(z, A z)`` for ``num_samples`` random probes with ``E[z zᵀ] = I`` (Rademacher ±1 or Gaussian).

    The arguments are checked at the call, before any probe is drawn.
    """
    check_int("num_samples", num_samples)
    check_choice("distribution", distribution, PROBES)

    def probes() -> Iterator[tuple[Tensor, Tensor]]:
        for _ in range(num_samples):
            if distribution == "rademacher":
                z = torch.randint(0, 2, (op.size,), generator=generator).to(op.dtype) * 2 - 1
            else:
                z = torch.randn(op.size, dtype=op.dtype, generator=generator)
            z = z.to(op.device)
            yield z, op.matvec(z)

    return probes()


def hutchinson_trace(
    op: CurvatureOperator,
    num_samples: int = 100,
    *,
    distribution: str = "rademacher",
    generator: torch.Generator | None = None,
) -> float:
    """Hutchinson (1989): ``tr(A) = E[zᵀ A z]`` for probes with ``E[z zᵀ] = I``; averaged over samples."""
    total = 0.0
    for z, az in _probed(op, num_samples, distribution, generator):
        total += torch.dot(z, az).item()
    return total / num_samples


def diagonal_estimate(
    op: CurvatureOperator,
    num_samples: int = 100,
    *,
    distribution: str = "rademacher",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Bekas, Kokiopoulou & Saad (2007): ``diag(A) ≈ (Σ_s z_s ⊙ A z_s) ⊘ (Σ_s z_s ⊙ z_s)``."""
    probed = _probed(op, num_samples, distribution, generator)
    numerator = torch.zeros(op.size, dtype=op.dtype, device=op.device)
    denominator = torch.zeros_like(numerator)
    for z, az in probed:
        numerator += z * az
        denominator += z * z
    return numerator / denominator


# -- spectral density --------------------------------------------------------------------
@dataclass
class SpectralDensity:
    """A smoothed eigenvalue density: ``density[i]`` at ``grid[i]``; ``nodes``/``weights`` per probe."""

    grid: Tensor
    density: Tensor
    nodes: Tensor  # [num_probes, m] Ritz values
    weights: Tensor  # [num_probes, m] squared first components, each row sums to 1
    size: int


def spectral_density(
    op: CurvatureOperator,
    *,
    num_probes: int = 10,
    num_steps: int = 40,
    grid_points: int = 400,
    sigma: float | None = None,
    margin: float = 0.05,
    generator: torch.Generator | None = None,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature (Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019).

    For each random unit probe ``v``, ``m`` Lanczos steps give ``T = U Θ Uᵀ``; then
    ``vᵀ g(A) v ≈ Σ_j τ_j g(θ_j)`` with ``τ_j = U_{1j}²`` (Gauss quadrature). With ``g`` a Gaussian
    of width σ centred at ``t`` this estimates the smoothed density
    ``φ_σ(t) = (1/n) Σ_i N(t; λ_i, σ²)``; the estimate is averaged over the probes.
    """
    check_int("num_probes", num_probes)
    check_int("num_steps", num_steps)
    check_int("grid_points", grid_points, low=2)
    if sigma is not None:
        check_positive("sigma", sigma)
    check_number("margin", margin, low=0.0)
    nodes, weights = [], []
    for _ in range(num_probes):
        t, _ = lanczos(op, num_steps, generator=generator)
        theta, u = torch.linalg.eigh(t)
        m = theta.numel()
        padded_theta = torch.full((min(num_steps, op.size),), float("nan"), dtype=theta.dtype)
        padded_tau = torch.zeros_like(padded_theta)
        padded_theta[:m], padded_tau[:m] = theta.cpu(), (u[0] ** 2).cpu()
        nodes.append(padded_theta)
        weights.append(padded_tau)
    nodes_t, weights_t = torch.stack(nodes), torch.stack(weights)
    finite = nodes_t[~torch.isnan(nodes_t)]
    lo, hi = finite.min().item(), finite.max().item()
    spread = max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    if sigma is None:
        sigma = spread / 100
    grid = torch.linspace(
        lo - margin * spread - 3 * sigma, hi + margin * spread + 3 * sigma, grid_points, dtype=nodes_t.dtype
    )
    centred = grid[None, None, :] - torch.nan_to_num(nodes_t, nan=0.0)[:, :, None]
    gauss = torch.exp(-0.5 * (centred / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    density = (weights_t[:, :, None] * gauss).sum(dim=1).mean(dim=0)
    return SpectralDensity(grid, density, nodes_t, weights_t, op.size)


def plot_spectral_density(
    result: SpectralDensity,
    path: str | os.PathLike | None = None,
    *,
    title: str = "Hessian eigenvalue density (stochastic Lanczos quadrature)",
    log_scale: bool = True,
):
    """Draw the density (log scale by default, as in Ghorbani et al.) on a new Agg figure.

    Returns the :class:`matplotlib.figure.Figure`; with ``path`` it is also saved there as PNG
    (written to a temporary file in the same folder, then renamed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    density = result.density.clamp_min(1e-12) if log_scale else result.density
    ax.plot(result.grid.numpy(), density.numpy(), color="tab:blue")
    if log_scale:
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(1e-8, density.min().item()))
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
