"""Curvature as linear operators: the Hessian-, Gauss–Newton- and Fisher-vector products, each once.

Everything starts from a :class:`GradientGraph`: a loss ``f`` evaluated at some inputs ``x`` (a
flat vector, or a list of parameter tensors) with the graph of its gradient ``∇f(x)`` kept, and
optionally the network's outputs ``z``. From it (course notes 000 and 002; Pearlmutter 1994;
Schraudolph 2002; Martens 2010, 2014):

* ``hvp(v)      = ∇²f(x) v = ∇(∇f(x)ᵀ v)``                    (double backward);
* ``jvp(v)      = J v``, ``J = ∂z/∂x``, by the double-vjp trick ``J v = ∂(vᵀ Jᵀ u)/∂u``;
* ``vjp(w)      = Jᵀ w``                                       (one backward);
* ``gauss_newton(v) = Jᵀ M J v`` with ``M = H_L = ∂²f/∂z²`` (the generalised Gauss–Newton matrix,
  PSD when the loss is convex in z) or any other output-space matrix: the Fisher of a categorical
  (``diag(p) − ppᵀ``) or unit Gaussian (``I``) likelihood, :func:`output_fisher`;
* ``hessian_matrix()`` — the dense, symmetrised ``n × n`` Hessian from ``n`` products (small n only).

:class:`CurvatureOperator` wraps any symmetric matrix-vector product (with its size, dtype and
device) for CG, Lanczos and the stochastic estimates of :mod:`descentlab.curvature`. Every
product here is plain ``torch.autograd.grad`` — nothing patches torch, nothing leaves hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._flat import flatten, unflatten
from .validation import check_choice

__all__ = ["CurvatureOperator", "matrix_operator", "GradientGraph", "output_fisher", "LIKELIHOODS"]

Matvec = Callable[[Tensor], Tensor]
LIKELIHOODS = ("categorical", "gaussian")


@dataclass
class CurvatureOperator:
    """A symmetric ``n × n`` matrix known only through ``matvec`` (flat vectors of ``dtype``/``device``)."""

    matvec: Matvec
    size: int
    dtype: torch.dtype = torch.float32
    device: torch.device | str = "cpu"

    def dense(self) -> Tensor:
        """Form the matrix column by column (n products) — for tests and tiny models."""
        eye = torch.eye(self.size, dtype=self.dtype, device=self.device)
        return torch.stack([self.matvec(e) for e in eye], dim=1)

    def damped(self, damping: float) -> CurvatureOperator:
        """``A + λ I`` (Levenberg–Marquardt / Tikhonov damping)."""
        return CurvatureOperator(lambda v: self.matvec(v) + damping * v, self.size, self.dtype, self.device)


def matrix_operator(matrix: Tensor) -> CurvatureOperator:
    """Wrap an explicit symmetric matrix."""
    return CurvatureOperator(lambda v: matrix @ v, matrix.shape[0], matrix.dtype, matrix.device)


def output_fisher(outputs: Tensor, likelihood: str, batch_size: int) -> Matvec:
    """``u ↦ F_z u / N``: the Fisher of the predictive distribution in the outputs z (natural parameters).

    ``"categorical"`` (z are logits): ``F_z = diag(p) − p pᵀ``, ``p = softmax(z)``;
    ``"gaussian"`` (z are means of a unit-variance Gaussian): ``F_z = I``. For these canonical-link
    likelihoods the Fisher equals the Gauss–Newton matrix (Martens 2014, §9.2).
    """
    check_choice("likelihood", likelihood, LIKELIHOODS)
    if likelihood == "gaussian":
        return lambda u: u / batch_size
    p = torch.softmax(outputs.detach(), dim=-1)
    return lambda u: (p * u - p * (p * u).sum(dim=-1, keepdim=True)) / batch_size


class GradientGraph:
    """A loss at a point, with the graph of its gradient kept: the source of every curvature product.

    Args:
        loss: the scalar loss (with its autograd graph), or ``None`` for output-only products (Fisher).
        inputs: the tensors ``x`` it is differentiated in (leaves: parameters, or one flat vector).
        outputs: the network's outputs ``z`` (for Gauss–Newton and Fisher products), optional.
        grads: ``∇f`` with its graph when already computed (a closure's captured ``backward``);
            computed lazily with ``create_graph=True`` otherwise.
    """

    def __init__(
        self,
        loss: Tensor | None,
        inputs: Sequence[Tensor],
        outputs: Tensor | None = None,
        grads: Sequence[Tensor | None] | None = None,
    ) -> None:
        self.loss = loss
        self.inputs = list(inputs)
        self.outputs = outputs
        self._grads = None if grads is None else list(grads)
        self._loss_output_grad: Tensor | None = None
        self.size = sum(t.numel() for t in self.inputs)
        self.dtype = self.inputs[0].dtype
        self.device = self.inputs[0].device

    @classmethod
    def of_function(cls, f: Callable[[Tensor], Tensor], x: Tensor) -> GradientGraph:
        """``f`` evaluated at a flat vector ``x`` (a detached copy becomes the input)."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            return cls(f(x), [x])

    @classmethod
    def of_outputs(
        cls, output: Callable[[Tensor], Tensor], x: Tensor, loss: Callable[[Tensor], Tensor] | None = None
    ) -> GradientGraph:
        """The outputs ``z = output(x)`` at a flat ``x``, and ``loss(z)`` if given (Gauss–Newton needs it)."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            z = output(x)
            return cls(None if loss is None else loss(z), [x], outputs=z)

    # -- value and gradient -----------------------------------------------------------------
    @property
    def value(self) -> float:
        return float(self._require_loss().detach())

    @property
    def grads(self) -> list[Tensor | None]:
        """``∇f`` per input, with its graph (``create_graph=True``)."""
        if self._grads is None:
            with torch.enable_grad():
                self._grads = list(
                    torch.autograd.grad(
                        self._require_loss(), self.inputs, create_graph=True, allow_unused=True
                    )
                )
        return self._grads

    @property
    def grad(self) -> Tensor:
        """``∇f`` as one detached flat vector."""
        return flatten([None if g is None else g.detach() for g in self.grads], self.inputs)

    # -- products ---------------------------------------------------------------------------
    @torch.enable_grad()
    def hvp(self, v: Tensor) -> Tensor:
        """``∇²f v = ∇(∇fᵀ v)``: one backward through the gradient's graph (Pearlmutter 1994)."""
        pairs = [(g, piece) for g, piece in zip(self.grads, unflatten(v, self.inputs)) if _has_graph(g)]
        if not pairs:  # ∇f is constant: f is linear (or constant) in x
            return torch.zeros_like(v)
        products = torch.autograd.grad(
            [g for g, _ in pairs],
            self.inputs,
            [piece for _, piece in pairs],
            retain_graph=True,
            allow_unused=True,
        )
        return flatten(products, self.inputs)

    @torch.enable_grad()
    def jvp(self, v: Tensor) -> Tensor:
        """``J v`` for the outputs z: ``Jᵀu`` is linear in a dummy ``u``, so ``J v = ∂(vᵀ Jᵀ u)/∂u``."""
        z = self._require_outputs()
        u = torch.zeros_like(z, requires_grad=True)
        jt_u = torch.autograd.grad(z, self.inputs, u, create_graph=True, allow_unused=True)
        terms = [(piece * t).sum() for piece, t in zip(unflatten(v, self.inputs), jt_u) if t is not None]
        if not terms:
            return torch.zeros_like(z)
        return torch.autograd.grad(sum(terms), u)[0]

    @torch.enable_grad()
    def vjp(self, w: Tensor) -> Tensor:
        """``Jᵀ w`` for the outputs z."""
        z = self._require_outputs()
        return flatten(
            torch.autograd.grad(z, self.inputs, w, retain_graph=True, allow_unused=True), self.inputs
        )

    @torch.enable_grad()
    def loss_hessian_product(self, u: Tensor) -> Tensor:
        """``H_L u`` with ``H_L = ∂²f/∂z²``, the loss's Hessian in the outputs (double backward)."""
        z = self._require_outputs()
        if self._loss_output_grad is None:
            self._loss_output_grad = torch.autograd.grad(self._require_loss(), z, create_graph=True)[0]
        if not self._loss_output_grad.requires_grad:  # the loss is linear in z
            return torch.zeros_like(u)
        return torch.autograd.grad(self._loss_output_grad, z, u, retain_graph=True)[0]

    def gauss_newton(self, v: Tensor, output_matrix: Matvec | None = None) -> Tensor:
        """``Jᵀ M J v``: ``M = H_L`` (generalised Gauss–Newton) unless another ``output_matrix`` is given."""
        product = self.loss_hessian_product if output_matrix is None else output_matrix
        return self.vjp(product(self.jvp(v)))

    # -- operators --------------------------------------------------------------------------
    def _operator(self, matvec: Matvec) -> CurvatureOperator:
        return CurvatureOperator(matvec, self.size, self.dtype, self.device)

    def hessian_operator(self) -> CurvatureOperator:
        return self._operator(self.hvp)

    def gauss_newton_operator(self, output_matrix: Matvec | None = None) -> CurvatureOperator:
        return self._operator(lambda v: self.gauss_newton(v, output_matrix))

    def hessian_matrix(self) -> Tensor:
        """The dense Hessian ``½ (H + Hᵀ)`` from ``n`` products — n² entries: small problems only."""
        hessian = self.hessian_operator().dense()
        return 0.5 * (hessian + hessian.T)

    # -- checks -----------------------------------------------------------------------------
    def _require_loss(self) -> Tensor:
        if self.loss is None:
            raise RuntimeError("this GradientGraph holds outputs only: no loss to differentiate")
        return self.loss

    def _require_outputs(self) -> Tensor:
        if self.outputs is None:
            raise RuntimeError(
                "Gauss–Newton products need the network's outputs: a closure that returns (loss, outputs)"
            )
        return self.outputs


def _has_graph(g: Tensor | None) -> bool:
    return g is not None and g.requires_grad
